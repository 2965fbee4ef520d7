// The firmware's memory types, decoded from the MTRRs it programmed (SDM
// Vol. 3A 12.11). microhv reads the MSRs once, at take-over, into MtrrSnapshot
// (plain data: it crosses from the EFI side to the host side in LaunchInfo)
// and decodes them here, portably, for two users:
//  - the guest's EPT: with EPT the guest's accesses take their memory type
//    from the EPT leaf, not from the MTRRs (SDM Vol. 3C 29.3.7.2), so EPT
//    must carry the types the firmware set;
//  - microhv's own page tables: their large pages must not span ranges of
//    different MTRR types (SDM Vol. 3A 12.11.9).
// Both map a range one "run" at a time: [pa, mtrr_run_end(pa)) has one type.
#pragma once

#include <stdint.h>

#include "arch/mtrr.hpp"
#include "arch/paging.hpp"

namespace microhv::vmx {

// IA32_MTRRCAP.VCNT is 8 bits: every variable range fits (8 to 10 on the
// processors in the capability matrix).
inline constexpr uint32_t kMaxSnapshotMtrrs = 255;

struct MtrrSnapshot {
  bool present = false;   // CPUID.1:EDX.MTRR[bit 12]; false: no MTRRs, PAT alone decides
  uint64_t cap = 0;       // IA32_MTRRCAP
  uint64_t def_type = 0;  // IA32_MTRR_DEF_TYPE
  uint64_t fixed[arch::mtrr::kFixedMsrCount] = {};
  uint32_t var_count = 0;  // variable ranges read: IA32_MTRRCAP.VCNT
  struct Variable {
    uint64_t base, mask;  // IA32_MTRR_PHYSBASEn, IA32_MTRR_PHYSMASKn
  } var[kMaxSnapshotMtrrs] = {};
  unsigned phys_bits = 36;  // MAXPHYADDR: the width of the base and mask fields
};

// One enabled variable range as microhv reads it: the addresses
// [start, end) with `type`. A contiguous mask (the only kind the SDM's range
// rules, 12.11.4, produce) matches exactly that interval. A non-contiguous
// mask matches a periodic subset of it; microhv treats the whole interval
// as matching, as KVM does, so a type never changes inside it unseen
// (`contiguous` tells the log).
struct VariableRange {
  uint64_t start, end;
  uint8_t type;
  bool contiguous;
};
// False when variable range `index` is disabled (PHYSMASK.V = 0) or out of range.
bool variable_range(const MtrrSnapshot& s, uint32_t index, VariableRange* out);

// The memory type the MTRRs give physical address `pa` (SDM 12.11.4.1):
// MTRRs disabled: UC; the first MiB with fixed ranges enabled: the fixed
// range; else the variable ranges that match (several: UC if any is UC, WT
// for WT with WB, the common type if all agree; any other overlap is
// undefined in the SDM and UC here); none: the default type. A reserved
// type value is UC. Without MTRRs (present = false): WB.
arch::MemType mtrr_type(const MtrrSnapshot& s, uint64_t pa);

// The end of the run of addresses from `pa` that all have mtrr_type(pa),
// at most `limit` (> pa). Only a fixed sub-range boundary, 1 MiB, or a
// variable range's start or end can change the type.
uint64_t mtrr_run_end(const MtrrSnapshot& s, uint64_t pa, uint64_t limit);

}  // namespace microhv::vmx
