#include "vmx/vmcs_setup.hpp"

#include "arch/descriptors.hpp"
#include "arch/x86.hpp"

namespace microhv::vmx {
namespace {

void write_controls(VmcsAccess& vmcs, const VmcsSetup& s) {
  const ControlSet& ctl = s.controls;
  vmcs.write(Field::kPinControls, ctl.pin.value);
  vmcs.write(Field::kProcControls, ctl.proc.value);
  vmcs.write(Field::kProcControls2, ctl.proc2.value);
  vmcs.write(Field::kExitControls, ctl.exit.value);
  vmcs.write(Field::kEntryControls, ctl.entry.value);
  vmcs.write(Field::kExceptionBitmap, 0);
  vmcs.write(Field::kPfErrorCodeMask, 0);
  vmcs.write(Field::kPfErrorCodeMatch, 0);
  vmcs.write(Field::kCr3TargetCount, 0);
  vmcs.write(Field::kExitMsrStoreCount, 0);
  vmcs.write(Field::kExitMsrLoadCount, 0);
  vmcs.write(Field::kEntryMsrLoadCount, 0);
  vmcs.write(Field::kEntryInterruptionInfo, 0);
  vmcs.write(Field::kMsrBitmap, s.msr_bitmap);
  vmcs.write(Field::kIoBitmapA, s.io_bitmap_a);
  vmcs.write(Field::kIoBitmapB, s.io_bitmap_b);
  vmcs.write(Field::kEptPointer, s.eptp);
  vmcs.write(Field::kVpid, s.vpid);
  vmcs.write(Field::kVmcsLinkPointer, ~0ull);  // no shadow VMCS (SDM 26.3.1.5)
  // CR0/CR4: microhv owns the VMX fixed bits; the guest reads its own values.
  vmcs.write(Field::kCr0Mask, guest_cr0_mask(s.caps, true));
  vmcs.write(Field::kCr0ReadShadow, s.guest.cr0);
  vmcs.write(Field::kCr4Mask, guest_cr4_mask(s.caps));
  vmcs.write(Field::kCr4ReadShadow, s.guest.cr4);
}

void write_host_state(VmcsAccess& vmcs, const HostState& h) {
  vmcs.write(Field::kHostCr0, h.cr0);
  vmcs.write(Field::kHostCr3, h.cr3);
  vmcs.write(Field::kHostCr4, h.cr4);
  vmcs.write(Field::kHostCsSel, h.cs);
  vmcs.write(Field::kHostSsSel, 0);
  vmcs.write(Field::kHostDsSel, 0);
  vmcs.write(Field::kHostEsSel, 0);
  vmcs.write(Field::kHostFsSel, 0);
  vmcs.write(Field::kHostGsSel, 0);
  vmcs.write(Field::kHostTrSel, h.tr);
  vmcs.write(Field::kHostFsBase, 0);
  vmcs.write(Field::kHostGsBase, h.gs_base);
  vmcs.write(Field::kHostTrBase, h.tr_base);
  vmcs.write(Field::kHostGdtrBase, h.gdtr_base);
  vmcs.write(Field::kHostIdtrBase, h.idtr_base);
  vmcs.write(Field::kHostSysenterCs, 0);
  vmcs.write(Field::kHostSysenterEsp, 0);
  vmcs.write(Field::kHostSysenterEip, 0);
  vmcs.write(Field::kHostEfer, h.efer);
  vmcs.write(Field::kHostPat, h.pat);
  vmcs.write(Field::kHostRsp, h.rsp);
  vmcs.write(Field::kHostRip, h.rip);
}

void write_segment(VmcsAccess& vmcs, Field selector_field, const arch::SegmentState& s) {
  write_guest_segment(vmcs, selector_field, s.selector, s.base, s.limit, s.access);
}

// The firmware on this CPU exactly as it was in microhv_virtualize.
void write_guest_state(VmcsAccess& vmcs, const VmcsSetup& s) {
  const GuestStart& g = s.guest;
  vmcs.write(Field::kGuestCr0, guest_cr0(s.caps, g.cr0, true));
  vmcs.write(Field::kGuestCr3, g.cr3);
  vmcs.write(Field::kGuestCr4, g.cr4 | s.caps.cr4_fixed0);
  vmcs.write(Field::kGuestDr7, g.dr7);
  vmcs.write(Field::kGuestRsp, s.guest_rsp);
  vmcs.write(Field::kGuestRip, s.guest_rip);
  vmcs.write(Field::kGuestRflags, s.guest_rflags);
  vmcs.write(Field::kGuestEfer, g.efer);
  vmcs.write(Field::kGuestPat, g.pat);
  vmcs.write(Field::kGuestDebugctl, g.debugctl);
  vmcs.write(Field::kGuestSysenterCs, g.sysenter_cs);
  vmcs.write(Field::kGuestSysenterEsp, g.sysenter_esp);
  vmcs.write(Field::kGuestSysenterEip, g.sysenter_eip);
  vmcs.write(Field::kGuestGdtrBase, g.gdtr_base);
  vmcs.write(Field::kGuestGdtrLimit, g.gdtr_limit);
  vmcs.write(Field::kGuestIdtrBase, g.idtr_base);
  vmcs.write(Field::kGuestIdtrLimit, g.idtr_limit);
  vmcs.write(Field::kGuestInterruptibility, 0);
  vmcs.write(Field::kGuestActivityState, activity::kActive);
  vmcs.write(Field::kGuestPendingDebug, 0);

  // 64-bit FS/GS bases live in MSRs, not in the descriptors.
  struct {
    Field field;
    uint16_t selector;
    const uint64_t* base_msr;
  } const segments[] = {
      {Field::kGuestEsSel, g.es, nullptr},    {Field::kGuestCsSel, g.cs, nullptr},
      {Field::kGuestSsSel, g.ss, nullptr},    {Field::kGuestDsSel, g.ds, nullptr},
      {Field::kGuestFsSel, g.fs, &g.fs_base}, {Field::kGuestGsSel, g.gs, &g.gs_base},
      {Field::kGuestLdtrSel, g.ldtr, nullptr}};
  for (const auto& seg : segments) {
    arch::SegmentState state = arch::decode_segment(s.guest_gdt, g.gdtr_limit, seg.selector);
    if (seg.base_msr != nullptr) state.base = *seg.base_msr;
    write_segment(vmcs, seg.field, state);
  }
  // TR must be usable for VM entry (SDM 26.3.1.2). The firmware runs with
  // TR = 0 (no TSS): give the guest an equivalent busy 64-bit TSS of its own
  // at base 0 that nothing uses until the OS loads its own TR.
  namespace access = arch::access;
  arch::SegmentState tr = arch::decode_segment(s.guest_gdt, g.gdtr_limit, g.tr);
  if ((tr.access & access::kUnusable) != 0) {
    tr = arch::SegmentState{g.tr, 0, sizeof(arch::Tss64) - 1,
                            access::kPresent | access::kTypeBusyTss64};
  }
  tr.access = (tr.access & ~access::kTypeMask) | access::kTypeBusyTss64;
  write_segment(vmcs, Field::kGuestTrSel, tr);
}

}  // namespace

void write_initial_vmcs(VmcsAccess& vmcs, const VmcsSetup& s) {
  write_controls(vmcs, s);
  write_host_state(vmcs, s.host);
  write_guest_state(vmcs, s);
}

}  // namespace microhv::vmx
