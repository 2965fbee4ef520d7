// The rep-hypercall and variable-header rules of the ABI engine (TLFS
// "Hypercall Interface": Hypercall Classes, Hypercall Continuation,
// Variable Sized Hypercall Input Headers, Hypercall Outputs, Common Status
// Codes), driven through dispatch_hypercall with a table of test calls: a
// rep call with input and output elements whose element 0xBAD fails, a
// simple call with a variable header, a rep call with both.
#include <vector>

#include "hypercall/abi.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;
namespace control = tlfs::control;

namespace {

constexpr uint64_t kOutputPage = 0x3000;
constexpr uint64_t kBad = 0xBAD;
constexpr uint64_t kSalt = 0x5A5A000000000000ull;

struct Seen {
  RepWindow reps;
  uint32_t var_qwords;
  std::vector<uint64_t> var;       // the variable header as the handler read it
  std::vector<uint64_t> elements;  // the input elements of its window
  bool past_end_refused;           // a read past the declared block failed
};
std::vector<Seen> g_seen;

// Rep: header {salt}, element in -> out = in ^ salt; element kBad fails.
CallResult echo(Vp&, const CallInput& in, CallOutput& out, RepWindow reps) {
  uint64_t salt = 0, scratch = 0;
  REQUIRE(in.read(0, &salt, 8));
  Seen s{reps, in.var_qwords(), {}, {}, !in.element(reps.count, &scratch)};
  for (uint32_t i = 0; i < in.var_qwords(); ++i) {
    uint64_t q = 0;
    REQUIRE(in.var_qword(i, &q));
    s.var.push_back(q);
  }
  uint64_t q = 0;
  s.past_end_refused = s.past_end_refused && !in.var_qword(in.var_qwords(), &q);
  for (uint32_t i = reps.start; i < reps.end; ++i) {
    uint64_t e = 0;
    REQUIRE(in.element(i, &e));
    s.elements.push_back(e);
    if (e == kBad) {
      g_seen.push_back(s);
      return {Status::kInvalidParameter, i};
    }
    const uint64_t o = e ^ kSalt;
    out.element(i, &o);
  }
  g_seen.push_back(s);
  return {Status::kSuccess, reps.end};
}

// Simple with a variable header: records what it read.
CallResult var_simple(Vp&, const CallInput& in, CallOutput&, RepWindow reps) {
  Seen s{reps, in.var_qwords(), {}, {}, false};
  for (uint32_t i = 0; i < in.var_qwords(); ++i) {
    uint64_t q = 0;
    REQUIRE(in.var_qword(i, &q));
    s.var.push_back(q);
  }
  uint64_t q = 0;
  s.past_end_refused =
      !in.var_qword(in.var_qwords(), &q) && !in.read(8 + 8 * in.var_qwords(), &q, 8);
  g_seen.push_back(s);
  return {Status::kSuccess, 0};
}

// A handler that claims more reps than it was given (a bug the engine contains).
CallResult greedy(Vp&, const CallInput&, CallOutput&, RepWindow reps) {
  return {Status::kInvalidParameter, reps.count + 100};
}

constexpr uint16_t kEcho = 0x7001, kVarSimple = 0x7002, kVarRep = 0x7003, kInOnly = 0x7004,
                   kGreedy = 0x7005;
constexpr CallSpec kTable[] = {
    {tlfs::CallCode(kEcho), {8, false, 8, 8}, 0, 0, echo},
    {tlfs::CallCode(kVarSimple), {8, true, 0, 0}, 0, 0, var_simple},
    {tlfs::CallCode(kVarRep), {8, true, 8, 8}, 0, 0, echo},
    {tlfs::CallCode(kInOnly), {8, false, 8, 0}, 0, 0, echo},
    {tlfs::CallCode(kGreedy), {8, false, 8, 0}, 0, 0, greedy},
};

uint64_t rep(uint16_t code, uint32_t count, uint32_t start = 0, uint32_t var = 0) {
  return code | uint64_t{count} << control::kRepCountShift |
         uint64_t{start} << control::kRepStartShift | uint64_t{var} << control::kVarHeaderShift;
}

Status status_of(uint64_t result) {
  return static_cast<Status>(result & 0xFFFF);
}
uint32_t reps_of(uint64_t result) {
  return static_cast<uint32_t>(result >> 32) & 0xFFF;
}

// The guest's side: a VMCALL executed again for as long as it is continued.
struct Caller : Guest {
  Caller() : Guest(1) { g_seen.clear(); }
  HypercallOutcome once(uint64_t c, uint64_t rdx = kInputPage, uint64_t r8 = kOutputPage) {
    HypercallRegs regs{CpuMode::kLong64, 0, 0, 0, c, rdx, 0, 0, r8};
    return dispatch_hypercall(vp(0), regs, kTable, sizeof(kTable) / sizeof(kTable[0]));
  }
  uint64_t call(uint64_t c, uint64_t rdx = kInputPage, uint64_t r8 = kOutputPage) {
    resumed = 0;
    for (;;) {
      const HypercallOutcome o = once(c, rdx, r8);
      REQUIRE(o.end != HypercallEnd::kUndefinedOpcode);
      if (o.end == HypercallEnd::kResult) return o.value;
      REQUIRE(control::rep_start(o.value) > control::rep_start(c));  // progress
      REQUIRE((o.value & ~control::kRepStartMask) == (c & ~control::kRepStartMask));
      c = o.value;
      ++resumed;
    }
  }
  // Input block: header (salt), `var` header qwords, then elements i + 1.
  void input(uint32_t elements, uint32_t var = 0, uint64_t at = kInputPage) {
    memory.store<uint64_t>(at, kSalt);
    for (uint32_t i = 0; i < var; ++i) memory.store<uint64_t>(at + 8 + 8 * i, 0x1000 + i);
    for (uint32_t i = 0; i < elements; ++i) {
      memory.store<uint64_t>(at + 8 + 8 * var + 8 * i, i + 1);
    }
  }
  uint64_t out(uint32_t i) { return memory.load<uint64_t>(kOutputPage + 8 * i); }
  uint32_t resumed = 0;
};

}  // namespace

