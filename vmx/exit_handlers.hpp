// The exit handlers' shared helpers and the handlers that live outside
// exits.cpp (internal to vmx/: exits.cpp builds the dispatch table from
// these). Each handler file holds one concern: MSRs (exit_msr.cpp), control
// registers (exit_cr.cpp), guest memory accesses that fault in EPT (exit_memory.cpp),
// INIT and SIPI (exit_init.cpp), port I/O (exit_io.cpp).
//
// VMCS access in a handler: read() below returns false when the VMREAD
// failed (the VmcsAccess implementation reported it); the handler then
// returns vmcs_failed(c) at once, before it acted on anything. write()
// records a failed VMWRITE; dispatch_exit stops the guest after a handler
// that hit one.
#pragma once

#include "vmx/exits.hpp"

namespace microhv::vmx {

inline uint64_t low32(uint64_t v) {
  return v & 0xFFFFFFFFull;
}

// Queue #GP(0) / #UD for the next entry; RIP stays at the instruction.
inline ExitAction inject_gp(ExitContext& c) {
  c.events.queue_exception(vector::kGp, true, 0);
  return ExitAction::kRetry;
}
inline ExitAction inject_ud(ExitContext& c) {
  c.events.queue_exception(vector::kUd, false, 0);
  return ExitAction::kRetry;
}
inline ExitAction stop(ExitContext& c, const char* why) {
  c.stop_reason = why;
  return ExitAction::kStop;
}

[[nodiscard]] inline bool read(ExitContext& c, Field f, uint64_t* value) {
  if (c.vmcs.read(f, value)) return true;
  c.vmcs_failed = true;
  return false;
}
inline void write(ExitContext& c, Field f, uint64_t value) {
  if (!c.vmcs.write(f, value)) c.vmcs_failed = true;
}
inline ExitAction vmcs_failed(ExitContext& c) {
  c.vmcs_failed = true;
  return stop(c, "a VMREAD or VMWRITE failed (the error above names the field)");
}

// A control register as the guest sees it: its own bits where microhv does
// not own them (the real register), the read shadow where it does (the
// guest/host mask). Bits outside the mask never exit when the guest changes
// them, so the shadow alone is stale for them (e.g. CR4.OSXSAVE, PAE, PCIDE).
[[nodiscard]] bool visible_cr0(ExitContext& c, uint64_t* value);
[[nodiscard]] bool visible_cr4(ExitContext& c, uint64_t* value);

// CPL from SS.DPL (SDM Vol. 3A 5.5).
[[nodiscard]] bool guest_cpl(ExitContext& c, uint32_t* cpl);

ExitAction on_rdmsr(ExitContext& c);          // exit_msr.cpp
ExitAction on_wrmsr(ExitContext& c);          // exit_msr.cpp
ExitAction on_cr_access(ExitContext& c);      // exit_cr.cpp
ExitAction on_ept_violation(ExitContext& c);  // exit_memory.cpp
ExitAction on_ept_misconfig(ExitContext& c);  // exit_memory.cpp
// A guest write to the xAPIC page at `offset` (exit_apic.cpp).
ExitAction emulate_apic_write(ExitContext& c, uint32_t offset);
ExitAction on_init(ExitContext& c);          // exit_init.cpp
ExitAction on_sipi(ExitContext& c);          // exit_init.cpp
ExitAction on_io(ExitContext& c);            // exit_io.cpp
ExitAction on_monitor_trap(ExitContext& c);  // exit_io.cpp

}  // namespace microhv::vmx
