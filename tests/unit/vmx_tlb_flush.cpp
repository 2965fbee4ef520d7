// Remote TLB flushes, the portable protocol (vmx/tlb_flush.hpp): how
// requests merge in a VP's inbox, which INVVPIDs a VP executes (SDM Vol. 3C
// "INVVPID"; capability bits SDM Vol. 3D A.10), and the caller's bounded
// wait -- against threads standing in for the other CPUs: a flush returns
// only after every target acknowledged, two VPs flushing each other both
// finish, a VP waiting for SIPI counts as flushed, a silent one times out.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

#include "vmx/tlb_flush.hpp"

using namespace microhv;
using namespace microhv::vmx;

namespace {

TlbFlushRequest ranges(std::initializer_list<uint64_t> r) {
  static thread_local std::vector<uint64_t> storage;
  storage.assign(r);
  TlbFlushRequest q;
  q.scope = TlbFlushRequest::Scope::kRanges;
  q.range_count = static_cast<uint32_t>(storage.size());
  q.ranges = storage.data();
  return q;
}
TlbFlushRequest all(bool non_global = false) {
  TlbFlushRequest q;
  q.scope = non_global ? TlbFlushRequest::Scope::kAllNonGlobal : TlbFlushRequest::Scope::kAll;
  return q;
}

constexpr uint64_t kEveryType = ept_cap::kInvvpid | ept_cap::kInvvpidAddress |
                                ept_cap::kInvvpidSingle | ept_cap::kInvvpidAll |
                                ept_cap::kInvvpidSingleRetainingGlobals;

}  // namespace

TEST_CASE("tlb inbox: requests merge; tickets count up; take empties it") {
  TlbInbox in{};
  CHECK(in.take().scope == TlbInbox::kNothing);
  const uint64_t t1 = in.post(ranges({0x1000, 0x5002}));
  const uint64_t t2 = in.post(ranges({0x9000}));
  CHECK(t2 == t1 + 1);
  CHECK_FALSE(in.done(t1));
  TlbInbox::Work w = in.take();
  CHECK(w.scope == TlbInbox::kPages);
  CHECK(w.range_count == 3);
  CHECK(w.ranges[2] == 0x9000);
  CHECK(w.ticket == t2);
  CHECK(in.take().scope == TlbInbox::kNothing);
  in.complete(w.ticket);
  CHECK(in.done(t1));
  CHECK(in.done(t2));
  CHECK_FALSE(in.done(t2 + 1));
}

TEST_CASE("tlb inbox: too many ranges, or ranges with a non-global flush, become a full flush") {
  TlbInbox in{};
  for (uint32_t i = 0; i < TlbInbox::kRanges; ++i) in.post(ranges({uint64_t{i} << 12}));
  CHECK(in.take().scope == TlbInbox::kPages);
  for (uint32_t i = 0; i <= TlbInbox::kRanges; ++i) in.post(ranges({uint64_t{i} << 12}));
  TlbInbox::Work w = in.take();
  CHECK(w.scope == TlbInbox::kAll);
  CHECK(w.range_count == 0);
  // An address flush must also drop global translations; a non-global-only
  // flush may keep them: together they are a full flush.
  in.post(all(true));
  CHECK(in.take().scope == TlbInbox::kAllNonGlobal);
  in.post(all(true));
  in.post(ranges({0x1000}));
  CHECK(in.take().scope == TlbInbox::kAll);
  in.post(ranges({0x1000}));
  in.post(all(true));
  CHECK(in.take().scope == TlbInbox::kAll);
  in.post(all());
  in.post(all(true));
  CHECK(in.take().scope == TlbInbox::kAll);
}

TEST_CASE("tlb inbox: a late completion never satisfies a newer ticket") {
  TlbInbox in{};
  const uint64_t a = in.post(all());
  TlbInbox::Work w = in.take();
  const uint64_t b = in.post(all());
  in.complete(w.ticket);
  CHECK(in.done(a));
  CHECK_FALSE(in.done(b));
  in.complete(1);  // an older ticket does not move it back
  CHECK(in.done(a));
}

