// VM-exit handlers and the dispatch table, driven through fake VMCS, CPU and
// core: where RIP goes, what is injected, what reaches the core, and that a
// failed VMREAD or VMWRITE stops the guest.
#include "tests/unit/exit_rig.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::Rig;

TEST_CASE("exits: the dispatch table is bounds-checked") {
  CHECK(exit_handler(exit_reason::kCpuid) != nullptr);
  CHECK(exit_handler(exit_reason::kCount) == nullptr);
  CHECK(exit_handler(0xFFFF) == nullptr);
  CHECK(exit_handler(~0u) == nullptr);
  Rig r;
  CHECK(r.run(0xFFFF) == ExitAction::kStop);
  CHECK(r.stop_reason != nullptr);
  CHECK(r.run(exit_reason::kTaskSwitch) == ExitAction::kStop);  // not expected: stop, never skip
  CHECK(r.run(exit_reason::kHlt) == ExitAction::kStop);         // HLT exiting is off
  CHECK(r.run(exit_reason::kExternalInterrupt) == ExitAction::kStop);
}

TEST_CASE("exits: CPUID passes through shaped by guest_cpuid: hypervisor bit, VMX and DS hidden") {
  Rig r;
  r.regs.rax = 0xFFFFFFFF00000001ull;  // upper half ignored
  r.regs.rcx = 0;
  REQUIRE(r.run(exit_reason::kCpuid) == ExitAction::kAdvance);
  CHECK(r.regs.rax == 0x000806C1);
  CHECK((r.regs.rcx & arch::cpuid1_ecx::kHypervisor) != 0);
  CHECK((r.regs.rcx & arch::cpuid1_ecx::kVmx) == 0);
  CHECK(r.regs.rdx == (0xBFEBFBFF & ~arch::cpuid1_edx::kDs));  // DS hidden, APIC enabled
  r.state.apic.mode = ApicMode::kDisabled;  // CPUID.1:EDX.APIC follows IA32_APIC_BASE.EN
  r.regs.rax = 1;
  REQUIRE(r.run(exit_reason::kCpuid) == ExitAction::kAdvance);
  CHECK((r.regs.rdx & arch::cpuid1_edx::kApic) == 0);
}

TEST_CASE("exits: CPUID 0x40000000-0x400000FF comes from the core") {
  Rig r;
  r.regs.rax = 0x40000000;
  REQUIRE(r.run(exit_reason::kCpuid) == ExitAction::kAdvance);
  CHECK(r.regs.rax == 0x40000005);
  CHECK(r.regs.rbx == 0x7263694D);
  r.regs.rax = 0x400000FF;  // the core does not define it: zeros, not the host's
  REQUIRE(r.run(exit_reason::kCpuid) == ExitAction::kAdvance);
  CHECK(r.regs.rax == 0);
  CHECK(r.regs.rbx == 0);
  r.regs.rax = 0x40000100;  // outside the range: native
  REQUIRE(r.run(exit_reason::kCpuid) == ExitAction::kAdvance);
  CHECK(r.regs.rax == 0x40000100);
}

