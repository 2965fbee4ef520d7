// VMX control computation against the capability MSRs of Bochs 2.7's
// tigerlake model (read by microhv under Bochs; BASIC, PROCBASED2 allowed-1
// and EPT_VPID_CAP).
#include <catch2/catch.hpp>

#include "arch/vmx/vmcs.hpp"
#include "vmx/controls.hpp"

using namespace microhv::vmx;

namespace {

VmxCapabilities tigerlake() {
  VmxCapabilities c{};
  c.basic = 0x01d8100000000004ull;
  c.pinbased = 0x0000007f00000016ull;
  c.procbased = 0xfff9fffe0401e172ull;
  c.exit = 0x107fffff00036dffull;
  c.entry = 0x0010ffff000011ffull;
  c.true_pinbased = 0x0000007f00000016ull;
  c.true_procbased = 0xfff9fffe04006172ull;
  c.true_exit = 0x107fffff00036dfbull;
  c.true_entry = 0x0010ffff000011fbull;
  c.procbased2 = 0x02977fff00000000ull;
  c.ept_vpid_cap = 0x00000f0106b34141ull;
  c.misc = 0x00000000600401e0ull;
  c.cr0_fixed0 = 0x80000021;
  c.cr0_fixed1 = 0xffffffff;
  c.cr4_fixed0 = 0x2000;
  c.cr4_fixed1 = 0xf72fff;
  return c;
}

}  // namespace

TEST_CASE("vmx controls: (wanted | allowed0) & allowed1") {
  // allowed0 = 0x16 (bits that must be 1), allowed1 = 0x7f.
  constexpr uint64_t cap = 0x0000007f00000016ull;
  STATIC_REQUIRE(adjust_controls(cap, 0, 0).value == 0x16);
  STATIC_REQUIRE(adjust_controls(cap, 0x1, 0).value == 0x17);
  // A required bit outside allowed1 is reported, and not set.
  STATIC_REQUIRE(adjust_controls(cap, 0x80, 0).missing == 0x80);
  STATIC_REQUIRE(adjust_controls(cap, 0x80, 0).value == 0x16);
  // Optional bits are dropped silently.
  STATIC_REQUIRE(adjust_controls(cap, 0, 0x180).value == 0x96 - 0x80 + 0x0);
  STATIC_REQUIRE(adjust_controls(cap, 0, 0x180).missing == 0);
  // A forbidden bit that allowed0 forces on is a conflict.
  STATIC_REQUIRE(adjust_controls(cap, 0, 0, 0x2).conflict == 0x2);
  STATIC_REQUIRE_FALSE(adjust_controls(cap, 0, 0, 0x2).ok());
}

