#include "vmx/entry_prep.hpp"

#include "arch/x86.hpp"

namespace microhv::vmx {
namespace {

// The event chosen for this entry into the VM-entry fields. `window` is set
// to whether an external interrupt stays pending.
bool arm_injection(VmcsAccess& vmcs, PendingEvents& events, uint32_t interruptibility,
                   uint32_t& activity_state, bool& armed, bool& entry_info_valid, bool& window) {
  // Nothing pending: nothing to inject and no window (decide_injection
  // would say so without needing RFLAGS).
  InjectionDecision d{};
  if (!events.empty()) {
    uint64_t rflags = 0;
    if (!vmcs.read(Field::kGuestRflags, &rflags)) return false;
    d = decide_injection(events, GuestInterruptState{rflags, interruptibility, activity_state});
  }
  window = d.interrupt_window;
  if (!d.inject) {
    if (!entry_info_valid) return true;
    if (!vmcs.write(Field::kEntryInterruptionInfo, 0)) return false;
    entry_info_valid = false;
    return true;
  }
  uint64_t cr0 = 0;
  if (!vmcs.read(Field::kGuestCr0, &cr0)) return false;
  uint32_t info = d.intr_info;
  // With unrestricted guest in real mode no error code may be delivered.
  if ((cr0 & arch::cr0::kPe) == 0) info &= ~intr_info::kDeliverErrorCode;
  entry_info_valid = true;  // until a write of 0 succeeds
  if (!vmcs.write(Field::kEntryInterruptionInfo, info)) return false;
  if ((info & intr_info::kDeliverErrorCode) != 0 &&
      !vmcs.write(Field::kEntryExceptionErrorCode, d.error_code)) {
    return false;
  }
  if (!vmcs.write(Field::kEntryInstructionLength, d.instruction_length)) return false;
  if (d.wake) {
    if (!vmcs.write(Field::kGuestActivityState, activity::kActive)) return false;
    activity_state = activity::kActive;
  }
  armed = true;
  return true;
}

}  // namespace

bool write_entry_events(VmcsAccess& vmcs, PendingEvents& events, EntryEventState& state,
                        uint32_t& activity_state) {
  uint64_t raw = 0;
  if (!vmcs.read(Field::kGuestInterruptibility, &raw)) return false;
  uint32_t intr = static_cast<uint32_t>(raw);
  if ((intr & interruptibility::kBlockingBySmi) != 0) {
    intr &= ~interruptibility::kBlockingBySmi;
    if (!vmcs.write(Field::kGuestInterruptibility, intr)) return false;
  }
  bool window = false;
  if (!state.injection_armed) {
    if (!arm_injection(vmcs, events, intr, activity_state, state.injection_armed,
                       state.entry_info_valid, window))
      return false;
  } else {
    // An event is already armed for this entry (re-entry path): keep it and
    // ask for a window for whatever else is pending.
    window = events.any_interrupt();
  }
  // NMI-window exiting (virtual NMIs): an NMI waiting for the guest's IRET.
  const bool nmi_window = events.nmis > 0 && activity_state != activity::kWaitForSipi &&
                          activity_state != activity::kShutdown;
  uint32_t want = window ? (state.proc_controls | proc::kInterruptWindowExiting)
                         : (state.proc_controls & ~proc::kInterruptWindowExiting);
  want = nmi_window ? (want | proc::kNmiWindowExiting) : (want & ~proc::kNmiWindowExiting);
  if (want != state.proc_controls) {
    if (!vmcs.write(Field::kProcControls, want)) return false;
    state.proc_controls = want;
  }
  return true;
}

}  // namespace microhv::vmx
