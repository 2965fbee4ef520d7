// Memory type range registers (SDM Vol. 3A 12.11; "11.11" in older
// editions) as microhv reads the firmware's at take-over: the MSR numbers
// and field layouts are arch/msr.hpp's (arch::msr::mtrr); this adds what
// decoding needs besides (vmx/mtrr_types.hpp). Facts only.
#pragma once

#include <stdint.h>

#include "arch/msr.hpp"

namespace microhv::arch::mtrr {

inline constexpr uint32_t kCpuid1EdxMtrr = 1u << 12;  // CPUID.1:EDX.MTRR
inline constexpr uint32_t kCapMsr = msr::kMtrrCap;
inline constexpr uint32_t kDefTypeMsr = msr::kMtrrDefType;
inline constexpr uint32_t kPhysBase0 = msr::kMtrrPhysBase0;      // PHYSBASEn = 0x200 + 2n
inline constexpr uint32_t kPhysMask0 = msr::kMtrrPhysBase0 + 1;  // PHYSMASKn = 0x201 + 2n

// IA32_MTRRCAP (12.11.1), IA32_MTRR_DEF_TYPE (12.11.2.1), PHYSMASKn.V.
using msr::mtrr::kCapFixed;
using msr::mtrr::kCapVcntMask;
using msr::mtrr::kDefEnable;
using msr::mtrr::kDefFixedEnable;
using msr::mtrr::kDefTypeMask;
using msr::mtrr::kMaskValid;

// IA32_MTRR_PHYSBASEn / PHYSMASKn (12.11.2.3): type in base bits 7:0,
// base and mask in bits MAXPHYADDR-1:12.
inline constexpr uint64_t kBaseTypeMask = 0xFF;
inline constexpr uint64_t kAddrMask = ~0xFFFull;

// The eleven fixed-range MTRRs (12.11.2.2, Table 12-9), each eight 8-bit
// type fields for consecutive sub-ranges of `step` bytes from `base`.
struct FixedRangeMsr {
  uint32_t msr;
  uint32_t base;
  uint32_t step;
};
inline constexpr unsigned kFixedMsrCount = msr::mtrr::kFixedCount;
// `static`: an ODR-used inline variable is a GLOB_DAT relocation GNU-EFI does
// not apply (scripts/check-relocs.sh).
static constexpr FixedRangeMsr kFixedMsrs[kFixedMsrCount] = {
    {msr::kMtrrFix64k00000, 0x00000, 0x10000},   {msr::kMtrrFix16k80000, 0x80000, 0x4000},
    {msr::kMtrrFix16kA0000, 0xA0000, 0x4000},    {msr::kMtrrFix4kC0000, 0xC0000, 0x1000},
    {msr::kMtrrFix4kC0000 + 1, 0xC8000, 0x1000}, {msr::kMtrrFix4kC0000 + 2, 0xD0000, 0x1000},
    {msr::kMtrrFix4kC0000 + 3, 0xD8000, 0x1000}, {msr::kMtrrFix4kC0000 + 4, 0xE0000, 0x1000},
    {msr::kMtrrFix4kC0000 + 5, 0xE8000, 0x1000}, {msr::kMtrrFix4kC0000 + 6, 0xF0000, 0x1000},
    {msr::kMtrrFix4kC0000 + 7, 0xF8000, 0x1000},  // IA32_MTRR_FIX4K_F8000
};
inline constexpr uint64_t kFixedRangeEnd = 0x100000;  // the fixed MTRRs cover the first 1 MiB

// Memory type encodings shared by the MTRRs, PAT and EPT (Table 12-8):
// 0 UC, 1 WC, 4 WT, 5 WP, 6 WB; 2, 3 and 7-255 are reserved.
constexpr bool is_valid_type(uint64_t t) {
  return msr::mtrr::valid_type(t);
}

}  // namespace microhv::arch::mtrr
