// The hypercall ABI: control word decoding, generic checks, #UD rules, fast
// calls and the 32-bit register convention (TLFS "Hypercall Interface").
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {
Status status_of(uint64_t result) {
  return static_cast<Status>(result & 0xFFFF);
}

// A message port and connection so that a well-formed PostMessage succeeds.
struct Ready : Guest {
  Ready() : Guest(1) {
    enable_synic(0);
    REQUIRE(create_port(1, 2, 0) == Status::kSuccess);
    REQUIRE(connect(5, 1) == Status::kSuccess);
    tlfs::PostMessageInput in{};
    in.connection_id = 5;
    in.message_type = 1;
    in.payload_size = 8;
    memory.store(kInputPage, in);
  }
};
}  // namespace

TEST_CASE("ABI: a well-formed PostMessage returns SUCCESS with zero reps and reserved bits") {
  Ready g;
  CHECK(g.hypercall_raw(kPost, kInputPage, 0) == 0);
}

TEST_CASE("ABI: every reserved bit of the control word gives INVALID_HYPERCALL_INPUT") {
  const int reserved_bits[] = {27, 28, 29, 30, 44, 45, 46, 47, 60, 61, 62, 63};
  for (int bit : reserved_bits) {
    Ready g;
    INFO("bit " << bit);
    CHECK(status_of(g.hypercall_raw(kPost | (1ull << bit), kInputPage, 0)) ==
          Status::kInvalidHypercallInput);
    CHECK(g.slot(0, 2).message_type == 0);
  }
}

TEST_CASE("ABI: IsNested (bit 31) gives INVALID_HYPERCALL_INPUT: microhv is not nested") {
  Ready g;
  CHECK(status_of(g.hypercall_raw(kPost | (1ull << 31), kInputPage, 0)) ==
        Status::kInvalidHypercallInput);
}

TEST_CASE("ABI: a rep count on a simple call gives INVALID_HYPERCALL_INPUT") {
  Ready g;
  CHECK(status_of(g.hypercall_raw(kPost | (1ull << 32), kInputPage, 0)) ==
        Status::kInvalidHypercallInput);
  CHECK(status_of(g.hypercall_raw(kPost | (0xFFFull << 32), kInputPage, 0)) ==
        Status::kInvalidHypercallInput);
}

TEST_CASE("ABI: a rep start index (>= rep count 0) gives INVALID_HYPERCALL_INPUT") {
  Ready g;
  CHECK(status_of(g.hypercall_raw(kPost | (1ull << 48), kInputPage, 0)) ==
        Status::kInvalidHypercallInput);
}

TEST_CASE("ABI: a variable header size on a simple call gives INVALID_HYPERCALL_INPUT") {
  Ready g;
  CHECK(status_of(g.hypercall_raw(kPost | (1ull << 17), kInputPage, 0)) ==
        Status::kInvalidHypercallInput);
  CHECK(status_of(g.hypercall_raw(kPost | (0x3FFull << 17), kInputPage, 0)) ==
        Status::kInvalidHypercallInput);
}

TEST_CASE("ABI: an unknown call code gives INVALID_HYPERCALL_CODE") {
  Ready g;
  for (uint64_t code : {0x0000ull, 0x0001ull, 0x005Eull, 0x0094ull, 0xFFFFull}) {
    CHECK(status_of(g.hypercall_raw(code, kInputPage, 0)) == Status::kInvalidHypercallCode);
  }
}

TEST_CASE("ABI: a misaligned input GPA gives INVALID_ALIGNMENT") {
  Ready g;
  for (uint64_t off : {1, 2, 4, 7}) {
    CHECK(status_of(g.hypercall_raw(kPost, kInputPage + off, 0)) == Status::kInvalidAlignment);
  }
}

TEST_CASE("ABI: an input block crossing a page boundary gives INVALID_ALIGNMENT") {
  Ready g;
  // 256 bytes starting 8 bytes before the end of a page.
  CHECK(status_of(g.hypercall_raw(kPost, kInputPage + kPageSize - 8, 0)) ==
        Status::kInvalidAlignment);
  // The last position that fits is fine.
  g.memory.store(kInputPage + kPageSize - 256, g.memory.load<tlfs::PostMessageInput>(kInputPage));
  CHECK(status_of(g.hypercall_raw(kPost, kInputPage + kPageSize - 256, 0)) == Status::kSuccess);
}

