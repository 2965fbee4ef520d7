// Guest writes to the xAPIC page through the EPT-violation handler
// (vmx/exit_apic.cpp): what reaches the APIC, what is dropped, what is #GP,
// RIP and RFLAGS afterwards.
#include <catch2/catch.hpp>
#include <initializer_list>

#include "arch/x86.hpp"
#include "tests/unit/exit_rig.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::Rig;

namespace {

// A 64-bit guest whose code page (linear 0x400000) is GPA 0x9000 and whose
// data page (linear 0x401000) is GPA 0xA000.
struct Guest {
  test::FakeMemory mem{16};
  Guest() {
    mem.store<uint64_t>(0x1000, 0x2000 | 3);          // PML4[0]
    mem.store<uint64_t>(0x2000, 0x3000 | 3);          // PDPT[0]
    mem.store<uint64_t>(0x3000 + 2 * 8, 0x4000 | 3);  // PD[2] -> 0x400000
    mem.store<uint64_t>(0x4000, 0x9000 | 3);          // PT[0]
    mem.store<uint64_t>(0x4000 + 8, 0xA000 | 3);      // PT[1]
  }
  void code(std::initializer_list<uint8_t> bytes) {
    uint64_t at = 0x9000;
    for (uint8_t b : bytes) mem.store<uint8_t>(at++, b);
  }
  ExitAction write(Rig& r, uint32_t offset) {
    r.memory = &mem;
    r.apic_page = 0xFEE00000;
    r.vmcs.fields[Field::kGuestCr3] = 0x1000;
    r.vmcs.fields[Field::kGuestRip] = 0x400000;
    r.vmcs.fields[Field::kGuestPhysicalAddress] = 0xFEE00000 + offset;
    return r.run(exit_reason::kEptViolation, 0x3 /* read + write */);
  }
};

}  // namespace

TEST_CASE(
    "apic page: OR dword [apic+0xF0], 0 (issue 9's halting write) reads, writes, sets flags") {
  Guest g;
  Rig r;
  g.code({0x83, 0x0A, 0x00});  // or dword [rdx], 0
  r.vmcs.fields[Field::kGuestRflags] = 0x202 | arch::rflags::kCf | arch::rflags::kZf;
  REQUIRE(g.write(r, 0xF0) == ExitAction::kRetry);
  CHECK_FALSE(r.events.exception);
  REQUIRE(r.cpu.apic_writes.size() == 1);
  CHECK(r.cpu.apic_writes[0] == std::make_pair(0xF0u, 0x5EEDu));  // the value read, unchanged
  // OR: CF = OF = 0, ZF/SF/PF from 0x5EED (PF: 0xED has 6 bits set: even).
  CHECK(r.vmcs.fields[Field::kGuestRflags] == (0x202 | arch::rflags::kPf));
  CHECK(r.vmcs.fields[Field::kGuestRip] == 0x400003);
}

TEST_CASE("apic page: BTS, XADD and CMPXCHG reach the register with their register results") {
  Guest g;
  Rig bts;
  g.code({0xF0, 0x0F, 0xBA, 0x2A, 0x08});  // lock bts dword [rdx], 8 (SVR enable)
  REQUIRE(g.write(bts, 0xF0) == ExitAction::kRetry);
  CHECK(bts.cpu.apic_writes[0] == std::make_pair(0xF0u, 0x5FEDu));
  CHECK((bts.vmcs.fields[Field::kGuestRflags] & arch::rflags::kCf) == 0);
  Rig xadd;
  g.code({0x0F, 0xC1, 0x0A});  // xadd [rdx], ecx
  xadd.regs.rcx = 0x10;
  REQUIRE(g.write(xadd, 0x80) == ExitAction::kRetry);
  CHECK(xadd.cpu.apic_writes[0] == std::make_pair(0x80u, 0x5EFDu));
  CHECK(xadd.regs.rcx == 0x5EED);
  Rig cx;
  g.code({0x0F, 0xB1, 0x0A});  // cmpxchg [rdx], ecx with EAX != [rdx]
  cx.regs.rax = 0xFFFFFFFF00000001ull;
  cx.regs.rcx = 0x77;
  REQUIRE(g.write(cx, 0x80) == ExitAction::kRetry);
  CHECK(cx.regs.rax == 0x5EED);                                    // loaded, upper half cleared
  CHECK(cx.cpu.apic_writes[0] == std::make_pair(0x80u, 0x5EEDu));  // written back unchanged
  CHECK((cx.vmcs.fields[Field::kGuestRflags] & arch::rflags::kZf) == 0);
}

