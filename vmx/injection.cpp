#include "vmx/injection.hpp"

namespace microhv::vmx {

void PendingEvents::queue_exception(uint8_t vector, bool has_error, uint32_t error) {
  exception = true;
  exception_vector = vector;
  exception_has_error = has_error;
  exception_error = has_error ? error : 0;
}

bool PendingEvents::queue_interrupt(uint8_t vector) {
  if (vector < 16) return false;
  vectors[vector >> 6] |= 1ull << (vector & 63);
  return true;
}

void PendingEvents::record_idt_vectoring(uint32_t info, uint32_t error,
                                         uint32_t instruction_length) {
  if ((info & intr_info::kValid) == 0) return;
  reinject = true;
  // Bit 12 of IDT-vectoring info is undefined; bits 30:12 of the entry
  // field must be 0.
  reinject_info = info & (intr_info::kValid | intr_info::kDeliverErrorCode | intr_info::kTypeMask |
                          intr_info::kVectorMask);
  reinject_error = error;
  reinject_instruction_length = instruction_length;
}

namespace {

int highest_vector(const uint64_t (&v)[4]) {
  for (int word = 3; word >= 0; --word) {
    if (v[word] != 0) return word * 64 + 63 - __builtin_clzll(v[word]);
  }
  return -1;
}

EventType type_of(uint32_t info) {
  return static_cast<EventType>((info & intr_info::kTypeMask) >> intr_info::kTypeShift);
}

}  // namespace

InjectionDecision decide_injection(PendingEvents& p, const GuestInterruptState& s) {
  InjectionDecision d;
  const bool sipi_wait = s.activity == activity::kWaitForSipi || s.activity == activity::kShutdown;
  if (!sipi_wait) {
    if (p.exception) {
      d.inject = true;
      d.intr_info =
          make_intr_info(p.exception_vector, EventType::kHardwareException, p.exception_has_error);
      d.error_code = p.exception_error;
      p.exception = false;
    } else if (p.nmis > 0 && can_inject_nmi(s)) {
      d.inject = true;
      d.intr_info = make_intr_info(vector::kNmi, EventType::kNmi, false);
      --p.nmis;
    } else if (p.reinject) {
      const EventType t = type_of(p.reinject_info);
      // A cut-off external interrupt obeys the same rules as a new one; a
      // cut-off NMI needs NMI injectability. Exceptions and software events
      // are re-delivered unconditionally.
      const bool ok = t == EventType::kExternalInterrupt ? can_inject_external_interrupt(s)
                      : t == EventType::kNmi             ? can_inject_nmi(s)
                                                         : true;
      if (ok) {
        d.inject = true;
        d.intr_info = p.reinject_info;
        d.error_code = p.reinject_error;
        if (t == EventType::kSoftwareInterrupt || t == EventType::kPrivilegedSoftwareException ||
            t == EventType::kSoftwareException) {
          d.instruction_length = p.reinject_instruction_length;
        }
        p.reinject = false;
      }
    } else if (p.any_interrupt() && can_inject_external_interrupt(s)) {
      const int v = highest_vector(p.vectors);
      d.inject = true;
      d.intr_info = make_intr_info(static_cast<uint8_t>(v), EventType::kExternalInterrupt, false);
      p.vectors[v >> 6] &= ~(1ull << (v & 63));
    }
  }
  d.wake = d.inject && s.activity == activity::kHlt;
  // Anything external still waiting: exit at the next interrupt window.
  d.interrupt_window = p.any_interrupt() ||
                       (p.reinject && type_of(p.reinject_info) == EventType::kExternalInterrupt);
  d.nmi_window = p.nmis > 0;
  return d;
}

}  // namespace microhv::vmx