TEST_CASE("ABI: an input GPA outside guest RAM or in hypervisor memory gives INVALID_ALIGNMENT") {
  Ready g;
  CHECK(status_of(g.hypercall_raw(kPost, kRamPages * kPageSize, 0)) == Status::kInvalidAlignment);
  CHECK(status_of(g.hypercall_raw(kPost, ~0ull & ~7ull, 0)) == Status::kInvalidAlignment);
  g.memory.hole_start = 0x40000;
  g.memory.hole_end = 0x50000;
  CHECK(status_of(g.hypercall_raw(kPost, 0x40000, 0)) == Status::kInvalidAlignment);
}

TEST_CASE("ABI: the output GPA is ignored by calls without output") {
  Ready g;
  CHECK(g.hypercall_raw(kPost, kInputPage, 0xDEADBEEF3) == 0);
}

TEST_CASE("ABI: VMCALL from CPL > 0 raises #UD and changes nothing") {
  Ready g;
  for (uint8_t cpl : {1, 2, 3}) {
    HypercallRegs regs{CpuMode::kLong64, cpl, 0, 0, kPost, kInputPage, 0, 0, 0};
    HypercallOutcome out = handle_hypercall(g.vp(0), regs);
    CHECK(out.end == HypercallEnd::kUndefinedOpcode);
  }
  CHECK(g.slot(0, 2).message_type == 0);
}

TEST_CASE("ABI: VMCALL from real mode or virtual-8086 mode raises #UD") {
  Ready g;
  for (CpuMode mode : {CpuMode::kReal, CpuMode::kVirtual8086}) {
    HypercallRegs regs{mode, 0, 0, 0, kPost, kInputPage, 0, 0, 0};
    CHECK(handle_hypercall(g.vp(0), regs).end == HypercallEnd::kUndefinedOpcode);
  }
}

TEST_CASE("ABI: 32-bit protected mode uses EDX:EAX, EBX:ECX, EDI:ESI and returns in EDX:EAX") {
  Ready g;
  // control in EDX:EAX; input GPA in EBX:ECX; the upper register halves are ignored.
  HypercallRegs regs{CpuMode::kProtected,
                     0,
                     kPost | 0xFFFFFFFF00000000ull,
                     0xFFFFFFFF00000000ull,
                     kInputPage,
                     0,
                     0,
                     0,
                     0};
  HypercallOutcome out = handle_hypercall(g.vp(0), regs);
  REQUIRE(out.end == HypercallEnd::kResult);
  CHECK(status_of(out.value) == Status::kSuccess);
  CHECK(g.slot(0, 2).message_type == 1);

  uint64_t rax = ~0ull, rdx = ~0ull;
  store_hypercall_result(regs, 0x0000012300000013ull, &rax, &rdx);
  CHECK(rax == 0x13);
  CHECK(rdx == 0x123);
  HypercallRegs long_regs{CpuMode::kLong64, 0, 0, 0, 0, 0, 0, 0, 0};
  rdx = 77;
  store_hypercall_result(long_regs, 0x13, &rax, &rdx);
  CHECK(rax == 0x13);
  CHECK(rdx == 77);  // RDX untouched in 64-bit mode
}

TEST_CASE("ABI: fast SignalEvent takes its input from RDX") {
  Guest g(1);
  g.enable_synic(0);
  REQUIRE(g.create_port(3, 2, 0, tlfs::PortType::kEvent, 0, 64) == Status::kSuccess);
  REQUIRE(g.connect(9, 3, tlfs::PortType::kEvent) == Status::kSuccess);
  uint64_t rdx = 9 | (uint64_t{5} << 32);  // ConnectionId, FlagNumber 5
  CHECK(g.hypercall_raw(kSignal | tlfs::control::kFastBit, rdx, 0) == 0);
  CHECK((g.memory.load<uint64_t>(sief_of(0) + 2 * 256) & (1ull << 5)) != 0);
  // RsvdZ (bits 63:48 of RDX) must be zero.
  CHECK(status_of(g.hypercall_raw(kSignal | tlfs::control::kFastBit, rdx | (1ull << 48), 0)) ==
        Status::kInvalidParameter);
}

TEST_CASE("ABI: the fast form of a call whose input exceeds 16 bytes is INVALID_HYPERCALL_INPUT") {
  Ready g;
  CHECK(status_of(g.hypercall_raw(kPost | tlfs::control::kFastBit, 5, 1)) ==
        Status::kInvalidHypercallInput);
  CHECK(g.slot(0, 2).message_type == 0);
}

TEST_CASE("ABI: status names cover every status") {
  CHECK(std::string(tlfs::status_name(Status::kInvalidSynicState)) == "INVALID_SYNIC_STATE");
  CHECK(std::string(tlfs::status_name(static_cast<Status>(0x7777))) == "UNKNOWN_STATUS");
}
