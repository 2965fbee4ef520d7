// Emulating guest stores to the xAPIC page: decoding the instruction
// (what it does, its width and length) and fetching it through the guest's
// page tables in each paging mode. Execution against the host CPU:
// tests/unit/vmx_apic_emulation_native.cpp.
#include <catch2/catch.hpp>
#include <initializer_list>
#include <vector>

#include "tests/unit/fakes.hpp"
#include "vmx/decode.hpp"
#include "vmx/guest_walk.hpp"

using namespace microhv;
using namespace microhv::vmx;

namespace {

MemWrite dec(std::initializer_list<uint8_t> bytes, CodeSize mode = CodeSize::k64) {
  std::vector<uint8_t> b(bytes);
  return decode_mem_write(b.data(), static_cast<uint32_t>(b.size()), mode);
}

}  // namespace

TEST_CASE("decode: MOV r/m32, r32 in the forms compilers emit for MMIO writes") {
  MemWrite d = dec({0x89, 0x02});  // mov [rdx], eax
  REQUIRE(d.ok);
  CHECK(d.op == MemOp::kMov);
  CHECK(d.length == 2);
  CHECK(d.width == 4);
  CHECK(d.src == SrcKind::kReg);
  CHECK(d.reg == 0);
  d = dec({0x89, 0x88, 0x00, 0x03, 0x00, 0x00});  // mov [rax+0x300], ecx
  CHECK(d.length == 6);
  CHECK(d.reg == 1);
  d = dec({0x89, 0x50, 0x30});  // mov [rax+0x30], edx
  CHECK(d.length == 3);
  CHECK(d.reg == 2);
  d = dec(
      {0x44, 0x89, 0x04, 0x25, 0x00, 0x03, 0xE0, 0xFE});  // mov [0xfee00300], r8d (SIB, no base)
  CHECK(d.length == 8);
  CHECK(d.reg == 8);
  d = dec({0x89, 0x05, 0x10, 0x20, 0x30, 0x40});  // mov [rip+disp32], eax
  CHECK(d.length == 6);
  d = dec({0x89, 0x14, 0x24});  // mov [rsp], edx (SIB)
  CHECK(d.length == 3);
  d = dec({0x89, 0x54, 0x24, 0x08});  // mov [rsp+8], edx
  CHECK(d.length == 4);
  d = dec({0x3E, 0x89, 0x02});  // with a segment prefix
  CHECK(d.length == 3);
  CHECK(d.segment == 3);
  d = dec({0xF0, 0x65, 0x67, 0x89, 0x02});  // lock gs addr32 (prefixes in any order)
  REQUIRE(d.ok);
  CHECK(d.length == 5);
}

TEST_CASE("decode: immediates, widths and prefixes") {
  MemWrite d =
      dec({0xC7, 0x80, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});  // mov dword [rax+0xb0], 0
  REQUIRE(d.ok);
  CHECK(d.src == SrcKind::kImm);
  CHECK(d.imm == 0);
  CHECK(d.length == 10);
  CHECK(d.width == 4);
  d = dec({0xC7, 0x02, 0x00, 0x45, 0x0C, 0x00});  // mov dword [rdx], 0xC4500
  CHECK(d.imm == 0xC4500);
  CHECK(d.length == 6);
  d = dec({0x48, 0xC7, 0x02, 0xFF, 0xFF, 0xFF, 0xFF});  // mov qword [rdx], -1 (sign-extended)
  CHECK(d.width == 8);
  CHECK(d.imm == ~0ull);
  d = dec({0x66, 0x89, 0x02});  // 16-bit store
  CHECK(d.width == 2);
  d = dec({0x88, 0x22});  // mov [rdx], ah
  CHECK(d.width == 1);
  CHECK(d.high_byte);
  CHECK(d.reg == 0);
  d = dec({0x40, 0x88, 0x22});  // with REX: spl, not ah
  CHECK_FALSE(d.high_byte);
  CHECK(d.reg == 4);
  d = dec({0xA3, 1, 2, 3, 4, 5, 6, 7, 8});  // mov [moffs64], eax
  CHECK(d.length == 9);
  CHECK(d.reg == 0);
  d = dec({0x87, 0x0A});  // xchg [rdx], ecx
  CHECK(d.op == MemOp::kXchg);
  CHECK(d.reg == 1);
}