TEST_CASE("exits: synthetic RDMSR/WRMSR go to the core; #GP leaves RIP alone") {
  Rig r;
  r.regs.rcx = 0x40000002;
  REQUIRE(r.run(exit_reason::kRdmsr) == ExitAction::kAdvance);
  CHECK(r.regs.rax == 7);
  CHECK(r.regs.rdx == 0);
  r.regs.rcx = 0x40000001;
  CHECK(r.run(exit_reason::kRdmsr) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  CHECK(r.events.exception_has_error);

  Rig w;
  w.regs.rcx = 0x40000000;
  w.regs.rax = 0xFFFFFFFF00001234ull;  // only EAX counts
  w.regs.rdx = 0x81000000;
  REQUIRE(w.run(exit_reason::kWrmsr) == ExitAction::kAdvance);
  REQUIRE(w.core.writes.size() == 1);
  CHECK(w.core.writes[0].second == 0x8100000000001234ull);
  CHECK(w.cpu.written.empty());  // never reaches the real MSR
}

TEST_CASE("exits: an MSR the policy does not name is #GP both ways and never reaches the CPU") {
  for (uint32_t m : {0x40000100u, 0x12345678u, 0x2000u, 0xC0002000u}) {
    Rig r;
    r.regs.rcx = m;
    CHECK(r.run(exit_reason::kRdmsr) == ExitAction::kRetry);
    CHECK(r.injected(vector::kGp));
    Rig w;
    w.regs.rcx = m;
    CHECK(w.run(exit_reason::kWrmsr) == ExitAction::kRetry);
    CHECK(w.injected(vector::kGp));
    CHECK(w.cpu.written.empty());
  }
}

TEST_CASE("exits: a pass-through MSR that exits anyway is replayed fault-safe") {
  Rig r;
  r.regs.rcx = 0xC0000082;  // IA32_LSTAR
  REQUIRE(r.run(exit_reason::kRdmsr) == ExitAction::kAdvance);
  CHECK(r.regs.rax == 0x11223344);
  CHECK(r.regs.rdx == 0xAABBCCDD);
  Rig w;
  w.regs.rcx = 0xC0000082;
  w.regs.rax = 0x1000;
  REQUIRE(w.run(exit_reason::kWrmsr) == ExitAction::kAdvance);
  REQUIRE(w.cpu.written.size() == 1);
  CHECK(w.cpu.written[0] == std::make_pair(0xC0000082u, uint64_t{0x1000}));
}

TEST_CASE("exits: VMCALL hands the registers and mode to the core") {
  Rig r;
  r.regs.rcx = 0x1005C;
  r.regs.rdx = 0x1000;
  r.regs.r8 = 0x2000;
  REQUIRE(r.run(exit_reason::kVmcall) == ExitAction::kAdvance);
  CHECK(r.core.last.mode == CpuMode::kLong64);
  CHECK(r.core.last.cpl == 0);
  CHECK(r.core.last.rcx == 0x1005C);
  CHECK(r.core.last.rdx == 0x1000);
  CHECK(r.core.last.r8 == 0x2000);
  CHECK(r.regs.rax == 0x2);
  CHECK_FALSE(r.events.exception);
}

TEST_CASE("exits: a continued rep call keeps RIP, writes RCX and ends an STI shadow") {
  // TLFS "Hypercall Continuation": RIP stays at the VMCALL, the rep start
  // index is updated in RCX, RAX is not written (no result yet); pending
  // interrupts must be taken before the VMCALL runs again, so the one
  // instruction an STI or MOV SS shadow covered is over.
  Rig r;
  r.regs.rcx = 0x000000C800000003ull;  // FlushVirtualAddressList, 200 reps
  r.regs.rax = 0x1234;
  r.core.next = {HypercallEnd::kContinue, 0x004000C800000003ull};
  r.vmcs.fields[Field::kGuestInterruptibility] = interruptibility::kBlockingBySti;
  REQUIRE(r.run(exit_reason::kVmcall) == ExitAction::kRetry);
  CHECK(r.regs.rcx == 0x004000C800000003ull);
  CHECK(r.regs.rax == 0x1234);
  CHECK(r.vmcs.fields[Field::kGuestInterruptibility] == 0);
  CHECK_FALSE(r.events.exception);

  Rig mov_ss;  // MOV-SS blocking too; other interruptibility bits stay
  mov_ss.core.next = r.core.next;
  mov_ss.vmcs.fields[Field::kGuestInterruptibility] =
      interruptibility::kBlockingByMovSs | interruptibility::kBlockingByNmi;
  REQUIRE(mov_ss.run(exit_reason::kVmcall) == ExitAction::kRetry);
  CHECK(mov_ss.vmcs.fields[Field::kGuestInterruptibility] == interruptibility::kBlockingByNmi);

  Rig compat;  // 32-bit convention: EDX:EAX is the input value
  compat.vmcs.fields[Field::kGuestCsAccess] = 0xC09B;  // CS.L = 0
  compat.core.next = r.core.next;
  compat.regs.rcx = 0x1000;
  REQUIRE(compat.run(exit_reason::kVmcall) == ExitAction::kRetry);
  CHECK(compat.regs.rdx == 0x004000C8);
  CHECK(compat.regs.rax == 0x00000003);
  CHECK(compat.regs.rcx == 0x1000);  // the input GPA (EBX:ECX) stays
}

TEST_CASE("exits: VMCALL from CPL3 or real mode gets #UD and RIP stays") {
  Rig r;
  r.vmcs.fields[Field::kGuestSsAccess] = 0xC0F3;  // DPL 3
  CHECK(r.run(exit_reason::kVmcall) == ExitAction::kRetry);
  CHECK(r.core.last.cpl == 3);
  CHECK(r.injected(vector::kUd));
  Rig real;
  real.vmcs.fields[Field::kGuestCr0] = 0x30;
  CHECK(real.run(exit_reason::kVmcall) == ExitAction::kRetry);
  CHECK(real.core.last.mode == CpuMode::kReal);
  CHECK(real.injected(vector::kUd));
}

TEST_CASE("exits: guest CPU mode") {
  CHECK(guest_cpu_mode(0x30, 0x2, 0, 0) == CpuMode::kReal);
  CHECK(guest_cpu_mode(0x31, 0x20002, 0, 0x9B) == CpuMode::kVirtual8086);
  CHECK(guest_cpu_mode(0x80000031, 0x2, 0xD00, 0xA09B) == CpuMode::kLong64);
  CHECK(guest_cpu_mode(0x80000031, 0x2, 0xD00, 0xC09B) ==
        CpuMode::kProtected);  // compatibility mode
  CHECK(guest_cpu_mode(0x31, 0x2, 0, 0xC09B) == CpuMode::kProtected);
}

TEST_CASE("exits: XSETBV is validated, then executed") {
  CHECK(xsetbv_valid(0, 0x1, 0x7));
  CHECK(xsetbv_valid(0, 0x7, 0x7));
  CHECK_FALSE(xsetbv_valid(1, 0x1, 0x7));  // only XCR0
  CHECK_FALSE(xsetbv_valid(0, 0x6, 0x7));  // x87 must stay on
  CHECK_FALSE(xsetbv_valid(0, 0x5, 0x7));  // AVX without SSE
  CHECK_FALSE(xsetbv_valid(0, 0xF, 0x7));  // beyond what the CPU has
  CHECK(xsetbv_valid(0, 0x1F, 0x1F));      // MPX: BNDREG and BNDCSR together
  CHECK(xsetbv_valid(0, 0x1B, 0x1F));
  CHECK_FALSE(xsetbv_valid(0, 0x0B, 0x1F));  // not one of them alone
  CHECK(xsetbv_valid(0, 0xE7, 0xFF));        // AVX-512 all three with AVX
  CHECK_FALSE(xsetbv_valid(0, 0x67, 0xFF));  // not a subset

  Rig r;
  r.regs.rcx = 0;
  r.regs.rax = 7;
  r.regs.rdx = 0;
  REQUIRE(r.run(exit_reason::kXsetbv) == ExitAction::kAdvance);
  CHECK(r.cpu.xcr0 == 7);
  r.regs.rax = 0xF;
  CHECK(r.run(exit_reason::kXsetbv) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  Rig no_osxsave;
  no_osxsave.vmcs.fields[Field::kGuestCr4] = 0x2668;
  no_osxsave.vmcs.fields[Field::kCr4ReadShadow] = 0x668;
  no_osxsave.regs.rax = 7;
  CHECK(no_osxsave.run(exit_reason::kXsetbv) == ExitAction::kRetry);
  CHECK(no_osxsave.injected(vector::kUd));
  // CR4.OSXSAVE is not a bit microhv owns (not in the CR4 mask): the guest
  // sets it without an exit, so the read shadow still shows the old value.
  // The real CR4 decides (Linux's first XSETBV after enabling OSXSAVE).
  Rig stale;
  stale.vmcs.fields[Field::kCr4Mask] = 0x2000 | 0xFF000000ull;
  stale.vmcs.fields[Field::kGuestCr4] = 0x2668 | (1 << 18);
  stale.vmcs.fields[Field::kCr4ReadShadow] = 0x668;
  stale.regs.rax = 7;
  REQUIRE(stale.run(exit_reason::kXsetbv) == ExitAction::kAdvance);
  CHECK(stale.cpu.xcr0 == 7);
}

TEST_CASE("exits: MONITOR and MWAIT are hidden; at CPL 0 they complete as NOPs, at CPL 3 #UD") {
  // CPUID.01H:ECX.MONITOR[bit 3] reads 0 in the guest. At CPL 0 both
  // instructions complete without running (RIP advanced: firmware that chose
  // an MWAIT idle loop before microhv started keeps working; an MWAIT that
  // returns at once is allowed by SDM Vol. 2B MWAIT); at CPL > 0 they raise
  // #UD (SDM Vol. 2B MONITOR, MWAIT: Protected Mode Exceptions).
  Rig cpuid;
  cpuid.regs.rax = 1;
  REQUIRE(cpuid.run(exit_reason::kCpuid) == ExitAction::kAdvance);
  CHECK((cpuid.regs.rcx & arch::cpuid1_ecx::kMonitor) == 0);
  for (uint32_t reason : {exit_reason::kMonitor, exit_reason::kMwait}) {
    Rig r;
    r.regs.rax = 0x20;  // a C6 hint
    r.regs.rcx = 1;     // break on interrupts even when IF = 0
    CHECK(r.run(reason) == ExitAction::kAdvance);
    CHECK_FALSE(r.injected(vector::kUd));
    CHECK(r.cpu.written.empty());
    Rig user;
    user.vmcs.fields[Field::kGuestSsAccess] = 0xC0F3;  // DPL 3
    CHECK(user.run(reason) == ExitAction::kRetry);
    CHECK(user.injected(vector::kUd));
  }
}

TEST_CASE("exits: guest VMX instructions and GETSEC get #UD; INVD writes back") {
  for (uint32_t reason :
       {exit_reason::kVmclear, exit_reason::kVmlaunch, exit_reason::kVmptrld, exit_reason::kVmptrst,
        exit_reason::kVmread, exit_reason::kVmresume, exit_reason::kVmwrite, exit_reason::kVmxoff,
        exit_reason::kVmxon, exit_reason::kInvept, exit_reason::kInvvpid, exit_reason::kVmfunc,
        exit_reason::kGetsec}) {
    Rig r;
    CHECK(r.run(reason) == ExitAction::kRetry);
    CHECK(r.injected(vector::kUd));
  }
  Rig r;
  CHECK(r.run(exit_reason::kInvd) == ExitAction::kAdvance);
  CHECK(r.cpu.wbinvds == 1);
}

TEST_CASE("exits: MOV to CR0 keeps the fixed bits and the guest's view") {
  Rig r;
  r.regs.rbx = 0x80000013;  // NE clear: the guest may think so
  REQUIRE(r.run(exit_reason::kCrAccess, 0x300 /* mov cr0, rbx */) == ExitAction::kAdvance);
  CHECK(r.vmcs.fields[Field::kCr0ReadShadow] == 0x80000013);
  CHECK(r.vmcs.fields[Field::kGuestCr0] == 0x80000033);
  r.regs.rbx = 0x1'0000'0031ull;  // reserved high bit
  CHECK(r.run(exit_reason::kCrAccess, 0x300) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
}

TEST_CASE("exits: MOV to CR0 toggling paging updates EFER.LMA and IA-32e mode") {
  Rig r;
  r.vmcs.fields[Field::kGuestCr0] = 0x31;       // protected mode, no paging
  r.vmcs.fields[Field::kGuestEfer] = 0x100;     // LME
  r.vmcs.fields[Field::kCr4ReadShadow] = 0x20;  // PAE
  r.vmcs.fields[Field::kGuestCsAccess] = 0xC09B;
  r.vmcs.fields[Field::kEntryControls] = 0xD1FF;
  r.regs.rax = 0x80000011;
  REQUIRE(r.run(exit_reason::kCrAccess, 0x000) == ExitAction::kAdvance);
  CHECK(r.vmcs.fields[Field::kGuestEfer] == 0x500);
  CHECK((r.vmcs.fields[Field::kEntryControls] & entry_ctl::kIa32eModeGuest) != 0);
}

TEST_CASE("exits: MOV to CR4 keeps VMXE in the real CR4 and hides it") {
  Rig r;
  r.regs.rcx = 0x6E8;
  REQUIRE(r.run(exit_reason::kCrAccess, 0x104 /* mov cr4, rcx */) == ExitAction::kAdvance);
  CHECK(r.vmcs.fields[Field::kCr4ReadShadow] == 0x6E8);
  CHECK(r.vmcs.fields[Field::kGuestCr4] == 0x26E8);
  r.regs.rcx = 0x2668;  // the guest may not set VMXE: VMX is hidden
  CHECK(r.run(exit_reason::kCrAccess, 0x104) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  Rig pae;
  pae.regs.rcx = 0x648;  // clearing PAE in long mode
  CHECK(pae.run(exit_reason::kCrAccess, 0x104) == ExitAction::kRetry);
  CHECK(pae.injected(vector::kGp));
}

// The decision itself is GuestEpt::classify (tests/unit/guest_ept_test.cpp);
// here the handler carries it out.
TEST_CASE("exits: EPT violation on microhv memory, the hypercall page or beyond the width -> #GP") {
  Rig r;
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0xDEA9010;
  CHECK(r.run(exit_reason::kEptViolation, 0x1 /* read */) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  Rig o;
  o.vmcs.fields[Field::kGuestPhysicalAddress] = 0x5008;
  CHECK(o.run(exit_reason::kEptViolation, 0x2 | 0x28 /* write; was R+X */) == ExitAction::kRetry);
  CHECK(o.injected(vector::kGp));
  Rig x;  // 2^40 does not exist for a 40-bit guest: as if the bus had nothing there, #GP
  x.vmcs.fields[Field::kGuestPhysicalAddress] = 1ull << 40;
  CHECK(x.run(exit_reason::kEptViolation, 0x1) == ExitAction::kRetry);
  CHECK(x.injected(vector::kGp));
}

TEST_CASE("exits: an EPT violation microhv cannot explain stops the guest, with no #GP") {
  Rig r;  // a RAM page that is present and writable faults for a write
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0x200000;
  CHECK(r.run(exit_reason::kEptViolation, 0x2 | 0x38) == ExitAction::kStop);
  CHECK_FALSE(r.events.exception);
  CHECK(r.stop_reason != nullptr);
  Rig gone;  // a guest RAM page microhv maps is not present (a microhv bug)
  REQUIRE(gone.ept.ept->tables().unmap(0x300000, 0x1000));
  gone.vmcs.fields[Field::kGuestPhysicalAddress] = 0x300010;
  CHECK(gone.run(exit_reason::kEptViolation, 0x1) == ExitAction::kStop);
  CHECK_FALSE(gone.events.exception);
}

TEST_CASE("exits: an EPT violation EPT allows by now is retried after INVEPT, RIP unchanged") {
  Rig r;  // the hypercall page moved away from 0x5000 since the guest's write faulted
  REQUIRE(r.ept.ept->remove(OverlayId::kHypercallPage));
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0x5008;
  const uint64_t rip = r.vmcs.fields[Field::kGuestRip];
  CHECK(r.run(exit_reason::kEptViolation, 0x2 | 0x28) == ExitAction::kRetry);
  CHECK_FALSE(r.events.exception);
  CHECK(r.invalidate_ept);
  CHECK(r.vmcs.fields[Field::kGuestRip] == rip);
}

TEST_CASE("exits: an IRET that faulted in EPT keeps NMIs blocked (SDM 28.2.3)") {
  Rig r;
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0xDEA9010;
  r.vmcs.fields[Field::kIdtVectoringInfo] = 0;
  CHECK(r.run(exit_reason::kEptViolation, 0x1 | (1u << 12)) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  CHECK((r.vmcs.fields[Field::kGuestInterruptibility] & interruptibility::kBlockingByNmi) != 0);
  Rig d;  // during event delivery bit 12 is undefined: left alone
  d.vmcs.fields[Field::kGuestPhysicalAddress] = 0xDEA9010;
  d.vmcs.fields[Field::kIdtVectoringInfo] = intr_info::kValid | 14;
  CHECK(d.run(exit_reason::kEptViolation, 0x1 | (1u << 12)) == ExitAction::kRetry);
  CHECK((d.vmcs.fields[Field::kGuestInterruptibility] & interruptibility::kBlockingByNmi) == 0);
}

TEST_CASE("exits: an EPT misconfiguration is reported with its walk and stops the guest") {
  Rig r;
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0x1000;
  CHECK(r.run(exit_reason::kEptMisconfig) == ExitAction::kStop);
  CHECK_FALSE(r.events.exception);
  CHECK(std::string(r.stop_reason) == "EPT misconfiguration");
  Rig f;
  f.vmcs.failing.insert(Field::kGuestPhysicalAddress);
  CHECK(f.run(exit_reason::kEptMisconfig) == ExitAction::kStop);
  CHECK_FALSE(f.events.exception);
}

TEST_CASE("exits: triple fault stops; INIT waits for SIPI; SIPI starts real mode") {
  Rig r;
  CHECK(r.run(exit_reason::kTripleFault) == ExitAction::kStop);
  Rig i;
  i.regs.rax = 5;
  i.events.queue_interrupt(0x40);
  CHECK(i.run(exit_reason::kInit) == ExitAction::kRetry);
  CHECK(i.vmcs.fields[Field::kGuestActivityState] == activity::kWaitForSipi);
  CHECK(i.vmcs.fields[Field::kGuestCsSel] == 0xF000);
  CHECK(i.vmcs.fields[Field::kGuestCsBase] == 0xFFFF0000);
  CHECK(i.vmcs.fields[Field::kGuestRip] == 0xFFF0);
  CHECK(i.vmcs.fields[Field::kCr0ReadShadow] == 0x10);  // ET; CD/NW were clear and stay so
  CHECK((i.vmcs.fields[Field::kGuestCr0] & 1) == 0);    // CR0.PE  // unrestricted guest: real mode
  CHECK(i.vmcs.fields[Field::kGuestEfer] == 0);
  CHECK((i.vmcs.fields[Field::kEntryControls] & entry_ctl::kIa32eModeGuest) == 0);
  CHECK(i.regs.rax == 0);
  CHECK(i.regs.rdx == 0x000806C1);
  CHECK_FALSE(i.events.any_interrupt());
  CHECK(i.run(exit_reason::kSipi, 0x9A) == ExitAction::kRetry);
  CHECK(i.vmcs.fields[Field::kGuestCsSel] == 0x9A00);
  CHECK(i.vmcs.fields[Field::kGuestCsBase] == 0x9A000);
  CHECK(i.vmcs.fields[Field::kGuestRip] == 0);
  CHECK(i.vmcs.fields[Field::kGuestActivityState] == activity::kActive);
}

TEST_CASE("exits: a write to the reference TSC page overlay is #GP too") {
  Rig r;
  r.ctx_overlay_tsc = Gpa(0x7000);
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0x7010;
  CHECK(r.run(exit_reason::kEptViolation, 0x2 /* write */) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
}

TEST_CASE("exits: VMX-preemption timer exits resume at the same RIP (timers run before entry)") {
  Rig r;
  CHECK(r.run(exit_reason::kPreemptionTimer) == ExitAction::kRetry);
  CHECK_FALSE(r.events.exception);
  CHECK_FALSE(r.events.any_interrupt());
}

TEST_CASE("preemption timer: the value that exits no earlier than the deadline (SDM 26.5.1)") {
  // Passed or now: 0, the VM exits before the first guest instruction.
  CHECK(preemption_timer_value(1000, 1000, 0) == 0);
  CHECK(preemption_timer_value(1000, 999, 5) == 0);
  // The timer drops by one each time TSC bit `rate` changes: a value of v
  // expires after (v - 1) * 2^rate to v * 2^rate ticks, so one more.
  CHECK(preemption_timer_value(1000, 1001, 0) == 2);
  CHECK(preemption_timer_value(0, 1024, 5) == 33);
  CHECK(preemption_timer_value(0, 1023, 5) == 32);
  for (uint8_t rate : {0, 3, 5, 10, 31}) {
    for (uint64_t d : {1ull, 77ull, 4096ull, 1'000'000ull}) {
      const uint32_t v = preemption_timer_value(0, d, rate);
      CHECK((uint64_t{v} - 1) << rate <= d);  // the earliest exit is not before d
      CHECK(v >= 1);
    }
  }
  // Far deadlines saturate: the exit comes early and the timer is re-armed.
  CHECK(preemption_timer_value(0, ~0ull, 0) == 0xFFFFFFFFu);
  CHECK(preemption_timer_value(0, 1ull << 40, 5) == 0xFFFFFFFFu);
}

TEST_CASE("exits: interrupt window does nothing but resume (injection runs before entry)") {
  Rig r;
  CHECK(r.run(exit_reason::kInterruptWindow) == ExitAction::kRetry);
  CHECK_FALSE(r.events.exception);
}

TEST_CASE("exits: I/O routing for the test device port") {
  constexpr uint64_t kOut32 = (0x3000ull << 16) | 3;  // OUT DX, EAX
  constexpr uint64_t kIn8 = (0x3000ull << 16) | 8;    // IN AL, DX
  constexpr uint64_t kOut16 = (0x2FFFull << 16) | 1;  // OUT DX, AX at 0x2FFF: touches 0x3000
  constexpr uint64_t kOutsd = (0x3000ull << 16) | 16 | 32 | 3;  // REP OUTSD
  STATIC_REQUIRE(decode_io(kOut32).size == 4);
  STATIC_REQUIRE(decode_io(kIn8).in);
  STATIC_REQUIRE(route_io(decode_io(kOut32), true) == IoRoute::kTestDevice);
  STATIC_REQUIRE(route_io(decode_io(kOut32), false) == IoRoute::kPassThrough);
  STATIC_REQUIRE(route_io(decode_io(kIn8), true) == IoRoute::kPassThrough);
  STATIC_REQUIRE(route_io(decode_io(kOut16), true) == IoRoute::kPassThrough);
  STATIC_REQUIRE(route_io(decode_io(kOutsd), true) == IoRoute::kStepNatively);

  Rig t;
  t.testdev = true;
  t.regs.rax = 0xFFFFFFFF00040102ull;
  REQUIRE(t.run(exit_reason::kIoInstruction, kOut32) == ExitAction::kAdvance);
  REQUIRE(t.core.testdev.size() == 1);
  CHECK(t.core.testdev[0] == 0x00040102);
  CHECK(t.cpu.outs.empty());

  Rig in;
  in.testdev = true;
  in.regs.rax = 0x1111111111111111ull;
  REQUIRE(in.run(exit_reason::kIoInstruction, kIn8) == ExitAction::kAdvance);
  CHECK(in.regs.rax == 0x11111111111111D4ull);  // AL only
  REQUIRE(in.cpu.ins.size() == 1);
  CHECK(in.cpu.ins[0].port == 0x3000);
  CHECK(in.core.testdev.empty());
  in.regs.rax = 0x1111111111111111ull;
  REQUIRE(in.run(exit_reason::kIoInstruction, (0x3000ull << 16) | 8 | 3) == ExitAction::kAdvance);
  CHECK(in.regs.rax == 0xA1B2C3D4ull);  // EAX, upper half cleared

  Rig o;
  o.testdev = true;
  o.regs.rax = 0xABCD;
  REQUIRE(o.run(exit_reason::kIoInstruction, kOut16) == ExitAction::kAdvance);
  REQUIRE(o.cpu.outs.size() == 1);
  CHECK(o.cpu.outs[0].port == 0x2FFF);
  CHECK(o.cpu.outs[0].size == 2);
  CHECK(o.cpu.outs[0].value == 0xABCD);

  Rig s;
  s.testdev = true;
  REQUIRE(s.run(exit_reason::kIoInstruction, kOutsd) ==
          ExitAction::kRetry);  // RIP stays: runs natively
  CHECK(s.cpu.stepping);
  REQUIRE(s.run(exit_reason::kMonitorTrapFlag) == ExitAction::kRetry);
  CHECK_FALSE(s.cpu.stepping);
  CHECK(s.run(exit_reason::kMonitorTrapFlag) == ExitAction::kStop);  // no step armed
  s.cpu.has_mtf = false;
  CHECK(s.run(exit_reason::kIoInstruction, kOutsd) == ExitAction::kStop);
}

TEST_CASE("exits: a failed VMREAD stops the guest before the handler acts on any value") {
  // A VMREAD that fails returns no value; the handler must not go on with
  // a made-up one (e.g. a hypercall decoded from CR0 = 0 would run in the
  // wrong mode).
  Rig call;
  call.vmcs.failing.insert(Field::kGuestCr0);
  call.regs.rcx = 0x1005C;
  CHECK(call.run(exit_reason::kVmcall) == ExitAction::kStop);
  CHECK(call.core.calls == 0);
  CHECK_FALSE(call.events.exception);
  CHECK(call.stop_reason != nullptr);

  Rig xsetbv;
  xsetbv.vmcs.failing.insert(Field::kCr4Mask);
  xsetbv.regs.rax = 7;
  CHECK(xsetbv.run(exit_reason::kXsetbv) == ExitAction::kStop);
  CHECK(xsetbv.cpu.xcr0 == 0);
  CHECK_FALSE(xsetbv.events.exception);

  Rig ept;
  ept.vmcs.failing.insert(Field::kGuestPhysicalAddress);
  CHECK(ept.run(exit_reason::kEptViolation, 0x1) == ExitAction::kStop);
  CHECK_FALSE(ept.events.exception);

  Rig nmi;
  nmi.vmcs.failing.insert(Field::kExitInterruptionInfo);
  CHECK(nmi.run(exit_reason::kExceptionOrNmi) == ExitAction::kStop);
  CHECK(nmi.events.nmis == 0);
}

TEST_CASE("exits: a failed VMWRITE stops the guest instead of resuming it half-changed") {
  Rig r;
  r.vmcs.failing.insert(Field::kCr0ReadShadow);
  r.regs.rbx = 0x80000013;
  CHECK(r.run(exit_reason::kCrAccess, 0x300 /* mov cr0, rbx */) == ExitAction::kStop);
  Rig sipi;
  sipi.vmcs.failing.insert(Field::kGuestCsBase);
  CHECK(sipi.run(exit_reason::kSipi, 0x9A) == ExitAction::kStop);
}