TEST_CASE("rep: a rep call with rep count 0 is INVALID_HYPERCALL_INPUT and runs nothing") {
  Caller g;
  g.input(1);
  CHECK(g.call(rep(kEcho, 0)) == uint64_t(Status::kInvalidHypercallInput));
  CHECK(g_seen.empty());
}

TEST_CASE("rep: a rep start not below the rep count is INVALID_HYPERCALL_INPUT") {
  Caller g;
  g.input(8);
  for (uint32_t start : {5u, 6u, 4095u}) {
    INFO("start " << start);
    CHECK(g.call(rep(kEcho, 5, start)) == uint64_t(Status::kInvalidHypercallInput));
  }
  CHECK(g.call(rep(kEcho, 4095, 4095)) == uint64_t(Status::kInvalidHypercallInput));
  CHECK(g_seen.empty());
  CHECK(g.call(rep(kEcho, 5, 4)) == tlfs::make_result(Status::kSuccess, 5));  // the last one
}

TEST_CASE("rep: every input element is read and every output element written, in list order") {
  Caller g;
  g.input(10);
  const uint64_t r = g.call(rep(kEcho, 10));
  CHECK(r == tlfs::make_result(Status::kSuccess, 10));
  REQUIRE(g_seen.size() == 1);
  CHECK(g_seen[0].elements == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(g_seen[0].past_end_refused);  // element rep_count is past the block
  for (uint32_t i = 0; i < 10; ++i) CHECK(g.out(i) == ((i + 1) ^ kSalt));
  CHECK(g.out(10) == 0);  // nothing past the list
}

TEST_CASE("rep: reps completed counts from the start of the list, not from the rep start") {
  // TLFS: "if the caller specified a rep start index of 5, and a rep count of
  // 10, the reps complete field would indicate 10 upon successful completion".
  Caller g;
  g.input(10);
  CHECK(g.call(rep(kEcho, 10, 5)) == tlfs::make_result(Status::kSuccess, 10));
  REQUIRE(g_seen.size() == 1);
  CHECK(g_seen[0].elements == std::vector<uint64_t>{6, 7, 8, 9, 10});
  for (uint32_t i = 0; i < 5; ++i) CHECK(g.out(i) == 0);  // done before: untouched
  CHECK(g.out(5) == (6 ^ kSalt));
}

TEST_CASE("rep: an error on an element returns its status with the reps completed before it") {
  Caller g;
  g.input(10);
  g.memory.store<uint64_t>(kInputPage + 8 + 8 * 6, kBad);
  const uint64_t r = g.call(rep(kEcho, 10));
  CHECK(status_of(r) == Status::kInvalidParameter);
  CHECK(reps_of(r) == 6);
  CHECK((r & 0xFFFF0000FFFF0000ull) == 0);  // reserved result bits clear
  for (uint32_t i = 0; i < 6; ++i) CHECK(g.out(i) == ((i + 1) ^ kSalt));
  CHECK(g.out(6) == 0);  // the failing rep and those after it wrote nothing
  CHECK(g.out(7) == 0);
}

TEST_CASE("rep: a long call is continued: RIP stays, RCX's rep start advances by the batch") {
  Caller g;
  g.input(200);
  const uint64_t c = rep(kEcho, 200);
  const HypercallOutcome first = g.once(c);
  REQUIRE(first.end == HypercallEnd::kContinue);
  CHECK(first.value == control::with_rep_start(c, kRepBatch));
  REQUIRE(g_seen.size() == 1);
  CHECK(g_seen[0].reps.start == 0);
  CHECK(g_seen[0].reps.end == kRepBatch);
  CHECK(g.out(kRepBatch - 1) != 0);
  CHECK(g.out(kRepBatch) == 0);  // the next batch has not run

  g_seen.clear();
  CHECK(g.call(c) == tlfs::make_result(Status::kSuccess, 200));
  CHECK(g.resumed == 3);  // 64 + 64 + 64 + 8
  REQUIRE(g_seen.size() == 4);
  CHECK(g_seen[3].reps.start == 3 * kRepBatch);
  CHECK(g_seen[3].reps.end == 200);
  for (uint32_t i = 0; i < 200; ++i) CHECK(g.out(i) == ((i + 1) ^ kSalt));
}

TEST_CASE("rep: an error in a resumed batch reports the reps of the earlier batches too") {
  Caller g;
  g.input(200);
  g.memory.store<uint64_t>(kInputPage + 8 + 8 * 150, kBad);
  const uint64_t r = g.call(rep(kEcho, 200));
  CHECK(status_of(r) == Status::kInvalidParameter);
  CHECK(reps_of(r) == 150);
  CHECK(g.resumed == 2);
}

TEST_CASE("rep: the 32-bit convention is continued in EDX:EAX") {
  Caller g;
  g.input(100);
  const uint64_t c = rep(kEcho, 100);
  HypercallRegs regs{
      CpuMode::kProtected, 0, c & 0xFFFFFFFF, 0, kInputPage, c >> 32, kOutputPage, 0, 0};
  const HypercallOutcome o = dispatch_hypercall(g.vp(0), regs, kTable, 5);
  REQUIRE(o.end == HypercallEnd::kContinue);
  uint64_t rcx = 77, rax = 0, rdx = 0;
  store_hypercall_control(regs, o.value, &rcx, &rax, &rdx);
  CHECK(rcx == 77);  // the input GPA stays in EBX:ECX
  CHECK(((rdx << 32) | rax) == control::with_rep_start(c, kRepBatch));
  HypercallRegs long_regs{CpuMode::kLong64, 0, 0, 0, 0, 0, 0, 0, 0};
  rax = rdx = 5;
  store_hypercall_control(long_regs, o.value, &rcx, &rax, &rdx);
  CHECK(rcx == o.value);
  CHECK(rax == 5);  // 64-bit: only RCX
  CHECK(rdx == 5);
}

TEST_CASE("rep: the whole list must lie in the input page; the output list in the output page") {
  Caller g;
  // 8-byte header + 8 elements = 72 bytes: the last position that fits.
  g.input(8, 0, kInputPage + kPageSize - 72);
  CHECK(g.call(rep(kEcho, 8), kInputPage + kPageSize - 72) ==
        tlfs::make_result(Status::kSuccess, 8));
  // One element more crosses the page, even when the rep start skips it.
  CHECK(g.call(rep(kEcho, 9, 8), kInputPage + kPageSize - 72) ==
        uint64_t(Status::kInvalidAlignment));
  // 4095 reps of 8 bytes can never fit a page.
  CHECK(g.call(rep(kEcho, 4095)) == uint64_t(Status::kInvalidAlignment));
  // The output list crossing its page, outside RAM, misaligned.
  g.input(8);
  CHECK(g.call(rep(kEcho, 8), kInputPage, kOutputPage + kPageSize - 56) ==
        uint64_t(Status::kInvalidAlignment));
  CHECK(g.call(rep(kEcho, 8), kInputPage, kRamPages * kPageSize) ==
        uint64_t(Status::kInvalidAlignment));
  CHECK(g.call(rep(kEcho, 8), kInputPage, kOutputPage + 4) == uint64_t(Status::kInvalidAlignment));
  // A call without output elements ignores the output GPA (TLFS).
  CHECK(g.call(rep(kInOnly, 8), kInputPage, ~0ull) == tlfs::make_result(Status::kSuccess, 8));
}

TEST_CASE("var header: a call without one refuses it; one with it reads exactly its qwords") {
  Caller g;
  g.input(4, 3);
  CHECK(g.call(rep(kEcho, 4, 0, 1)) == uint64_t(Status::kInvalidHypercallInput));
  CHECK(g.call(kVarSimple | uint64_t{3} << control::kVarHeaderShift) == 0);
  REQUIRE(g_seen.size() == 1);
  CHECK(g_seen[0].var == std::vector<uint64_t>{0x1000, 0x1001, 0x1002});
  CHECK(g_seen[0].past_end_refused);
  // Zero-sized variable header (TLFS: "the corresponding bits ... set to zero").
  CHECK(g.call(kVarSimple) == 0);
  CHECK(g_seen[1].var.empty());
  // A variable header is not a rep count: a simple call with one stays simple.
  CHECK(g.call(kVarSimple | uint64_t{1} << control::kRepCountShift) ==
        uint64_t(Status::kInvalidHypercallInput));
}

TEST_CASE("var header: its size counts toward the page, up to the 10-bit maximum") {
  Caller g;
  // 8 + 511 * 8 = 4096 bytes: a full page from its start is fine...
  g.input(0, 511);
  CHECK(g.call(kVarSimple | uint64_t{511} << control::kVarHeaderShift) == 0);
  // ... one qword more, or the largest size (1023), crosses it.
  CHECK(g.call(kVarSimple | uint64_t{512} << control::kVarHeaderShift) ==
        uint64_t(Status::kInvalidAlignment));
  CHECK(g.call(kVarSimple | uint64_t{1023} << control::kVarHeaderShift) ==
        uint64_t(Status::kInvalidAlignment));
  CHECK(g_seen.size() == 1);
}

TEST_CASE("var header: rep elements follow the whole header (fixed + variable)") {
  Caller g;
  g.input(5, 2);
  CHECK(g.call(rep(kVarRep, 5, 0, 2)) == tlfs::make_result(Status::kSuccess, 5));
  REQUIRE(g_seen.size() == 1);
  CHECK(g_seen[0].var == std::vector<uint64_t>{0x1000, 0x1001});
  CHECK(g_seen[0].elements == std::vector<uint64_t>{1, 2, 3, 4, 5});
}

TEST_CASE("fast: a rep call whose block fits 16 bytes runs from the registers; else refused") {
  Caller g;
  // header (salt) in RDX, one element in R8: 16 bytes, no output.
  const uint64_t fast = tlfs::control::kFastBit;
  CHECK(g.call(rep(kInOnly, 1) | fast, kSalt, 41) == tlfs::make_result(Status::kSuccess, 1));
  REQUIRE(g_seen.size() == 1);
  CHECK(g_seen[0].elements == std::vector<uint64_t>{41});
  CHECK(g.call(rep(kInOnly, 2) | fast, kSalt, 41) == uint64_t(Status::kInvalidHypercallInput));
  // Output elements need XMM fast output, which microhv does not offer.
  CHECK(g.call(rep(kEcho, 1) | fast, kSalt, 41) == uint64_t(Status::kInvalidHypercallInput));
}

TEST_CASE("rep: a handler cannot report reps outside the window it was given") {
  Caller g;
  g.input(8);
  const uint64_t r = g.call(rep(kGreedy, 8, 2));
  CHECK(status_of(r) == Status::kInvalidParameter);
  CHECK(reps_of(r) == 7);  // at most the last rep of its window failed
}
