// The VMCS writes for event injection right before a VM entry (portable,
// unit-tested through the VM-entry checker in tests/unit/vmx_entry_check*.cpp).
// The back end (vmx/hw/exit_loop.cpp, prepare_entry) drains the VP's inbox
// and reads the activity state first, then calls this with host interrupts
// off; decide_injection() (vmx/injection.hpp) picks the event.
#pragma once

#include <stdint.h>

#include "vmx/injection.hpp"
#include "vmx/vmcs_access.hpp"

namespace microhv::vmx {

// What a VP keeps between entries for this step.
struct EntryEventState {
  // An event is already in the VM-entry fields for this entry (the
  // re-entry path after a late inbox test): it is kept, not decided again.
  // A VM exit clears it (the exit invalidates those fields, SDM 27.2.1.3).
  bool injection_armed = false;
  // The primary processor-based controls as last written, so the window
  // bits cost a VMWRITE only when they change.
  uint32_t proc_controls = 0;
  // The VM-entry interruption-information field as last written has its
  // valid bit set. While it is clear the field needs no VMWRITE to say
  // "nothing to inject" (whether or not the VM exit cleared it, SDM Vol. 3C
  // 28.2.x: the valid bit only ever comes from microhv's own writes).
  bool entry_info_valid = false;
};

// Whether the next VM entry needs the full preparation (inbox drain, INIT,
// TLB inbox, activity state, event injection, window controls), checked
// first so an exit with nothing pending skips it:
//   - `remote_work`: the VP's inbox word (RemoteQueue::work), which every
//     other CPU sets after posting anything for this VP (vectors, INIT,
//     TLB flush, EPT change, stop, host NMI; vmx/smp.hpp) and which
//     entry.S tests once more right before VMRESUME;
//   - a local event (exception, NMI, re-injection, interrupt vector);
//   - an event already armed, or a valid bit left in the entry field;
//   - an interrupt- or NMI-window exit still requested;
//   - `guest_active` false: the activity state is unknown (it may be HLT
//     or wait-for-SIPI, which decide what may be injected and published).
constexpr bool entry_needs_full_prep(uint32_t remote_work, const PendingEvents& events,
                                     const EntryEventState& state, bool guest_active) {
  constexpr uint32_t kWindows = proc::kInterruptWindowExiting | proc::kNmiWindowExiting;
  return remote_work != 0 || !events.empty() || state.injection_armed || state.entry_info_valid ||
         (state.proc_controls & kWindows) != 0 || !guest_active;
}

// Writes, in order: guest interruptibility without blocking by SMI (never
// set outside SMM, SDM 27.3.1.5; Bochs 2.7 reports it after wait-for-SIPI);
// the VM-entry interruption information, error code and instruction length
// of the chosen event (no error code in real mode: unrestricted guest,
// SDM 27.2.1.3); activity HLT -> active when the event wakes the VP; and
// interrupt-window / NMI-window exiting while an interrupt or NMI stays
// pending (NMI window not in wait-for-SIPI or shutdown). `activity_state` is the
// guest activity state the caller read; it is updated on a wake.
// False at the first VMREAD or VMWRITE that failed (the VmcsAccess reported
// it); the caller stops the VP, nothing after that field was written.
[[nodiscard]] bool write_entry_events(VmcsAccess& vmcs, PendingEvents& events,
                                      EntryEventState& state, uint32_t& activity_state);

}  // namespace microhv::vmx