TEST_CASE("invvpid support: from IA32_VMX_EPT_VPID_CAP bits 32 and 40-43") {
  InvvpidSupport s = invvpid_support(kEveryType, true);
  CHECK(s.vpid);
  CHECK(s.individual_address);
  CHECK(s.single_context);
  CHECK(s.all_contexts);
  CHECK(s.single_context_retaining_globals);
  // Without INVVPID itself (bit 32) no type counts, and VPIDs cannot be flushed.
  s = invvpid_support(kEveryType & ~ept_cap::kInvvpid, true);
  CHECK_FALSE(s.vpid);
  CHECK_FALSE(s.individual_address);
  s = invvpid_support(ept_cap::kInvvpid | ept_cap::kInvvpidAddress, true);
  CHECK_FALSE(s.vpid);  // no context type: VPID is not usable
  CHECK_FALSE(invvpid_support(kEveryType, false).vpid);
}

TEST_CASE("invalidation plan: a few pages one by one; many, or no address type, one context") {
  const InvvpidSupport every = invvpid_support(kEveryType, true);
  TlbInbox in{};
  in.post(ranges({0x7000, 0xFFFF800000001002ull}));  // 1 page, then 3 pages
  InvalidationPlan p = plan_invalidation(in.take(), every);
  REQUIRE(p.count == 4);
  CHECK(p.ops[0].type == invvpid_type::kIndividualAddress);
  CHECK(p.ops[0].address == 0x7000);
  CHECK(p.ops[1].address == 0xFFFF800000001000ull);
  CHECK(p.ops[3].address == 0xFFFF800000003000ull);

  in.post(ranges({0x100000 | 0x20}));  // 33 pages > kMaxAddressOps
  p = plan_invalidation(in.take(), every);
  REQUIRE(p.count == 1);
  CHECK(p.ops[0].type == invvpid_type::kSingleContext);

  in.post(ranges({0x7000}));
  InvvpidSupport no_address = every;
  no_address.individual_address = false;
  p = plan_invalidation(in.take(), no_address);
  REQUIRE(p.count == 1);
  CHECK(p.ops[0].type == invvpid_type::kSingleContext);
}

TEST_CASE("invalidation plan: a non-canonical page, or one wrapping, flushes the context") {
  // INVVPID fails on a non-canonical address; the flush must still happen.
  const InvvpidSupport every = invvpid_support(kEveryType, true);
  TlbInbox in{};
  for (uint64_t range : {0x0000800000000000ull, 0x00007FFFFFFFF001ull, 0xFFFFFFFFFFFFF001ull}) {
    INFO("range 0x" << std::hex << range);
    in.post(ranges({range}));
    const InvalidationPlan p = plan_invalidation(in.take(), every);
    REQUIRE(p.count == 1);
    CHECK(p.ops[0].type == invvpid_type::kSingleContext);
  }
}

TEST_CASE("invalidation plan: the context types by what the CPU offers and what was asked") {
  TlbInbox in{};
  const InvvpidSupport every = invvpid_support(kEveryType, true);
  in.post(all(true));
  CHECK(plan_invalidation(in.take(), every).ops[0].type ==
        invvpid_type::kSingleContextRetainingGlobals);
  in.post(all());
  CHECK(plan_invalidation(in.take(), every).ops[0].type == invvpid_type::kSingleContext);
  const InvvpidSupport all_only = invvpid_support(ept_cap::kInvvpid | ept_cap::kInvvpidAll, true);
  in.post(all(true));
  CHECK(plan_invalidation(in.take(), all_only).ops[0].type == invvpid_type::kAllContexts);
  in.post(ranges({0x1000}));
  CHECK(plan_invalidation(in.take(), all_only).ops[0].type == invvpid_type::kAllContexts);
  // Nothing asked, or no VPID (VM entries flush then): nothing to execute.
  CHECK(plan_invalidation(in.take(), every).count == 0);
  in.post(all());
  CHECK(plan_invalidation(in.take(), invvpid_support(kEveryType, false)).count == 0);
}

