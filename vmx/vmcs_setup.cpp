#include "vmx/vmcs_setup.hpp"

#include "arch/descriptors.hpp"
#include "arch/x86.hpp"

namespace microhv::vmx {
namespace {

void write_controls(VmcsWriter& w, const VmcsSetup& s) {
  const ControlSet& ctl = s.controls;
  w(Field::kPinControls, ctl.pin.value);
  w(Field::kProcControls, ctl.proc.value);
  w(Field::kProcControls2, ctl.proc2.value);
  w(Field::kExitControls, ctl.exit.value);
  w(Field::kEntryControls, ctl.entry.value);
  w(Field::kExceptionBitmap, 0);
  w(Field::kPfErrorCodeMask, 0);
  w(Field::kPfErrorCodeMatch, 0);
  w(Field::kCr3TargetCount, 0);
  w(Field::kExitMsrStoreCount, 0);
  w(Field::kExitMsrLoadCount, 0);
  w(Field::kEntryMsrLoadCount, 0);
  w(Field::kEntryInterruptionInfo, 0);
  w(Field::kMsrBitmap, s.msr_bitmap);
  w(Field::kTscOffset, 0);  // the guest's TSC is the real one until it writes IA32_TSC
  w(Field::kIoBitmapA, s.io_bitmap_a);
  w(Field::kIoBitmapB, s.io_bitmap_b);
  w(Field::kEptPointer, s.eptp);
  w(Field::kVpid, s.vpid);
  w(Field::kVmcsLinkPointer, ~0ull);  // no shadow VMCS (SDM 26.3.1.5)
  // CR0/CR4: microhv owns the VMX fixed bits; the guest reads its own values.
  w(Field::kCr0Mask, guest_cr0_mask(s.caps, true));
  w(Field::kCr0ReadShadow, s.guest.cr0);
  w(Field::kCr4Mask, guest_cr4_mask(s.caps));
  w(Field::kCr4ReadShadow, s.guest.cr4);
}

void write_host_state(VmcsWriter& w, const HostState& h) {
  w(Field::kHostCr0, h.cr0);
  w(Field::kHostCr3, h.cr3);
  w(Field::kHostCr4, h.cr4);
  w(Field::kHostCsSel, h.cs);
  w(Field::kHostSsSel, 0);
  w(Field::kHostDsSel, 0);
  w(Field::kHostEsSel, 0);
  w(Field::kHostFsSel, 0);
  w(Field::kHostGsSel, 0);
  w(Field::kHostTrSel, h.tr);
  w(Field::kHostFsBase, 0);
  w(Field::kHostGsBase, h.gs_base);
  w(Field::kHostTrBase, h.tr_base);
  w(Field::kHostGdtrBase, h.gdtr_base);
  w(Field::kHostIdtrBase, h.idtr_base);
  w(Field::kHostSysenterCs, 0);
  w(Field::kHostSysenterEsp, 0);
  w(Field::kHostSysenterEip, 0);
  w(Field::kHostEfer, h.efer);
  w(Field::kHostPat, h.pat);
  w(Field::kHostRsp, h.rsp);
  w(Field::kHostRip, h.rip);
}

void write_segment(VmcsWriter& w, Field selector_field, const arch::SegmentState& s) {
  w.segment(selector_field, s.selector, s.base, s.limit, s.access);
}

// The firmware on this CPU exactly as it was in microhv_virtualize.
void write_guest_state(VmcsWriter& w, const VmcsSetup& s) {
  const GuestStart& g = s.guest;
  w(Field::kGuestCr0, guest_cr0(s.caps, g.cr0, true));
  w(Field::kGuestCr3, g.cr3);
  w(Field::kGuestCr4, g.cr4 | s.caps.cr4_fixed0);
  w(Field::kGuestDr7, g.dr7);
  w(Field::kGuestRsp, s.guest_rsp);
  w(Field::kGuestRip, s.guest_rip);
  w(Field::kGuestRflags, s.guest_rflags);
  w(Field::kGuestEfer, g.efer);
  w(Field::kGuestPat, g.pat);
  w(Field::kGuestDebugctl, g.debugctl);
  w(Field::kGuestSysenterCs, g.sysenter_cs);
  w(Field::kGuestSysenterEsp, g.sysenter_esp);
  w(Field::kGuestSysenterEip, g.sysenter_eip);
  w(Field::kGuestGdtrBase, g.gdtr_base);
  w(Field::kGuestGdtrLimit, g.gdtr_limit);
  w(Field::kGuestIdtrBase, g.idtr_base);
  w(Field::kGuestIdtrLimit, g.idtr_limit);
  w(Field::kGuestInterruptibility, 0);
  w(Field::kGuestActivityState, activity::kActive);
  w(Field::kGuestPendingDebug, 0);

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
    write_segment(w, seg.field, state);
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
  write_segment(w, Field::kGuestTrSel, tr);
}

}  // namespace

bool write_initial_vmcs(VmcsAccess& vmcs, const VmcsSetup& s) {
  VmcsWriter w(vmcs);
  write_controls(w, s);
  write_host_state(w, s.host);
  write_guest_state(w, s);
  return w.ok();
}

}  // namespace microhv::vmx
