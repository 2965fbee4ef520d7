#include "vmx/exit_handlers.hpp"

namespace microhv::vmx {

// ---- I/O instruction (30): only the test device port exits (I/O bitmap,
// `testdev = on`). Its 32-bit OUT goes to the core; every other access to
// it behaves as on real hardware.
ExitAction on_io(ExitContext& c) {
  const IoAccess a = decode_io(c.qualification);
  switch (route_io(a, c.testdev)) {
    case IoRoute::kTestDevice:
      c.core.testdev_write(static_cast<uint32_t>(c.regs.rax));
      return ExitAction::kAdvance;
    case IoRoute::kPassThrough:
      if (a.in) {
        const uint32_t v = c.cpu.io_in(a.port, a.size);
        if (a.size == 4) {
          c.regs.rax = v;  // a 32-bit register write clears bits 63:32
        } else {
          const uint64_t mask = a.size == 1 ? 0xFFull : 0xFFFFull;
          c.regs.rax = (c.regs.rax & ~mask) | (v & mask);
        }
      } else {
        c.cpu.io_out(a.port, a.size, static_cast<uint32_t>(c.regs.rax));
      }
      return ExitAction::kAdvance;
    case IoRoute::kStepNatively:
      if (!c.cpu.step_io_natively(a.port)) {
        return stop(c, "string I/O on an intercepted port needs the monitor trap flag");
      }
      return ExitAction::kRetry;
  }
  return stop(c, "I/O exit");
}

// ---- Monitor trap flag (37): the natively stepped string I/O is done.
ExitAction on_monitor_trap(ExitContext& c) {
  if (!c.cpu.end_io_step()) return stop(c, "monitor trap flag exit without a stepped instruction");
  return ExitAction::kRetry;
}

}  // namespace microhv::vmx
