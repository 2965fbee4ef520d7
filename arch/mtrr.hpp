// Memory type range registers (SDM Vol. 3A 12.11; "11.11" in older
// editions): MSR numbers and field layouts. Facts only; the decoding is
// vmx/mtrr_types.hpp.
#pragma once

#include <stdint.h>

namespace microhv::arch::mtrr {

inline constexpr uint32_t kCpuid1EdxMtrr = 1u << 12;  // CPUID.1:EDX.MTRR
inline constexpr uint32_t kCapMsr = 0xFE;             // IA32_MTRRCAP
inline constexpr uint32_t kDefTypeMsr = 0x2FF;        // IA32_MTRR_DEF_TYPE
inline constexpr uint32_t kPhysBase0 = 0x200;         // IA32_MTRR_PHYSBASEn = 0x200 + 2n
inline constexpr uint32_t kPhysMask0 = 0x201;         // IA32_MTRR_PHYSMASKn = 0x201 + 2n

// IA32_MTRRCAP (12.11.1).
inline constexpr uint64_t kCapVcntMask = 0xFF;  // number of variable ranges
inline constexpr uint64_t kCapFixed = 1ull << 8;

// IA32_MTRR_DEF_TYPE (12.11.2.1).
inline constexpr uint64_t kDefTypeMask = 0xFF;
inline constexpr uint64_t kDefFixedEnable = 1ull << 10;  // FE
inline constexpr uint64_t kDefEnable = 1ull << 11;       // E

// IA32_MTRR_PHYSBASEn / PHYSMASKn (12.11.2.3): type in base bits 7:0,
// base and mask in bits MAXPHYADDR-1:12, valid in mask bit 11.
inline constexpr uint64_t kBaseTypeMask = 0xFF;
inline constexpr uint64_t kMaskValid = 1ull << 11;
inline constexpr uint64_t kAddrMask = ~0xFFFull;

// The eleven fixed-range MTRRs (12.11.2.2, Table 12-9), each eight 8-bit
// type fields for consecutive sub-ranges of `step` bytes from `base`.
struct FixedRangeMsr {
  uint32_t msr;
  uint32_t base;
  uint32_t step;
};
inline constexpr unsigned kFixedMsrCount = 11;
// `static`: an ODR-used inline variable is a GLOB_DAT relocation GNU-EFI does
// not apply (scripts/check-relocs.sh).
static constexpr FixedRangeMsr kFixedMsrs[kFixedMsrCount] = {
    {0x250, 0x00000, 0x10000},  // IA32_MTRR_FIX64K_00000
    {0x258, 0x80000, 0x4000},   // IA32_MTRR_FIX16K_80000
    {0x259, 0xA0000, 0x4000},   // IA32_MTRR_FIX16K_A0000
    {0x268, 0xC0000, 0x1000},   // IA32_MTRR_FIX4K_C0000
    {0x269, 0xC8000, 0x1000},  {0x26A, 0xD0000, 0x1000}, {0x26B, 0xD8000, 0x1000},
    {0x26C, 0xE0000, 0x1000},  {0x26D, 0xE8000, 0x1000}, {0x26E, 0xF0000, 0x1000},
    {0x26F, 0xF8000, 0x1000},  // IA32_MTRR_FIX4K_F8000
};
inline constexpr uint64_t kFixedRangeEnd = 0x100000;  // the fixed MTRRs cover the first 1 MiB

// Memory type encodings shared by the MTRRs, PAT and EPT (Table 12-8):
// 0 UC, 1 WC, 4 WT, 5 WP, 6 WB; 2, 3 and 7-255 are reserved.
constexpr bool is_valid_type(uint64_t t) {
  return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

}  // namespace microhv::arch::mtrr
