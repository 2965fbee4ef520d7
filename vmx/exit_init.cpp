// ---- INIT (3) and SIPI (4): see vmx/init_sipi.hpp. INIT leaves the guest
// in real mode (unrestricted guest), waiting for SIPI unless it is the BSP;
// the SIPI starts it at vector * 4096. Whatever was pending for the old
// context (exception, NMI, SINT vectors) is dropped with it.
#include "vmx/exit_handlers.hpp"
#include "vmx/init_sipi.hpp"

namespace microhv::vmx {
namespace {

void write_segment(VmcsWriter& w, Field selector_field, const RealModeSegment& s) {
  w.segment(selector_field, s.selector, s.base, s.limit, s.access);
}

}  // namespace

// The processor state after INIT (SDM Table 9-1), into the VMCS.
bool apply_init_state(VmcsAccess& vmcs, CpuServices& cpu, const VmxCapabilities& caps, bool bsp,
                      GuestRegs& regs, PendingEvents& events) {
  uint64_t old_cr0 = 0, entry = 0;
  if (!vmcs.read(Field::kCr0ReadShadow, &old_cr0) || !vmcs.read(Field::kEntryControls, &entry)) {
    return false;
  }
  const ResetState s = init_state(old_cr0, cpu.cpuid(1, 0).eax, bsp);
  regs = GuestRegs{};
  regs.rdx = s.rdx;
  regs.rsp = s.rsp;  // the back end writes regs.rsp into the VMCS
  VmcsWriter w(vmcs);
  w(Field::kCr0ReadShadow, s.cr0);
  w(Field::kGuestCr0, guest_cr0(caps, s.cr0, true));
  w(Field::kCr4ReadShadow, s.cr4);
  w(Field::kGuestCr4, s.cr4 | caps.cr4_fixed0);
  w(Field::kGuestCr3, s.cr3);
  w(Field::kGuestEfer, s.efer);
  w(Field::kEntryControls, entry & ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest));
  write_segment(w, Field::kGuestCsSel, s.cs);
  constexpr Field kDataSegments[] = {Field::kGuestEsSel, Field::kGuestSsSel, Field::kGuestDsSel,
                                     Field::kGuestFsSel, Field::kGuestGsSel};
  for (Field f : kDataSegments) write_segment(w, f, s.data);
  write_segment(w, Field::kGuestLdtrSel, s.ldtr);
  write_segment(w, Field::kGuestTrSel, s.tr);
  w(Field::kGuestGdtrBase, s.gdtr_base);
  w(Field::kGuestGdtrLimit, s.gdtr_limit);
  w(Field::kGuestIdtrBase, s.idtr_base);
  w(Field::kGuestIdtrLimit, s.idtr_limit);
  w(Field::kGuestRip, s.rip);
  w(Field::kGuestRsp, s.rsp);
  w(Field::kGuestRflags, s.rflags);
  w(Field::kGuestDr7, s.dr7);
  w(Field::kGuestDebugctl, 0);
  w(Field::kGuestSysenterCs, 0);
  w(Field::kGuestSysenterEsp, 0);
  w(Field::kGuestSysenterEip, 0);
  w(Field::kGuestInterruptibility, 0);
  w(Field::kGuestPendingDebug, 0);
  w(Field::kGuestActivityState, s.activity);
  cpu.reset_debug_registers();
  events = PendingEvents{};
  return w.ok();
}

ExitAction on_init(ExitContext& c) {
  c.init_or_sipi = true;
  if (!apply_init_state(c.vmcs, c.cpu, c.caps, c.bsp, c.regs, c.events)) return vmcs_failed(c);
  return ExitAction::kRetry;
}

// A SIPI exits only in wait-for-SIPI, i.e. after an INIT (a physical one,
// or one microhv emulated for an INIT IPI the guest sent; see vmx/smp.hpp).
// The AP starts from the INIT state either way.
ExitAction on_sipi(ExitContext& c) {
  c.init_or_sipi = true;
  if (!apply_init_state(c.vmcs, c.cpu, c.caps, c.bsp, c.regs, c.events)) return vmcs_failed(c);
  VmcsWriter w(c.vmcs);
  write_segment(w, Field::kGuestCsSel,
                sipi_code_segment(static_cast<uint8_t>(c.qualification & 0xFF)));
  w(Field::kGuestRip, kSipiRip);
  w(Field::kGuestActivityState, activity::kActive);
  // The processor starts fresh: whatever the exit recorded as blocked while
  // it waited for SIPI (Bochs reports SMI and NMI blocking there; SMI
  // blocking outside SMM fails VM entry) does not carry over.
  w(Field::kGuestInterruptibility, 0);
  w(Field::kGuestPendingDebug, 0);
  if (!w.ok()) return vmcs_failed(c);
  return ExitAction::kRetry;
}

}  // namespace microhv::vmx