TEST_CASE("decode: read-modify-write forms") {
  MemWrite d = dec({0x83, 0x0A, 0x00});  // or dword [rdx], 0 (issue 9's halting write)
  REQUIRE(d.ok);
  CHECK(d.op == MemOp::kAlu);
  CHECK(d.sub == static_cast<uint8_t>(AluOp::kOr));
  CHECK(d.length == 3);
  CHECK(d.imm == 0);
  d = dec({0x83, 0x6B, 0x10, 0xFF});  // sub dword [rbx+0x10], -1
  CHECK(d.sub == static_cast<uint8_t>(AluOp::kSub));
  CHECK(d.imm == 0xFFFFFFFFull);
  CHECK(d.length == 4);
  d = dec({0x81, 0x63, 0x20, 0xFF, 0xFE, 0xFF, 0xFF});  // and dword [rbx+0x20], ~0x100
  CHECK(d.sub == static_cast<uint8_t>(AluOp::kAnd));
  CHECK(d.imm == 0xFFFFFEFF);
  CHECK(d.length == 7);
  CHECK_FALSE(dec({0x83, 0x3A, 0x00}).ok);  // cmp: no write
  CHECK(dec({0x11, 0x0A}).sub == static_cast<uint8_t>(AluOp::kAdc));
  CHECK(dec({0x19, 0x0A}).sub == static_cast<uint8_t>(AluOp::kSbb));
  CHECK_FALSE(dec({0x39, 0x0A}).ok);        // cmp [rdx], ecx
  d = dec({0xF0, 0x0F, 0xBA, 0x2A, 0x08});  // lock bts dword [rdx], 8
  REQUIRE(d.ok);
  CHECK(d.op == MemOp::kBitTest);
  CHECK(d.sub == 1);
  CHECK(d.imm == 8);
  CHECK(d.length == 5);
  CHECK_FALSE(dec({0x0F, 0xBA, 0x22, 0x08}).ok);  // bt: no write
  CHECK(dec({0x0F, 0xB3, 0x0A}).sub == 2);        // btr [rdx], ecx
  CHECK(dec({0xF7, 0x12}).op == MemOp::kNot);
  CHECK(dec({0xF7, 0x1A}).op == MemOp::kNeg);
  CHECK_FALSE(dec({0xF7, 0x02, 0, 0, 0, 0}).ok);  // test
  CHECK(dec({0xFF, 0x0A}).op == MemOp::kIncDec);
  CHECK(dec({0xFF, 0x0A}).sub == 1);
  CHECK_FALSE(dec({0xFF, 0x32}).ok);  // push [rdx]
  d = dec({0xC1, 0x22, 0x04});        // shl dword [rdx], 4
  CHECK(d.op == MemOp::kShift);
  CHECK(d.sub == static_cast<uint8_t>(ShiftOp::kShl));
  CHECK(d.imm == 4);
  CHECK(dec({0xD3, 0x3A}).src == SrcKind::kCl);   // sar [rdx], cl
  CHECK(dec({0xD1, 0x02}).src == SrcKind::kOne);  // rol [rdx], 1
  CHECK(dec({0xF0, 0x0F, 0xC1, 0x0A}).op == MemOp::kXadd);
  CHECK(dec({0xF0, 0x0F, 0xB1, 0x0A}).op == MemOp::kCmpxchg);
  CHECK(dec({0x0F, 0x94, 0x02}).op == MemOp::kSetcc);
  CHECK(dec({0x0F, 0xC3, 0x0A}).op == MemOp::kMov);  // movnti
  CHECK(dec({0x0F, 0x38, 0xF1, 0x0A}).op == MemOp::kMovbe);
}

