// VM exits of "every CPU a VP": INIT and SIPI, NMIs (kick or genuine), and
// the guest's writes to its local APIC (x2APIC ICR, stores to the xAPIC page).
#include "tests/unit/exit_rig.hpp"
#include "tests/unit/fakes.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::Rig;

// ---------------------------------------------------------------- every CPU a VP

TEST_CASE("exits: INIT keeps CD/NW, resets the rest; the BSP restarts at the reset vector") {
  Rig i;
  i.vmcs.fields[Field::kCr0ReadShadow] = 0xE0000011;  // PG CD NW ET PE
  i.vmcs.fields[Field::kGuestInterruptibility] = interruptibility::kBlockingBySti;
  i.vmcs.fields[Field::kGuestDr7] = 0x455;
  i.regs.rsp = 0x7000;
  REQUIRE(i.run(exit_reason::kInit) == ExitAction::kRetry);
  CHECK(i.vmcs.fields[Field::kCr0ReadShadow] == 0x60000010);
  CHECK(i.vmcs.fields[Field::kGuestCr0] ==
        0x60000030);  // NE is a VMX fixed bit; PE/PG free (unrestricted)
  CHECK(i.vmcs.fields[Field::kGuestCr4] == 0x2000);  // VMXE only, the guest sees 0
  CHECK(i.vmcs.fields[Field::kCr4ReadShadow] == 0);
  CHECK(i.vmcs.fields[Field::kGuestDr7] == 0x400);
  CHECK(i.vmcs.fields[Field::kGuestInterruptibility] == 0);
  CHECK(i.vmcs.fields[Field::kGuestRsp] == 0);
  CHECK(i.regs.rsp == 0);
  CHECK(i.vmcs.fields[Field::kGuestTrAccess] == 0x8B);
  CHECK(i.vmcs.fields[Field::kGuestLdtrAccess] == 0x82);
  CHECK(i.vmcs.fields[Field::kGuestSsAccess] == 0x93);
  CHECK(i.vmcs.fields[Field::kGuestGdtrLimit] == 0xFFFF);
  CHECK(i.cpu.dr_resets == 1);

  Rig b;
  b.bsp = true;
  REQUIRE(b.run(exit_reason::kInit) == ExitAction::kRetry);
  CHECK(b.vmcs.fields[Field::kGuestActivityState] == activity::kActive);
  CHECK(b.vmcs.fields[Field::kGuestRip] == 0xFFF0);
}

TEST_CASE(
    "exits: SIPI (re)establishes the INIT state and starts at vector * 4096 with nothing blocked") {
  Rig s;  // a long-mode AP that never saw the INIT (microhv emulated it, or it was blocked)
  s.vmcs.fields[Field::kGuestActivityState] = activity::kWaitForSipi;
  // Bochs 2.7 reports SMI and NMI blocking at the SIPI exit.
  s.vmcs.fields[Field::kGuestInterruptibility] =
      interruptibility::kBlockingBySmi | interruptibility::kBlockingByNmi;
  REQUIRE(s.run(exit_reason::kSipi, 0x87) == ExitAction::kRetry);
  CHECK(s.vmcs.fields[Field::kGuestCsSel] == 0x8700);
  CHECK(s.vmcs.fields[Field::kGuestCsBase] == 0x87000);
  CHECK(s.vmcs.fields[Field::kGuestCsLimit] == 0xFFFF);
  CHECK(s.vmcs.fields[Field::kGuestRip] == 0);
  CHECK(s.vmcs.fields[Field::kGuestActivityState] == activity::kActive);
  CHECK(s.vmcs.fields[Field::kGuestInterruptibility] == 0);
  CHECK(s.vmcs.fields[Field::kGuestEfer] == 0);
  CHECK((s.vmcs.fields[Field::kEntryControls] & entry_ctl::kIa32eModeGuest) == 0);
  CHECK(s.vmcs.fields[Field::kGuestCr3] == 0);
  CHECK(s.regs.rdx == 0x000806C1);
}

TEST_CASE("exits: an NMI exit is a kick when one was sent, else a genuine NMI for the guest") {
  const uint64_t nmi_info = make_intr_info(vector::kNmi, EventType::kNmi, false);
  Rig k;
  k.vmcs.fields[Field::kExitInterruptionInfo] = nmi_info;
  CHECK(k.remote.post(0x51, true));  // another CPU queued a vector and must kick
  REQUIRE(k.run(exit_reason::kExceptionOrNmi) == ExitAction::kRetry);
  CHECK(k.kicked);
  CHECK(k.events.nmis == 0);
  CHECK(k.remote.kick_sent == 0);

  Rig g;
  g.vmcs.fields[Field::kExitInterruptionInfo] = nmi_info;
  REQUIRE(g.run(exit_reason::kExceptionOrNmi) == ExitAction::kRetry);
  CHECK_FALSE(g.kicked);
  CHECK(g.events.nmis == 1);  // re-injected at the next entry

  Rig x;  // an exception cannot exit here (bitmap 0): stop rather than guess
  x.vmcs.fields[Field::kExitInterruptionInfo] =
      make_intr_info(vector::kGp, EventType::kHardwareException, true);
  CHECK(x.run(exit_reason::kExceptionOrNmi) == ExitAction::kStop);
}