// ------------------------------------------------------------------ the wait
namespace {

// One VP as the protocol sees it: its inbox, its published activity, and
// the INVVPIDs it executed.
struct SimVp {
  TlbInbox inbox{};
  RemoteQueue queue{};
  std::atomic<uint32_t> flushed{0};  // work items executed
  void serve() {
    if (__atomic_load_n(&inbox.posted, __ATOMIC_ACQUIRE) == inbox.completed) return;
    TlbInbox::Work w = inbox.take();
    if (w.scope != TlbInbox::kNothing) flushed.fetch_add(1);
    inbox.complete(w.ticket);
  }
};

struct SimWait final : FlushWaitHost {
  explicit SimWait(SimVp& self) : self(self) {}
  uint64_t now() override { return ticks++; }
  void serve_own_inbox() override { self.serve(); }
  void relax() override { std::this_thread::yield(); }
  SimVp& self;
  uint64_t ticks = 0;
};

// The caller's side of one round against `targets`.
uint32_t flush_round(SimVp& self, std::vector<SimVp*> targets, uint64_t budget) {
  std::vector<FlushTarget> t;
  for (size_t i = 0; i < targets.size(); ++i) {
    SimVp* v = targets[i];
    t.push_back({VpIndex(static_cast<uint32_t>(i)), &v->inbox, &v->queue, v->inbox.post(all())});
    v->queue.poke();
  }
  SimWait wait(self);
  return wait_for_targets(t.data(), static_cast<uint32_t>(t.size()), budget, wait);
}

}  // namespace

TEST_CASE("flush wait: returns only after every target served its inbox") {
  SimVp caller, a, b;
  std::atomic<bool> stop{false};
  std::thread ta([&] {
    while (!stop) {
      if (__atomic_load_n(&a.queue.work, __ATOMIC_SEQ_CST) != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a slow exit
        a.queue.drain();
        a.serve();
      }
      std::this_thread::yield();
    }
  });
  std::thread tb([&] {
    while (!stop) {
      b.serve();
      std::this_thread::yield();
    }
  });
  CHECK(flush_round(caller, {&a, &b}, ~0ull >> 1) == 0);
  // Returned: both have executed the flush already.
  CHECK(a.flushed.load() == 1);
  CHECK(b.flushed.load() == 1);
  stop = true;
  ta.join();
  tb.join();
}

TEST_CASE("flush wait: two VPs flushing each other both finish (each serves its own inbox)") {
  for (int round = 0; round < 200; ++round) {
    SimVp a, b;
    uint32_t left_a = 99, left_b = 99;
    std::atomic<int> finished{0};
    // Each VP, its call done, goes on serving its inbox before every entry.
    auto vp = [&](SimVp& self, SimVp& other, uint32_t& left) {
      left = flush_round(self, {&other}, 50'000'000);
      finished.fetch_add(1);
      while (finished.load() < 2) self.serve();
      self.serve();
    };
    std::thread ta([&] { vp(a, b, left_a); });
    std::thread tb([&] { vp(b, a, left_b); });
    ta.join();
    tb.join();
    REQUIRE(left_a == 0);
    REQUIRE(left_b == 0);
    CHECK(a.flushed.load() == 1);
    CHECK(b.flushed.load() == 1);
  }
}

TEST_CASE("flush wait: a VP waiting for SIPI counts as flushed; its next entry serves the inbox") {
  SimVp caller, parked;
  parked.queue.activity = activity::kWaitForSipi;
  CHECK(flush_round(caller, {&parked}, 1000) == 0);
  CHECK(parked.flushed.load() == 0);  // not yet: it runs no guest code before its next entry
  CHECK(parked.queue.work == 1);      // ... which sees the poke and serves the inbox first
  parked.serve();
  CHECK(parked.flushed.load() == 1);
}

TEST_CASE("flush wait: a target that never answers is reported after the deadline") {
  SimVp caller, silent, fine;
  std::vector<FlushTarget> t{{VpIndex(1), &fine.inbox, &fine.queue, fine.inbox.post(all())},
                             {VpIndex(2), &silent.inbox, &silent.queue, silent.inbox.post(all())}};
  fine.serve();
  SimWait wait(caller);
  CHECK(wait_for_targets(t.data(), 2, 500, wait) == 1);
  CHECK(t[0].vp == VpIndex(2));  // the one not done, first
  CHECK(wait.ticks > 500);
  // The caller served its own inbox meanwhile.
  caller.inbox.post(all());
  CHECK(wait_for_targets(t.data(), 1, wait.ticks + 10, wait) == 1);
  CHECK(caller.flushed.load() == 1);
}