TEST_CASE("decode: strings and vector stores") {
  MemWrite d = dec({0xAB});  // stosd
  REQUIRE(d.ok);
  CHECK(d.op == MemOp::kStos);
  CHECK_FALSE(d.rep);
  CHECK(d.address_size == 8);
  d = dec({0xF3, 0x67, 0xA5});  // rep movsd, 32-bit addresses
  CHECK(d.op == MemOp::kMovs);
  CHECK(d.rep);
  CHECK(d.address_size == 4);
  CHECK(dec({0x26, 0xA5}, CodeSize::k16).segment == 0);
  d = dec({0x66, 0x0F, 0x7E, 0x0A});  // movd [rdx], xmm1
  CHECK(d.op == MemOp::kVectorStore);
  CHECK(d.width == 4);
  CHECK(d.reg == 1);
  d = dec({0x66, 0x44, 0x0F, 0x7E, 0x02});  // movd [rdx], xmm8
  CHECK(d.reg == 8);
  d = dec({0xF3, 0x0F, 0x11, 0x12});  // movss [rdx], xmm2
  CHECK(d.width == 4);
  CHECK(d.reg == 2);
  d = dec({0x66, 0x0F, 0x3A, 0x16, 0x1A, 0x02});  // pextrd [rdx], xmm3, 2
  CHECK(d.width == 4);
  CHECK(d.lane == 2);
  CHECK(d.length == 6);
  d = dec({0xC5, 0xF9, 0x7E, 0x22});  // vmovd [rdx], xmm4
  REQUIRE(d.ok);
  CHECK(d.width == 4);
  CHECK(d.reg == 4);
  d = dec({0xC4, 0x41, 0x7A, 0x11, 0x2A});  // vmovss [r10], xmm13
  REQUIRE(d.ok);
  CHECK(d.width == 4);
  CHECK(d.reg == 13);
  CHECK(dec({0x0F, 0x11, 0x02}).width == 16);                 // movups: wider than a register
  CHECK(dec({0xC5, 0xFC, 0x11, 0x02}).width == 32);           // vmovups ymm
  CHECK(dec({0x66, 0x0F, 0xD6, 0x02}).width == 8);            // movq
  CHECK_FALSE(dec({0x0F, 0x7E, 0x02}).ok);                    // MMX movd: not emulated
  CHECK_FALSE(dec({0xD9, 0x12}).ok);                          // fst dword: not emulated
  CHECK_FALSE(dec({0x62, 0xF1, 0x7D, 0x48, 0x7E, 0x02}).ok);  // EVEX
}

TEST_CASE("decode: 32- and 16-bit code") {
  MemWrite d = dec({0x89, 0x05, 0x00, 0x03, 0xE0, 0xFE}, CodeSize::k32);  // mov [0xfee00300], eax
  REQUIRE(d.ok);
  CHECK(d.length == 6);
  CHECK(d.width == 4);
  d = dec({0x40, 0x89, 0x02}, CodeSize::k32);  // 0x40 is INC EAX there, not REX
  CHECK_FALSE(d.ok);
  d = dec({0x66, 0x89, 0x07}, CodeSize::k16);  // mov [bx], eax
  CHECK(d.length == 3);
  CHECK(d.width == 4);
  d = dec({0x89, 0x06, 0x00, 0x03}, CodeSize::k16);  // mov [0x300], ax
  CHECK(d.length == 4);
  CHECK(d.width == 2);
  CHECK_FALSE(dec({0xC5, 0x02}, CodeSize::k32).ok);  // LDS eax, [edx]: a load, not VEX
}

TEST_CASE("decode: what is not a store is refused") {
  CHECK_FALSE(dec({0x89, 0xC0}).ok);              // mov eax, eax: register destination
  CHECK_FALSE(dec({0x8B, 0x02}).ok);              // a load
  CHECK_FALSE(dec({0xC7, 0x0A, 0, 0, 0, 0}).ok);  // C7 /1
  CHECK_FALSE(dec({0x89}).ok);                    // truncated
  CHECK_FALSE(dec({0xC7, 0x02, 0x00}).ok);        // truncated immediate
  CHECK_FALSE(dec({}).ok);
  CHECK_FALSE(dec({0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
                   0x66, 0x89, 0x02})
                  .ok);  // longer than 15 bytes
}

