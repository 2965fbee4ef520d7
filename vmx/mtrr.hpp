// The guest's MTRRs, one copy per VP (portable, unit-tested in
// tests/unit/vmx_msr_emulation.cpp). With EPT the MTRRs have no effect on
// the memory type of a guest-physical access -- the EPT entry takes their
// place (SDM Vol. 3C 29.3.7.2, "The MTRRs have no effect on the memory type
// used for an access to a guest-physical address") -- so keeping the
// guest's values in a copy is exact for the guest, and the real MTRRs, which
// do type microhv's own accesses, never change. Writes are checked as the
// hardware checks them (SDM Vol. 3A 12.11.2): a reserved bit, an address
// bit at or above MAXPHYADDR, an invalid memory type (2, 3, 7 and up; WC
// only when MTRRCAP.WC), fixed ranges without MTRRCAP.FIX or a variable
// pair beyond MTRRCAP.VCNT all #GP.
#pragma once

#include <stdint.h>

#include "vmx/exits.hpp"
#include "vmx/vp_cpu_state.hpp"

namespace microhv::vmx {

// False: the access raises #GP.
bool mtrr_read(const MtrrState& m, const CpuFacts& f, uint32_t msr, uint64_t* value);
bool mtrr_write(MtrrState& m, const CpuFacts& f, uint32_t msr, uint64_t value);

// The copy at launch, from this CPU's real MTRRs (fault-safe reads): SMRR
// hidden, at most kMaxVariableMtrrs variable pairs. Sets f.mtrr.
void capture_mtrrs(CpuServices& cpu, CpuFacts& f, MtrrState& m);

}  // namespace microhv::vmx
