// The software VM-entry checker (vmx/entry_check/) over microhv's own VMCS
// on every capability set microhv accepts (the matrix in
// vmx/entry_check/cap_matrix.cpp): (a) the VMCS the exit handlers and the
// injection logic leave behind, (b) the controls compute_controls()
// produces, (c) the launch VMCS. The rules are those of SDM Vol. 3C
// chapter 27 (see vmx/entry_check/rules.hpp for the edition).
#include "tests/unit/vmx_entry_check_rig.hpp"

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::test;

namespace {

// One VP: its VMCS image, registers and pending events, and the exit
// handlers driven as the back end drives them.
struct GuestVp {
  explicit GuestVp(const MatrixEntry& e, bool bsp_ = true) : entry(e), bsp(bsp_) {
    write_launch_vmcs(vmcs, e.caps.msrs);
  }

  // A VM exit: the processor's exit fields, the handler, RIP handling as
  // in the back end's advance_rip(), then the injection before re-entry.
  ExitAction exit(uint32_t reason, uint64_t qualification = 0, uint32_t length = 2) {
    vmcs.write(Field::kExitReason, reason);
    vmcs.write(Field::kExitQualification, qualification);
    vmcs.write(Field::kExitInstructionLength, length);
    ExitContext ctx{reason, qualification, regs, vmcs, cpu, core, events, entry.caps.msrs};
    ctx.bsp = bsp;
    ctx.cpu_state = &cpu_state;
    const ExitAction a = dispatch_exit(ctx);
    if (a == ExitAction::kAdvance) {
      vmcs.write(Field::kGuestRip, vmcs.read(Field::kGuestRip) + length);
      const uint64_t intr = vmcs.read(Field::kGuestInterruptibility);
      vmcs.write(Field::kGuestInterruptibility,
                 intr & ~static_cast<uint64_t>(interruptibility::kBlockingBySti |
                                               interruptibility::kBlockingByMovSs));
    }
    return a;
  }
  void enter(const char* what) {
    write_injection(vmcs, events);
    require_clean(vmcs.image, entry.caps, what);
  }
  uint32_t injected() { return static_cast<uint32_t>(vmcs.read(Field::kEntryInterruptionInfo)); }

  const MatrixEntry& entry;
  bool bsp;
  ImageVmcs vmcs;
  EntryCheckCpu cpu;
  EntryCheckCore core;
  PendingEvents events;
  VpCpuState cpu_state;  // the MSR exits' per-VP state (vmx/vp_cpu_state.hpp)
  GuestRegs regs{};
};

// MOV to CR0/CR4 from RAX (exit qualification, SDM Vol. 3C Table 28-3).
constexpr uint64_t mov_to_cr(unsigned cr) {
  return cr;
}

}  // namespace

TEST_CASE("entry check: the launch VMCS passes on every accepted capability set") {
  for_each_usable_set([](const MatrixEntry& e) {
    GuestVp vp(e);
    vp.enter("launch");
    CHECK(vp.injected() == 0);
  });
}

TEST_CASE("entry check: compute_controls() output passes the control checks everywhere") {
  // The controls microhv runs with, alone and with the bits the back end
  // adds at run time (interrupt/NMI window, MTF where allowed), for a guest
  // starting in and out of IA-32e mode.
  for_each_usable_set([](const MatrixEntry& e) {
    const FeatureDecision d = decide_features(e.caps.msrs);
    for (bool ia32e : {true, false}) {
      const ControlSet ctl = compute_controls(e.caps.msrs, ia32e);
      REQUIRE(ctl.ok());
      uint32_t extra = proc::kInterruptWindowExiting | proc::kNmiWindowExiting;
      if (d.mtf) extra |= proc::kMonitorTrapFlag;
      for (uint32_t proc_bits : {0u, extra}) {
        GuestVp vp(e);
        vp.vmcs.write(Field::kEntryControls, ctl.entry.value);
        vp.vmcs.write(Field::kProcControls, ctl.proc.value | proc_bits);
        const CheckReport r = check_vm_entry(vp.vmcs.image, e.caps);
        for (uint32_t i = 0; i < r.count; ++i) {
          const auto rule = static_cast<unsigned>(r.items[i].rule);
          INFO("ia32e " << ia32e << "\n" << describe(r));
          // Guest-state rules follow from the IA-32e control on this image;
          // only the control rules (27.2.1) are about compute_controls().
          CHECK((rule < static_cast<unsigned>(Rule::kPinControls) ||
                 rule > static_cast<unsigned>(Rule::kEntryMsrArea)));
        }
      }
    }
  });
}