// Found by the decode fuzzer: an instruction is at most 15 bytes (SDM Vol. 2
// 2.3.11), MOV moffs64 included: 14 prefixes before MOV moffs64, AL make 23.
TEST_CASE("decode: nothing longer than 15 bytes is a store, MOV moffs included") {
  std::vector<uint8_t> b(14, 0x26);  // ES overrides
  b.push_back(0xA2);
  b.insert(b.end(), 8, 0x00);
  CHECK_FALSE(decode_mem_write(b.data(), static_cast<uint32_t>(b.size()), CodeSize::k64).ok);
  const MemWrite ok = dec({0x26, 0x26, 0x26, 0x26, 0x26, 0xA2, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(ok.ok);
  CHECK(ok.length == 14);
  CHECK(ok.width == 1);
}

TEST_CASE("guest walk: 4-level paging with 4K, 2M and 1G pages, and page-crossing fetches") {
  test::FakeMemory mem(64);                                // 256 KiB of guest RAM
  mem.store<uint64_t>(0x1000, 0x2000 | 3);                 // PML4[0] -> PDPT
  mem.store<uint64_t>(0x2000 + 1 * 8, 0x40000000 | 0x83);  // PDPT[1]: 1G page at 1 GiB
  mem.store<uint64_t>(0x2000 + 0 * 8, 0x3000 | 3);         // PDPT[0] -> PD
  mem.store<uint64_t>(0x3000 + 1 * 8, 0x200000 | 0x83);    // PD[1]: 2M page at 2 MiB
  mem.store<uint64_t>(0x3000 + 2 * 8, 0x4000 | 3);         // PD[2] -> PT (linear 0x400000)
  mem.store<uint64_t>(0x4000 + 0 * 8, 0x9000 | 3);         // 0x400000 -> 0x9000
  mem.store<uint64_t>(0x4000 + 1 * 8, 0xB000 | 3);         // 0x401000 -> 0xB000 (not contiguous)
  const GuestPaging p{0x80000011, 0x1000, 0x20, 0x500};    // PG, PAE, LME|LMA
  Gpa gpa(0);
  REQUIRE(guest_linear_to_physical(mem, p, 0x400123, &gpa));
  CHECK(gpa == Gpa(0x9123));
  REQUIRE(guest_linear_to_physical(mem, p, 0x2ABCDE, &gpa));
  CHECK(gpa == Gpa(0x2ABCDE));
  REQUIRE(guest_linear_to_physical(mem, p, 0x40012345, &gpa));
  CHECK(gpa == Gpa(0x40012345));
  CHECK_FALSE(guest_linear_to_physical(mem, p, 0x600000, &gpa));  // PD[3] not present
  CHECK_FALSE(guest_linear_to_physical(mem, p, 0x402000, &gpa));  // PT[2] not present

  mem.store<uint8_t>(0x9FFE, 0xAA);
  mem.store<uint8_t>(0x9FFF, 0xBB);
  mem.store<uint8_t>(0xB000, 0xCC);
  uint8_t out[4] = {};
  CHECK(fetch_guest_bytes(mem, p, 0x400FFE, out, 3) == 3);
  CHECK(out[0] == 0xAA);
  CHECK(out[1] == 0xBB);
  CHECK(out[2] == 0xCC);
  CHECK(fetch_guest_bytes(mem, p, 0x401FFF, out, 4) == 1);  // stops at the unmapped page
}

TEST_CASE("guest walk: PAE, 32-bit paging with 4M pages, and no paging") {
  test::FakeMemory mem(64);
  // PAE: CR3 -> 4 PDPTEs at 0x1000; PDPTE[0] -> PD at 0x2000; PD[2] -> PT 0x3000.
  mem.store<uint64_t>(0x1000, 0x2000 | 1);
  mem.store<uint64_t>(0x2000 + 2 * 8, 0x3000 | 3);
  mem.store<uint64_t>(0x2000 + 3 * 8, 0x600000 | 0x83);  // 2M page
  mem.store<uint64_t>(0x3000 + 5 * 8, 0x7000 | 3);
  const GuestPaging pae{0x80000011, 0x1000, 0x20, 0};
  Gpa gpa(0);
  REQUIRE(guest_linear_to_physical(mem, pae, 0x405010, &gpa));
  CHECK(gpa == Gpa(0x7010));
  REQUIRE(guest_linear_to_physical(mem, pae, 0x612345, &gpa));
  CHECK(gpa == Gpa(0x612345));

  // 32-bit: PD at 0x8000 with 4-byte entries; PDE[1] is a 4M page at 12 MiB, PDE[0] -> PT 0x9000.
  mem.store<uint32_t>(0x8000 + 1 * 4, 0xC00000 | 0x83);
  mem.store<uint32_t>(0x8000 + 0 * 4, 0x9000 | 3);
  mem.store<uint32_t>(0x9000 + 3 * 4, 0xA000 | 3);
  const GuestPaging p32{0x80000011, 0x8000, 0x10 /* PSE */, 0};
  REQUIRE(guest_linear_to_physical(mem, p32, 0x3004, &gpa));
  CHECK(gpa == Gpa(0xA004));
  REQUIRE(guest_linear_to_physical(mem, p32, 0x412345, &gpa));
  CHECK(gpa == Gpa(0xC12345));

  const GuestPaging real{0x10, 0, 0, 0};
  REQUIRE(guest_linear_to_physical(mem, real, 0x87010, &gpa));
  CHECK(gpa == Gpa(0x87010));
}
