// The CPUID a VP sees for the processor's own leaves (portable, unit-tested
// in tests/unit/vmx_guest_cpuid.cpp): the native values, the hypervisor bit
// set, and every feature removed whose MSRs the MSR policy (vmx/msr_policy)
// refuses or whose instructions microhv does not let the guest use -- so no
// feature is advertised that then #GPs -- plus the bits that mirror per-VP
// state the CPU executing CPUID for the guest cannot know (APIC enabled,
// CR4.OSXSAVE, CR4.PKE). Leaves 0x40000000-0x400000FF come from the core.
//
// Hidden: VMX, SMX, SGX (leaf 12H); the PMU (leaf 0AH, PDCM, DS, DTES64,
// DS-CPL) and Intel PT (leaf 14H) -- they write to physical memory and run
// in VMX root too; MPX (XCR0 bits 4:3), CET, PKS, the supervisor XSAVE
// states (IA32_XSS); resource director technology (leaves 0FH, 10H); TME,
// PCONFIG (leaf 1BH), Key Locker (leaf 19H); architectural LBRs;
// IA32_CORE_CAPABILITIES (split-lock detection); the hardware feedback
// interface and thread director (leaf 6); MONITOR/MWAIT (CPUID.1:ECX[3],
// leaf 5), as KVM and Hyper-V do by default: they exit and #UD, and the guest
// idles with HLT (see guest_cpuid.cpp for why).
#pragma once

#include <stdint.h>

#include "hypercall/cpuid.hpp"

namespace microhv::vmx {

struct GuestCpuidContext {
  bool apic_enabled;  // the VP's IA32_APIC_BASE.EN
  uint64_t cr4;       // the guest's CR4 as it sees it
};

CpuidRegs guest_cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs native,
                      const GuestCpuidContext& vp);

}  // namespace microhv::vmx