TEST_CASE("apic page: stores that are not aligned 32-bit register writes are dropped, not fatal") {
  Guest g;
  struct {
    std::initializer_list<uint8_t> bytes;
    uint32_t offset;
    uint64_t next_rip;
  } cases[] = {
      {{0x89, 0x0A}, 0x304, 0x400002},        // dword inside the ICR slot
      {{0x88, 0x0A}, 0xF1, 0x400002},         // byte
      {{0x66, 0x89, 0x0A}, 0xF0, 0x400003},   // word
      {{0x48, 0x89, 0x0A}, 0x300, 0x400003},  // qword
      {{0x0F, 0x29, 0x02}, 0x300, 0x400003},  // movaps: 16 bytes
      {{0x0F, 0x94, 0x02}, 0x80, 0x400003},   // sete: a byte
  };
  for (const auto& c : cases) {
    INFO("offset 0x" << std::hex << c.offset);
    g.code(c.bytes);
    Rig r;
    REQUIRE(g.write(r, c.offset) == ExitAction::kRetry);
    CHECK_FALSE(r.events.exception);
    CHECK(r.cpu.apic_writes.empty());
    CHECK(r.vmcs.fields[Field::kGuestRip] == c.next_rip);
  }
  // The APIC is not at the page in x2APIC mode or while disabled.
  for (ApicMode m : {ApicMode::kX2apic, ApicMode::kDisabled}) {
    g.code({0x89, 0x0A});
    Rig r;
    r.state.apic.mode = m;
    REQUIRE(g.write(r, 0x300) == ExitAction::kRetry);
    CHECK(r.cpu.apic_writes.empty());
    CHECK(r.vmcs.fields[Field::kGuestRip] == 0x400002);
  }
}

TEST_CASE("apic page: a dword that crosses the end of the page, or no instruction bytes, is #GP") {
  Guest g;
  g.code({0x89, 0x0A});
  Rig r;
  REQUIRE(g.write(r, 0xFFE) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  CHECK(r.cpu.apic_writes.empty());
  CHECK(r.vmcs.fields[Field::kGuestRip] == 0x400000);
  Rig unmapped;  // the code page vanished (another CPU changed the page tables)
  g.mem.store<uint64_t>(0x4000, 0);
  REQUIRE(g.write(unmapped, 0x300) == ExitAction::kRetry);
  CHECK(unmapped.injected(vector::kGp));
}

TEST_CASE("apic page: REP STOSD writes one element per exit and keeps RIP until RCX is 0") {
  Guest g;
  g.code({0xF3, 0xAB});  // rep stosd
  Rig r;
  r.regs.rax = 0x1234;
  r.regs.rcx = 2;
  r.regs.rdi = 0xFEE00080;
  REQUIRE(g.write(r, 0x80) == ExitAction::kRetry);
  CHECK(r.cpu.apic_writes[0] == std::make_pair(0x80u, 0x1234u));
  CHECK(r.regs.rcx == 1);
  CHECK(r.regs.rdi == 0xFEE00084);
  CHECK(r.vmcs.fields[Field::kGuestRip] == 0x400000);  // the next element exits again
  REQUIRE(g.write(r, 0x84) == ExitAction::kRetry);     // not a register offset: dropped
  CHECK(r.cpu.apic_writes.size() == 1);
  CHECK(r.regs.rcx == 0);
  CHECK(r.vmcs.fields[Field::kGuestRip] == 0x400002);
}

TEST_CASE("apic page: MOVSD copies from guest RAM; MOVD and MOVSS store an XMM dword") {
  Guest g;
  g.mem.store<uint32_t>(0xA010, 0xC0FFEE);
  g.code({0xA5});  // movsd
  Rig r;
  r.vmcs.fields[Field::kGuestDsBase] = 0;
  r.regs.rsi = 0x401010;
  r.regs.rdi = 0xFEE00380;
  REQUIRE(g.write(r, 0x380) == ExitAction::kRetry);
  CHECK(r.cpu.apic_writes[0] == std::make_pair(0x380u, 0xC0FFEEu));
  CHECK(r.regs.rsi == 0x401014);
  Rig bad;  // source not mapped: #GP, nothing written
  bad.regs.rsi = 0x600000;
  REQUIRE(g.write(bad, 0x380) == ExitAction::kRetry);
  CHECK(bad.injected(vector::kGp));
  CHECK(bad.cpu.apic_writes.empty());

  g.code({0x66, 0x0F, 0x7E, 0x1A});  // movd [rdx], xmm3
  Rig x;
  x.cpu.xmm[3][0] = 0xB0;
  REQUIRE(g.write(x, 0xB0) == ExitAction::kRetry);
  CHECK(x.cpu.apic_writes[0] == std::make_pair(0xB0u, 0xB0u));
  Rig nosse;  // the host cannot read XMM registers: #GP, not a wrong value
  nosse.cpu.has_sse = false;
  REQUIRE(g.write(nosse, 0xB0) == ExitAction::kRetry);
  CHECK(nosse.injected(vector::kGp));
}