TEST_CASE("exits: x2APIC ICR writes go to the APIC emulation, other MSRs do not") {
  Rig r;
  r.state.apic.mode = ApicMode::kX2apic;
  r.regs.rcx = 0x830;       // x2APIC ICR (SDM Vol. 3A 10.12.1.2)
  r.regs.rax = 0x00004500;  // INIT, assert
  r.regs.rdx = 1;           // destination APIC id 1
  REQUIRE(r.run(exit_reason::kWrmsr) == ExitAction::kAdvance);
  REQUIRE(r.cpu.icr_writes.size() == 1);
  CHECK(r.cpu.icr_writes[0] == 0x0000000100004500ull);
  CHECK(r.cpu.written.empty());
}

namespace {

// A 64-bit guest whose code page (linear 0x400000) is mapped by 4-level
// page tables at GPA 0x1000.. to GPA 0x9000.
struct ApicGuest {
  test::FakeMemory mem{16};
  ApicGuest() {
    mem.store<uint64_t>(0x1000 + 0 * 8, 0x2000 | 3);  // PML4[0]
    mem.store<uint64_t>(0x2000 + 0 * 8, 0x3000 | 3);  // PDPT[0]
    mem.store<uint64_t>(0x3000 + 2 * 8, 0x4000 | 3);  // PD[2] -> 0x400000
    mem.store<uint64_t>(0x4000 + 0 * 8, 0x9000 | 3);  // PT[0]
  }
  void code(std::initializer_list<uint8_t> bytes) {
    uint64_t at = 0x9000;
    for (uint8_t b : bytes) mem.store<uint8_t>(at++, b);
  }
  void setup(Rig& r) {
    r.memory = &mem;
    r.apic_page = 0xFEE00000;
    r.vmcs.fields[Field::kGuestCr3] = 0x1000;
    r.vmcs.fields[Field::kGuestRip] = 0x400000;
    r.vmcs.fields[Field::kGuestCsBase] = 0;
  }
};

}  // namespace

TEST_CASE(
    "exits: a store to the xAPIC page is decoded, handed to the APIC emulation, and RIP skips it") {
  ApicGuest g;
  Rig r;
  g.setup(r);
  g.code({0x89, 0x02});  // mov [rdx], eax
  r.regs.rax = 0xFFFFFFFF000C4500ull;
  r.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE00300;
  r.vmcs.fields[Field::kGuestInterruptibility] = interruptibility::kBlockingBySti;
  REQUIRE(r.run(exit_reason::kEptViolation, 0x2 /* write */) == ExitAction::kRetry);
  REQUIRE(r.cpu.apic_writes.size() == 1);
  CHECK(r.cpu.apic_writes[0].first == 0x300);
  CHECK(r.cpu.apic_writes[0].second == 0x000C4500);
  CHECK(r.vmcs.fields[Field::kGuestRip] == 0x400002);
  CHECK(r.vmcs.fields[Field::kGuestInterruptibility] == 0);  // the STI shadow ended with it
  CHECK_FALSE(r.events.exception);

  Rig imm;
  g.setup(imm);
  g.code({0x41, 0xC7, 0x80, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
          0x00});  // mov dword [r8+0xb0], 0
  imm.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE000B0;
  REQUIRE(imm.run(exit_reason::kEptViolation, 0x2) == ExitAction::kRetry);
  REQUIRE(imm.cpu.apic_writes.size() == 1);
  CHECK(imm.cpu.apic_writes[0] == std::make_pair(0xB0u, 0u));
  CHECK(imm.vmcs.fields[Field::kGuestRip] == 0x40000B);

  Rig x;
  g.setup(x);
  g.code({0x87, 0x0A});  // xchg [rdx], ecx
  x.regs.rcx = 0x1234;
  x.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE00080;
  REQUIRE(x.run(exit_reason::kEptViolation, 0x2) == ExitAction::kRetry);
  CHECK(x.cpu.apic_writes[0] == std::make_pair(0x80u, 0x1234u));
  CHECK(x.regs.rcx == 0x5EED);  // the old register value

  Rig bad;  // an instruction microhv does not emulate: #GP(0), RIP stays, nothing written
  g.setup(bad);
  g.code({0xD9, 0x12});  // fst dword [rdx]
  bad.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE00300;
  CHECK(bad.run(exit_reason::kEptViolation, 0x2) == ExitAction::kRetry);
  CHECK(bad.injected(vector::kGp));
  CHECK(bad.cpu.apic_writes.empty());
  CHECK(bad.vmcs.fields[Field::kGuestRip] == 0x400000);

  Rig wide;  // a 128-bit store is not a register write: dropped, the instruction completes
  g.setup(wide);
  g.code({0x0F, 0x11, 0x02});  // movups [rdx], xmm0
  wide.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE00300;
  CHECK(wide.run(exit_reason::kEptViolation, 0x2) == ExitAction::kRetry);
  CHECK_FALSE(wide.events.exception);
  CHECK(wide.cpu.apic_writes.empty());
  CHECK(wide.vmcs.fields[Field::kGuestRip] == 0x400003);

  Rig rd;  // the page is readable: a read cannot fault there; if it did, stop
  g.setup(rd);
  rd.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE00300;
  CHECK(rd.run(exit_reason::kEptViolation, 0x1 | 0x8 /* read; was readable */) ==
        ExitAction::kStop);
}
