#include "vmx/exit_handlers.hpp"
#include "vmx/init_sipi.hpp"

namespace microhv::vmx {
namespace {

// ---- INIT (3) and SIPI (4): see vmx/init_sipi.hpp. INIT leaves the guest
// in real mode (unrestricted guest), waiting for SIPI unless it is the BSP;
// the SIPI starts it at vector * 4096. Whatever was pending for the old
// context (exception, NMI, SINT vectors) is dropped with it.
void write_segment(VmcsAccess& vmcs, Field sel, const RealModeSegment& s) {
  write_guest_segment(vmcs, sel, s.selector, s.base, s.limit, s.access);
}

}  // namespace

// The processor state after INIT (SDM Table 9-1), into the VMCS.
void apply_init_state(VmcsAccess& vmcs, CpuServices& cpu, const VmxCapabilities& caps, bool bsp,
                      GuestRegs& regs, PendingEvents& events) {
  const ResetState s = init_state(vmcs.read(Field::kCr0ReadShadow), cpu.cpuid(1, 0).eax, bsp);
  regs = GuestRegs{};
  regs.rdx = s.rdx;
  regs.rsp = s.rsp;  // the back end writes regs.rsp into the VMCS
  vmcs.write(Field::kCr0ReadShadow, s.cr0);
  vmcs.write(Field::kGuestCr0, guest_cr0(caps, s.cr0, true));
  vmcs.write(Field::kCr4ReadShadow, s.cr4);
  vmcs.write(Field::kGuestCr4, s.cr4 | caps.cr4_fixed0);
  vmcs.write(Field::kGuestCr3, s.cr3);
  vmcs.write(Field::kGuestEfer, s.efer);
  vmcs.write(Field::kEntryControls,
             vmcs.read(Field::kEntryControls) & ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest));
  write_segment(vmcs, Field::kGuestCsSel, s.cs);
  constexpr Field kDataSegments[] = {Field::kGuestEsSel, Field::kGuestSsSel, Field::kGuestDsSel,
                                     Field::kGuestFsSel, Field::kGuestGsSel};
  for (Field f : kDataSegments) write_segment(vmcs, f, s.data);
  write_segment(vmcs, Field::kGuestLdtrSel, s.ldtr);
  write_segment(vmcs, Field::kGuestTrSel, s.tr);
  vmcs.write(Field::kGuestGdtrBase, s.gdtr_base);
  vmcs.write(Field::kGuestGdtrLimit, s.gdtr_limit);
  vmcs.write(Field::kGuestIdtrBase, s.idtr_base);
  vmcs.write(Field::kGuestIdtrLimit, s.idtr_limit);
  vmcs.write(Field::kGuestRip, s.rip);
  vmcs.write(Field::kGuestRsp, s.rsp);
  vmcs.write(Field::kGuestRflags, s.rflags);
  vmcs.write(Field::kGuestDr7, s.dr7);
  vmcs.write(Field::kGuestDebugctl, 0);
  vmcs.write(Field::kGuestSysenterCs, 0);
  vmcs.write(Field::kGuestSysenterEsp, 0);
  vmcs.write(Field::kGuestSysenterEip, 0);
  vmcs.write(Field::kGuestInterruptibility, 0);
  vmcs.write(Field::kGuestPendingDebug, 0);
  vmcs.write(Field::kGuestActivityState, s.activity);
  cpu.reset_debug_registers();
  events = PendingEvents{};
}

ExitAction on_init(ExitContext& c) {
  c.init_or_sipi = true;
  apply_init_state(c.vmcs, c.cpu, c.caps, c.bsp, c.regs, c.events);
  return ExitAction::kRetry;
}

// A SIPI exits only in wait-for-SIPI, i.e. after an INIT (a physical one,
// or one microhv emulated for an INIT IPI the guest sent; see vmx/smp.hpp).
// The AP starts from the INIT state either way.
ExitAction on_sipi(ExitContext& c) {
  c.init_or_sipi = true;
  apply_init_state(c.vmcs, c.cpu, c.caps, c.bsp, c.regs, c.events);
  write_segment(c.vmcs, Field::kGuestCsSel,
                sipi_code_segment(static_cast<uint8_t>(c.qualification & 0xFF)));
  c.vmcs.write(Field::kGuestRip, kSipiRip);
  c.vmcs.write(Field::kGuestActivityState, activity::kActive);
  // The processor starts fresh: whatever the exit recorded as blocked while
  // it waited for SIPI (Bochs reports SMI and NMI blocking there; SMI
  // blocking outside SMM fails VM entry) does not carry over.
  c.vmcs.write(Field::kGuestInterruptibility, 0);
  c.vmcs.write(Field::kGuestPendingDebug, 0);
  return ExitAction::kRetry;
}

}  // namespace microhv::vmx