TEST_CASE("vmx controls: tigerlake uses the TRUE_* MSRs (VMX_BASIC bit 55)") {
  const VmxCapabilities c = tigerlake();
  REQUIRE((c.basic & kBasicTrueControls) != 0);
  const ControlSet s = compute_controls(c, true);
  REQUIRE(s.ok());
  // TRUE_PROCBASED lets CR3-load/store exiting (bits 15, 16) be 0; the
  // legacy MSR would force them on (allowed0 0x0401e172 has them).
  CHECK((s.proc.value & proc::kCr3LoadExiting) == 0);
  CHECK((s.proc.value & proc::kCr3StoreExiting) == 0);
  CHECK((c.procbased & proc::kCr3LoadExiting) != 0);
  CHECK(s.proc.value == 0xB600657Au);  // with TSC offsetting (3), MWAIT (10), MONITOR (29)
  CHECK((s.proc.value & proc::kTscOffsetting) != 0);
  // MONITOR/MWAIT exit (and #UD): CPUID hides them (vmx/guest_cpuid.cpp).
  CHECK((s.proc.value & (proc::kMonitorExiting | proc::kMwaitExiting)) ==
        (proc::kMonitorExiting | proc::kMwaitExiting));
  CHECK(s.pin.value == 0x3eu);  // 0x16 default1 + NMI exiting + virtual NMIs
  CHECK(s.proc2.value == 0x1010aau);
  CHECK(s.exit.value == 0x3f6fffu);
  CHECK(s.entry.value == 0xd3ffu);
  // What microhv relies on.
  CHECK((s.proc2.value & proc2::kEnableEpt) != 0);
  CHECK((s.proc2.value & proc2::kEnableVpid) != 0);
  CHECK((s.proc2.value & proc2::kUnrestrictedGuest) != 0);
  CHECK((s.proc2.value & proc2::kEnableRdtscp) != 0);
  CHECK((s.proc2.value & proc2::kEnableInvpcid) != 0);
  CHECK((s.proc2.value & proc2::kEnableXsaves) != 0);
  CHECK((s.proc2.value & proc2::kEnableUserWaitPause) == 0);  // not in allowed-1 0x02977fff
  // The guest owns device interrupts; NMIs exit (the cross-CPU kick), with
  // virtual NMIs so that injected NMIs are unblocked by the guest's IRET.
  CHECK((s.pin.value & pin::kExternalInterruptExiting) == 0);
  CHECK((s.pin.value & (pin::kNmiExiting | pin::kVirtualNmis)) ==
        (pin::kNmiExiting | pin::kVirtualNmis));
  CHECK((s.proc.value & proc::kNmiWindowExiting) == 0);  // only while an NMI waits
  CHECK((s.proc.value & (proc::kUseMsrBitmaps | proc::kUseIoBitmaps | proc::kActivateSecondary)) ==
        (proc::kUseMsrBitmaps | proc::kUseIoBitmaps | proc::kActivateSecondary));
  CHECK((s.proc.value &
         (proc::kHltExiting | proc::kUnconditionalIoExiting | proc::kInterruptWindowExiting)) == 0);
  CHECK((s.entry.value & entry_ctl::kIa32eModeGuest) != 0);
  CHECK((s.exit.value & exit_ctl::kHostAddressSpaceSize) != 0);
  CHECK((s.exit.value & exit_ctl::kAckInterruptOnExit) == 0);
}

TEST_CASE("vmx controls: without TRUE_* MSRs the legacy ones decide") {
  VmxCapabilities c = tigerlake();
  c.basic &= ~kBasicTrueControls;
  c.true_procbased = 0;  // must not be read
  const ControlSet s = compute_controls(c, false);
  // Legacy allowed0 forces CR3 exiting on: microhv refuses rather than run
  // with exits it does not handle.
  CHECK_FALSE(s.proc.ok());
  CHECK((s.proc.conflict & (proc::kCr3LoadExiting | proc::kCr3StoreExiting)) != 0);
  CHECK((s.entry.value & entry_ctl::kIa32eModeGuest) == 0);
}

TEST_CASE("vmx controls: a CPU without EPT or unrestricted guest is refused") {
  VmxCapabilities c = tigerlake();
  c.procbased2 &= ~(static_cast<uint64_t>(proc2::kUnrestrictedGuest) << 32);
  const ControlSet s = compute_controls(c, true);
  CHECK_FALSE(s.ok());
  CHECK(s.proc2.missing == proc2::kUnrestrictedGuest);
}

TEST_CASE("vmx controls: CR0/CR4 fixed bits") {
  const VmxCapabilities c = tigerlake();
  // Unrestricted guest: PE and PG may be 0 in the guest, NE may not.
  CHECK(guest_cr0(c, 0x10, true) == 0x30);
  CHECK(guest_cr0(c, 0x10, false) == 0x80000031);
  CHECK(guest_cr0_mask(c, true) == (1ull << 5));  // CR0.NE
  CHECK(guest_cr4_mask(c) == (0x2000 | (~0xf72fffull & 0xFFFFFFFFull)));
  CHECK(apply_fixed(0x668, c.cr4_fixed0, c.cr4_fixed1) == 0x2668);
}

TEST_CASE("vmx controls: EPTP has WB, a 4-level walk and the PML4 address") {
  const VmxCapabilities c = tigerlake();
  CHECK(make_eptp(0xdf2b000, c.ept_vpid_cap) == 0xdf2b01e);
  CHECK(make_eptp(0x1000, 0) == 0x1018);  // no WB: UC
  CHECK(vmcs_revision(c.basic) == 4);
  CHECK(vmcs_region_size(c.basic) == 0x1000);
}
