// IA32_APIC_BASE writes (SDM Vol. 3A 11.4.4, 11.12.5): portable, unit-tested
// (tests/unit/vmx_apic_base.cpp).
//
// microhv keeps each VP's APIC mode and base itself. The guest may move
// between the SDM's states -- xAPIC <-> disabled, xAPIC -> x2APIC, x2APIC ->
// disabled -- and every other transition (x2APIC -> xAPIC, disabled ->
// x2APIC, EN = 0 with EXTD = 1), a reserved bit or an address bit at or
// above MAXPHYADDR is #GP, as on hardware. Moving the APIC page is refused
// with #GP, a documented deviation: the page could be put over microhv's
// memory, and EPT write-protects the one page (read-only, so xAPIC writes
// exit). The BSP bit is read-only and ignored in writes.
//
// "Disabled" is emulated on top of a real APIC that stays enabled in xAPIC
// mode: on hardware a disabled APIC loses its state and can be enabled
// again at any time, but Bochs 2.7 ignores every IA32_APIC_BASE write while
// the APIC is disabled, so the guest would lose its APIC for good, and
// microhv could not kick the CPU either. While the guest's APIC is
// disabled, the real one is set up as a disabled one behaves for
// interrupts (LINT0 delivers ExtINT, LINT1 NMI: the legacy INTR and NMI
// pins go through as without an APIC; every other LVT masked); enabling it
// again puts it into the state after power-up (SDM 11.4.7.1), as hardware
// may (11.4.3). From x2APIC mode the real APIC has to pass through
// disabled to get back to xAPIC mode; where the CPU then ignores the enable
// (Bochs 2.7), the VP is left with the disabled APIC the hardware shows, as
// it would be without microhv, and microhv says so once.
#pragma once

#include <stdint.h>

#include "vmx/exits.hpp"
#include "vmx/vp_cpu_state.hpp"

namespace microhv::vmx {

// IA32_APIC_BASE as the guest reads it.
uint64_t apic_base_value(const ApicState& s);

struct ApicBaseWrite {
  bool gp = false;  // the write raises #GP (nothing changes)
  ApicMode to = ApicMode::kXapic;
  const char* why = nullptr;  // for #GP: which rule
};
// What a WRMSR of `value` does, by the SDM's rules and microhv's refusal
// to relocate.
ApicBaseWrite decide_apic_base_write(const ApicState& s, const CpuFacts& f, uint64_t value);

// Makes the real APIC follow the guest's transition from s.mode to `to`
// (decided valid above) and records the mode that results. False when the
// CPU refused the write (it faulted: the guest gets #GP, nothing changed).
[[nodiscard]] bool apply_apic_transition(CpuServices& cpu, ApicState& s, ApicMode to);

}  // namespace microhv::vmx
