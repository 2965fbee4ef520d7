// The emulated MSRs of the MSR policy (vmx/msr_policy.hpp): the pieces of
// vmx/exit_msr.cpp that are plain arithmetic, and the capture of a VP's
// processor state at launch. Portable, unit-tested
// (tests/unit/vmx_msr_emulation.cpp).
#pragma once

#include <stdint.h>

#include "vmx/exits.hpp"
#include "vmx/vp_cpu_state.hpp"

namespace microhv::vmx {

// Fills `s` from this CPU (fault-safe MSR reads, CPUID): the facts the
// emulation checks against, the APIC's mode and base, the MTRRs, MISC_ENABLE
// and PLATFORM_INFO as the guest will read them, TSC_ADJUST.
// `tsc_offsetting`: the VMCS has "use TSC offsetting" on.
void capture_vp_cpu_state(CpuServices& cpu, bool tsc_offsetting, VpCpuState* s);

// IA32_TSC / IA32_TSC_ADJUST writes (SDM Vol. 3B 18.17.3): each changes the
// guest's TSC by the same difference as the other MSR. `real_tsc` is the
// real TSC now. The new offset goes into the VMCS.
void write_guest_tsc(VpCpuState& s, uint64_t real_tsc, uint64_t value);
void write_guest_tsc_adjust(VpCpuState& s, uint64_t value);

// IA32_TSC_DEADLINE between the guest's TSC (real + offset) and the real
// one the APIC timer compares: 0 disarms; a deadline the offset would move
// below 0 has passed already and fires at once (1); reads of 0 stay 0.
uint64_t tsc_deadline_to_real(uint64_t guest_deadline, uint64_t offset);
uint64_t tsc_deadline_to_guest(uint64_t real_deadline, uint64_t offset);

// IA32_DEBUGCTL as written to the VMCS, or false (#GP): BTF kept, bus-lock
// detection kept when the CPU has it, LBR dropped (as KVM without an LBR
// stack), everything else #GP.
bool filter_debugctl(const CpuFacts& f, uint64_t value, uint64_t* out);

// IA32_PAT: every byte a valid PAT type (UC, WC, WT, WP, WB, UC-) (SDM Vol.
// 3A 12.12.2).
bool pat_valid(uint64_t pat);

// Canonical for the guest's linear-address width (57 bits with CR4.LA57).
bool is_canonical(uint64_t address, bool la57);

}  // namespace microhv::vmx