TEST_CASE("entry check: CPUID, MSR, VMX-instruction and CR exits leave an enterable VMCS") {
  for_each_usable_set([](const MatrixEntry& e) {
    GuestVp vp(e);
    vp.regs.rax = 1;
    REQUIRE(vp.exit(exit_reason::kCpuid) == ExitAction::kAdvance);
    vp.enter("after CPUID");

    vp.regs.rcx = 0x12345678;  // an MSR the CPU faults on: #GP(0)
    REQUIRE(vp.exit(exit_reason::kWrmsr) == ExitAction::kRetry);
    vp.enter("after WRMSR -> #GP");
    CHECK(vp.injected() == make_intr_info(vector::kGp, EventType::kHardwareException, true));

    REQUIRE(vp.exit(exit_reason::kVmxon, 0, 4) == ExitAction::kRetry);
    vp.enter("after VMXON -> #UD");
    CHECK(vp.injected() == make_intr_info(vector::kUd, EventType::kHardwareException, false));

    vp.regs.rax = 0x6E8;  // PGE on
    REQUIRE(vp.exit(exit_reason::kCrAccess, mov_to_cr(4), 3) == ExitAction::kAdvance);
    vp.enter("after MOV to CR4");
    vp.regs.rax = 0xC0010033;  // caches off (CD, NW are never checked at entry)
    REQUIRE(vp.exit(exit_reason::kCrAccess, mov_to_cr(0), 3) == ExitAction::kAdvance);
    vp.enter("after MOV to CR0 setting CD/NW");
  });
}

TEST_CASE("entry check: NMIs and interrupts, blocked and injected, leave an enterable VMCS") {
  for_each_usable_set([](const MatrixEntry& e) {
    GuestVp vp(e);
    // A genuine NMI (no inbox: every NMI is genuine), while STI blocks it.
    vp.vmcs.write(Field::kGuestRflags, 0x202);
    vp.vmcs.write(Field::kGuestInterruptibility, interruptibility::kBlockingBySti);
    vp.vmcs.write(Field::kExitInterruptionInfo,
                  make_intr_info(vector::kNmi, EventType::kNmi, false));
    REQUIRE(vp.exit(exit_reason::kExceptionOrNmi) == ExitAction::kRetry);
    vp.enter("NMI pending under STI blocking");
    CHECK(vp.injected() == 0);
    CHECK((vp.vmcs.read(Field::kProcControls) & proc::kNmiWindowExiting) != 0);
    // The window opens: the NMI goes in.
    vp.vmcs.write(Field::kGuestInterruptibility, 0);
    REQUIRE(vp.exit(exit_reason::kNmiWindow) == ExitAction::kRetry);
    vp.enter("NMI injected");
    CHECK(vp.injected() == make_intr_info(vector::kNmi, EventType::kNmi, false));

    // A SINT vector while IF = 0, then IF = 1 in HLT.
    vp.events.queue_interrupt(0x50);
    vp.vmcs.write(Field::kGuestRflags, 0x2);
    vp.enter("interrupt pending with IF = 0");
    CHECK(vp.injected() == 0);
    vp.vmcs.write(Field::kGuestRflags, 0x2 | arch::rflags::kIf);
    if (decide_features(e.caps.msrs).activity_hlt) {
      vp.vmcs.write(Field::kGuestActivityState, activity::kHlt);
    }
    REQUIRE(vp.exit(exit_reason::kInterruptWindow) == ExitAction::kRetry);
    vp.enter("interrupt injected (waking HLT)");
    CHECK(vp.injected() == make_intr_info(0x50, EventType::kExternalInterrupt, false));

    // An INT 0x80 cut off by an exit (IDT-vectoring information).
    vp.events.record_idt_vectoring(make_intr_info(0x80, EventType::kSoftwareInterrupt, false), 0,
                                   2);
    vp.enter("software interrupt re-injected");
    CHECK(vp.vmcs.read(Field::kEntryInstructionLength) == 2);
  });
}

TEST_CASE("entry check: INIT of the BSP and real-mode injection leave an enterable VMCS") {
  for_each_usable_set([](const MatrixEntry& e) {
    GuestVp vp(e, true);
    REQUIRE(vp.exit(exit_reason::kInit) == ExitAction::kRetry);
    vp.enter("BSP after INIT (real mode at F000:FFF0)");
    CHECK(vp.vmcs.read(Field::kGuestActivityState) == activity::kActive);
    // Real mode: #GP goes in without an error code (unrestricted guest).
    vp.regs.rcx = 0x12345678;
    REQUIRE(vp.exit(exit_reason::kRdmsr) == ExitAction::kRetry);
    vp.enter("#GP in real mode");
    CHECK(vp.injected() == make_intr_info(vector::kGp, EventType::kHardwareException, false));
    vp.events.record_idt_vectoring(make_intr_info(0x10, EventType::kSoftwareInterrupt, false), 0,
                                   2);
    vp.enter("INT 10h re-injected in real mode");
  });
}

