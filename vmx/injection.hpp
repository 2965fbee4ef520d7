// Event injection decisions (portable, unit-tested). Requests accumulate in
// a per-VP PendingEvents; just before every VM entry, with host interrupts
// off, decide_injection() picks at most one event in a fixed priority order
// (ACRN's order):
//   1. a hardware exception microhv raised (#GP from WRMSR, #UD from VMCALL...)
//   2. an NMI
//   3. an event the last VM exit cut off during delivery (IDT-vectoring info)
//   4. an external interrupt (a SynIC vector), only when the guest can take
//      one now: RFLAGS.IF = 1, no STI / MOV-SS blocking, not waiting for SIPI
// and asks for an interrupt window whenever an external interrupt stays
// pending, so the VM exits as soon as the guest opens interrupts.
// vmx/entry_prep.cpp writes the decision into the VMCS (vmx/hw/exit_loop.cpp
// calls it before every entry).
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"
#include "arch/x86.hpp"

namespace microhv::vmx {

struct GuestInterruptState {
  uint64_t rflags;
  uint32_t interruptibility;  // VMCS guest interruptibility state
  uint32_t activity;          // VMCS guest activity state
};

// Can an external interrupt be injected at this VM entry? (SDM Vol. 3C
// 27.3.1.5 / 6.8.3: IF must be 1 and no blocking by STI or MOV SS; a
// wait-for-SIPI processor takes nothing but SIPI.) True means "inject now";
// false means "request an interrupt window".
constexpr bool can_inject_external_interrupt(const GuestInterruptState& s) {
  return (s.rflags & arch::rflags::kIf) != 0 &&
         (s.interruptibility &
          (interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs)) == 0 &&
         s.activity != activity::kWaitForSipi && s.activity != activity::kShutdown;
}

// NMI: not while NMIs are blocked (the guest is in its NMI handler), not in
// a MOV-SS/STI shadow (SDM 27.3.1.5: entry fails on some processors).
constexpr bool can_inject_nmi(const GuestInterruptState& s) {
  return (s.interruptibility &
          (interruptibility::kBlockingByNmi | interruptibility::kBlockingByMovSs |
           interruptibility::kBlockingBySti)) == 0 &&
         s.activity != activity::kWaitForSipi && s.activity != activity::kShutdown;
}

struct PendingEvents {
  // 1. exception
  bool exception = false;
  uint8_t exception_vector = 0;
  bool exception_has_error = false;
  uint32_t exception_error = 0;
  // 2. NMIs not yet delivered (counted: NMIs seen by the host are not lost)
  uint32_t nmis = 0;
  // 3. re-injection of an event cut off by a VM exit
  bool reinject = false;
  uint32_t reinject_info = 0;  // IDT-vectoring information format
  uint32_t reinject_error = 0;
  uint32_t reinject_instruction_length = 0;
  // 4. external interrupt vectors 16..255, injected highest first
  uint64_t vectors[4] = {0, 0, 0, 0};

  // A second exception before the first is delivered replaces it (the
  // hardware would turn the pair into #DF; microhv raises at most one per exit).
  void queue_exception(uint8_t vector, bool has_error, uint32_t error);
  void queue_nmi() { ++nmis; }
  // False for vectors 0..15 (exceptions, never external interrupts).
  bool queue_interrupt(uint8_t vector);
  bool interrupt_pending(uint8_t vector) const {
    return (vectors[vector >> 6] >> (vector & 63)) & 1;
  }
  bool any_interrupt() const { return (vectors[0] | vectors[1] | vectors[2] | vectors[3]) != 0; }
  // Nothing at all to inject or to wait for a window for.
  bool empty() const { return !exception && nmis == 0 && !reinject && !any_interrupt(); }
  // Records the IDT-vectoring information of a VM exit (no-op when not valid).
  void record_idt_vectoring(uint32_t info, uint32_t error, uint32_t instruction_length);
};

struct InjectionDecision {
  bool inject = false;
  uint32_t intr_info = 0;  // VM-entry interruption-information field
  uint32_t error_code = 0;
  uint32_t instruction_length = 0;  // for software interrupts/exceptions
  bool wake = false;                // activity HLT -> active for this injection
  bool interrupt_window = false;    // set interrupt-window exiting
  bool nmi_window = false;          // an NMI stays pending (blocked)
};

// Picks the event for this entry and removes it from `pending`.
InjectionDecision decide_injection(PendingEvents& pending, const GuestInterruptState& state);

}  // namespace microhv::vmx