TEST_CASE("entry check: an AP's INIT, SIPI and switch to protected mode leave an enterable VMCS") {
  for_each_usable_set([](const MatrixEntry& e) {
    // Sets without the wait-for-SIPI activity state: vmx_entry_check_known.cpp.
    if (!decide_features(e.caps.msrs).activity_wait_for_sipi) return;
    GuestVp vp(e, false);
    REQUIRE(vp.exit(exit_reason::kInit) == ExitAction::kRetry);
    vp.events.queue_interrupt(0x40);  // nothing may be injected while waiting
    vp.enter("AP after INIT (wait-for-SIPI)");
    CHECK(vp.injected() == 0);
    vp.vmcs.write(Field::kGuestInterruptibility,
                  interruptibility::kBlockingBySmi | interruptibility::kBlockingByNmi);
    REQUIRE(vp.exit(exit_reason::kSipi, 0x9A) == ExitAction::kRetry);
    vp.enter("AP after SIPI 9Ah");
    // The trampoline sets CR0.PE (with NE, which exits: NE is owned).
    vp.regs.rax = 0x31;
    REQUIRE(vp.exit(exit_reason::kCrAccess, mov_to_cr(0), 3) == ExitAction::kAdvance);
    vp.enter("AP in protected mode with real-mode segments");
  });
}

TEST_CASE("entry check: every matrix row is self-consistent") {
  for (uint32_t i = 0; i < capability_matrix_size(); ++i) {
    const MatrixEntry& e = capability_matrix(i);
    INFO(e.name << " from " << e.source);
    const VmxCapabilities& m = e.caps.msrs;
    const PresentCapabilityMsrs p = present_capability_msrs(m.basic, m.procbased, m.procbased2);
    // An MSR that does not exist must be recorded as 0.
    if (!p.true_controls) CHECK((m.true_pinbased | m.true_procbased | m.true_exit) == 0);
    if (!p.ept_vpid_cap) CHECK(m.ept_vpid_cap == 0);
    if (!p.vmfunc) CHECK(e.caps.vmfunc == 0);
    // The TRUE_* MSRs may only relax default1 bits (SDM Vol. 3D A.2).
    if (p.true_controls) {
      CHECK((m.true_procbased >> 32) == (m.procbased >> 32));
      CHECK((static_cast<uint32_t>(m.true_procbased) & ~static_cast<uint32_t>(m.procbased)) == 0);
    }
    CHECK(e.caps.maxphyaddr >= 36);
    CHECK(find_capability_set(e.name) == &e);
  }
  CHECK(find_capability_set("bochs:no-such-model") == nullptr);
}

TEST_CASE("entry check: QEMU feature words become the MSR values QEMU gives KVM") {
  // Skylake-Server: TRUE_PROCBASED allows CR3-load/store exiting to be 0
  // (listed features), the legacy MSR forces them; the exit controls allow
  // "host address-space size" because the model has long mode.
  const MatrixEntry* s = find_capability_set("qemu-kvm:Skylake-Server");
  REQUIRE(s != nullptr);
  CHECK(s->caps.msrs.basic == 0x00D8100011E57ED0ull);
  CHECK(s->caps.msrs.true_procbased == 0xFFF9FFFE04006172ull);
  CHECK(s->caps.msrs.procbased == 0xFFF9FFFE0401E172ull);
  CHECK(s->caps.msrs.true_pinbased == 0x000000FF00000016ull);
  CHECK(s->caps.msrs.true_exit == 0x007FFFFF00036DFBull);
  CHECK(s->caps.msrs.true_entry == 0x0000F3FF000011FBull);
  CHECK(s->caps.msrs.procbased2 == 0x00037BFF00000000ull);
  CHECK(s->caps.msrs.ept_vpid_cap == 0x00000F0106334041ull);
  CHECK(s->caps.msrs.misc == 0x20000065ull);
  // Penryn has no TRUE_* MSRs: the legacy ones carry the default1 bits.
  const MatrixEntry* p = find_capability_set("qemu-kvm:Penryn");
  REQUIRE(p != nullptr);
  CHECK((p->caps.msrs.basic & kBasicTrueControls) == 0);
  CHECK(p->caps.msrs.true_procbased == 0);
  CHECK(static_cast<uint32_t>(p->caps.msrs.procbased) == 0x0401E172u);
}
