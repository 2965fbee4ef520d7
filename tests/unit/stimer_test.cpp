// Synthetic timers (TLFS 12.3): the state machine of STIMER0-3 through the
// synthetic-MSR front, with expirations run the way the back end runs them
// (stimers_run at the VP's earliest deadline).
#include <cstring>

#include "synic/timers.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
namespace msr = tlfs::msr;
namespace cfg = tlfs::stimer_config;

namespace {

constexpr uint32_t kSint = 3;
constexpr uint8_t kDirectVector = 0xED;

uint64_t config_msr(uint32_t n) {
  return msr::kStimer0Config + 2 * n;
}
uint64_t count_msr(uint32_t n) {
  return msr::kStimer0Count + 2 * n;
}
uint64_t message_config(uint32_t sint = kSint) {
  return cfg::kEnable | (uint64_t{sint} << cfg::kSintShift);
}
uint64_t direct_config(uint8_t vector = kDirectVector) {
  return cfg::kEnable | cfg::kDirectMode | (uint64_t{vector} << cfg::kVectorShift);
}

struct TimerGuest : Guest {
  TimerGuest() : Guest(2) { enable_synic(0, kSint); }
  uint64_t now() { return partition->reference_time(); }
  // Advances the clock to `t` (reference time) and lets the back end run.
  void run_until(uint64_t t, uint32_t vp = 0) {
    if (t > now()) clock.advance_100ns(t - now());
    while (now() < t) ++clock.tsc;  // the 64.64 scale may land one unit short
    stimers_run(this->vp(vp), now());
  }
  tlfs::TimerMessagePayload payload(uint32_t vp = 0, uint32_t sint = kSint) {
    tlfs::TimerMessagePayload p;
    std::memcpy(&p, slot(vp, sint).payload, sizeof(p));
    return p;
  }
};

}  // namespace

TEST_CASE("stimer: a one-shot message timer fires once at COUNT with the timer-expired message") {
  TimerGuest g;
  g.clock.advance_100ns(1000);
  REQUIRE(g.wrmsr(0, config_msr(2), message_config()) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, count_msr(2), 5000) == MsrResult::kOk);
  CHECK(stimers_next_deadline(g.vp(0)) == 5000);
  g.run_until(4999);
  CHECK(g.irqs.raised.empty());
  g.run_until(5003);
  REQUIRE(g.irqs.raised.size() == 1);
  CHECK(g.irqs.raised[0].vector == kVector);
  const tlfs::Message m = g.slot(0, kSint);
  CHECK(m.message_type == tlfs::kMessageTypeTimerExpired);
  CHECK(m.payload_size == sizeof(tlfs::TimerMessagePayload));
  const tlfs::TimerMessagePayload p = g.payload();
  CHECK(p.timer_index == 2);
  CHECK(p.expiration_time == 5000);
  CHECK(p.delivery_time >= 5002);  // when it was written (clock rounding: >= 5002)
  // One-shot: disabled after it fired; nothing armed.
  CHECK((g.rdmsr(0, config_msr(2)) & cfg::kEnable) == 0);
  CHECK(stimers_next_deadline(g.vp(0)) == kNoDeadline);
  g.run_until(100000);
  CHECK(g.irqs.raised.size() == 1);
}

TEST_CASE("stimer: a one-shot COUNT in the past fires at the next run") {
  TimerGuest g;
  g.clock.advance_100ns(9000);
  REQUIRE(g.wrmsr(0, config_msr(0), message_config()) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, count_msr(0), 10) == MsrResult::kOk);
  stimers_run(g.vp(0), g.now());
  CHECK(g.irqs.raised.size() == 1);
  CHECK(g.payload().expiration_time == 10);
}

TEST_CASE("stimer: periodic fires every period, coalesces missed periods, stops on CONFIG 0") {
  TimerGuest g;
  REQUIRE(g.wrmsr(0, config_msr(1), message_config() | cfg::kPeriodic) == MsrResult::kOk);
  const uint64_t start = g.now();
  REQUIRE(g.wrmsr(0, count_msr(1), 1000) == MsrResult::kOk);  // period: 100 us
  CHECK(stimers_next_deadline(g.vp(0)) == start + 1000);
  for (int i = 1; i <= 3; ++i) {
    g.run_until(start + 1000 * i);
    REQUIRE(g.irqs.raised.size() == static_cast<size_t>(i));
    CHECK(g.payload().expiration_time == start + 1000 * i);
    CHECK(g.consume(0, kSint) == false);
  }
  // 5.5 periods late: one expiration, the next deadline on the period grid.
  g.run_until(start + 8500);
  CHECK(g.irqs.raised.size() == 4);
  CHECK(stimers_next_deadline(g.vp(0)) == start + 9000);
  g.consume(0, kSint);
  REQUIRE(g.wrmsr(0, config_msr(1), 0) == MsrResult::kOk);
  CHECK(stimers_next_deadline(g.vp(0)) == kNoDeadline);
  g.run_until(start + 100000);
  CHECK(g.irqs.raised.size() == 4);
}

TEST_CASE("stimer: a busy slot gets MessagePending; the message waits in the timer until EOM") {
  TimerGuest g;
  // A port message occupies SINT 3's slot.
  REQUIRE(g.create_port(0x10, kSint, 0) == tlfs::Status::kSuccess);
  REQUIRE(g.connect(0x20, 0x10) == tlfs::Status::kSuccess);
  REQUIRE(g.post(0x20, 7, 16) == tlfs::Status::kSuccess);
  REQUIRE(g.irqs.raised.size() == 1);
  REQUIRE(g.wrmsr(0, config_msr(0), message_config() | cfg::kPeriodic) == MsrResult::kOk);
  const uint64_t start = g.now();
  REQUIRE(g.wrmsr(0, count_msr(0), 500) == MsrResult::kOk);
  g.run_until(start + 500);
  CHECK(g.irqs.raised.size() == 1);  // no interrupt: the slot is busy
  CHECK((g.slot(0, kSint).message_flags & tlfs::kMessageFlagPending) != 0);
  CHECK(g.slot(0, kSint).message_type == 7);
  // The periodic timer is not re-armed while its message waits (coalesced).
  CHECK(stimers_next_deadline(g.vp(0)) == kNoDeadline);
  g.run_until(start + 5000);
  CHECK(g.irqs.raised.size() == 1);
  // Guest: frees the slot, sees MessagePending, writes EOM.
  CHECK(g.consume(0, kSint));
  REQUIRE(g.irqs.raised.size() == 2);
  CHECK(g.slot(0, kSint).message_type == tlfs::kMessageTypeTimerExpired);
  CHECK(g.payload().expiration_time == start + 500);
  CHECK(g.payload().delivery_time >= start + 5000);
  // Re-armed on the grid after the delivery.
  CHECK(stimers_next_deadline(g.vp(0)) == start + 5500);
}

TEST_CASE("stimer: the timer's message does not need a port buffer") {
  TimerGuest g;
  // Exhaust a port's 16 buffers behind a busy slot; the timer still queues.
  REQUIRE(g.create_port(0x10, kSint, 0) == tlfs::Status::kSuccess);
  REQUIRE(g.connect(0x20, 0x10) == tlfs::Status::kSuccess);
  for (int i = 0; i < 17; ++i) REQUIRE(g.post(0x20, 7, 8) == tlfs::Status::kSuccess);
  CHECK(g.post(0x20, 7, 8) == tlfs::Status::kInsufficientBuffers);
  REQUIRE(g.wrmsr(0, config_msr(3), message_config()) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, count_msr(3), g.now() + 10) == MsrResult::kOk);
  g.run_until(g.now() + 10);
  // Drain: 16 port messages, then the timer's.
  int port_messages = 0;
  bool timer_seen = false;
  for (int i = 0; i < 40 && !timer_seen; ++i) {
    const tlfs::Message m = g.slot(0, kSint);
    if (m.message_type == 7) ++port_messages;
    if (m.message_type == tlfs::kMessageTypeTimerExpired) timer_seen = true;
    g.consume(0, kSint);
  }
  CHECK(port_messages == 17);
  CHECK(timer_seen);
}

TEST_CASE("stimer: direct mode raises its vector as a fixed (EOI'd) interrupt, no message") {
  TimerGuest g;
  REQUIRE(g.wrmsr(0, config_msr(0), direct_config()) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, count_msr(0), g.now() + 100) == MsrResult::kOk);
  g.run_until(g.now() + 100);
  REQUIRE(g.irqs.raised.size() == 1);
  CHECK(g.irqs.raised[0].vector == kDirectVector);
  CHECK_FALSE(g.irqs.raised[0].auto_eoi);
  CHECK(g.slot(0, kSint).message_type == tlfs::kMessageTypeNone);
  // Direct mode needs no SynIC at all (TLFS 12.3.3).
  REQUIRE(g.wrmsr(0, msr::kScontrol, 0) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, config_msr(0), direct_config() | cfg::kPeriodic) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, count_msr(0), 50) == MsrResult::kOk);
  g.run_until(g.now() + 50);
  CHECK(g.irqs.raised.size() == 2);
}

TEST_CASE("stimer: Linux's sequence: CONFIG enable+auto-enable, then COUNT writes re-arm it") {
  // hv_ce_set_oneshot writes CONFIG (enable, auto-enable, direct, vector)
  // with COUNT 0; hv_ce_set_next_event writes COUNT = now + delta each time;
  // hv_ce_shutdown writes COUNT 0 then CONFIG 0.
  TimerGuest g;
  REQUIRE(g.wrmsr(0, config_msr(0), direct_config() | cfg::kAutoEnable) == MsrResult::kOk);
  CHECK(stimers_next_deadline(g.vp(0)) == kNoDeadline);  // COUNT 0: idle
  for (int i = 1; i <= 3; ++i) {
    REQUIRE(g.wrmsr(0, count_msr(0), g.now() + 40) == MsrResult::kOk);
    CHECK((g.rdmsr(0, config_msr(0)) & cfg::kEnable) != 0);
    g.run_until(g.now() + 40);
    CHECK(g.irqs.raised.size() == static_cast<size_t>(i));
    CHECK((g.rdmsr(0, config_msr(0)) & cfg::kEnable) == 0);  // one-shot: off again
  }
  // Restarted before it fired: only the new deadline counts.
  REQUIRE(g.wrmsr(0, count_msr(0), g.now() + 40) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, count_msr(0), g.now() + 400) == MsrResult::kOk);
  g.run_until(g.now() + 100);
  CHECK(g.irqs.raised.size() == 3);
  // Stop: COUNT 0 disables it.
  REQUIRE(g.wrmsr(0, count_msr(0), 0) == MsrResult::kOk);
  CHECK((g.rdmsr(0, config_msr(0)) & cfg::kEnable) == 0);
  g.run_until(g.now() + 1000);
  CHECK(g.irqs.raised.size() == 3);
}

TEST_CASE("stimer: CONFIG #GP rules and SINT 0") {
  TimerGuest g;
  CHECK(g.wrmsr(0, config_msr(0), 1ull << 13) == MsrResult::kGp);  // reserved
  CHECK(g.wrmsr(0, config_msr(0), 1ull << 20) == MsrResult::kGp);
  CHECK(g.wrmsr(0, config_msr(0), direct_config(15)) == MsrResult::kGp);  // vector < 16
  CHECK(g.rdmsr(0, config_msr(0)) == 0);
  // Message mode to SINT 0 cannot be enabled (the write succeeds, enable stays clear).
  REQUIRE(g.wrmsr(0, config_msr(0), cfg::kEnable) == MsrResult::kOk);
  CHECK(g.rdmsr(0, config_msr(0)) == 0);
  // Lazy is accepted and read back.
  REQUIRE(g.wrmsr(0, config_msr(1), message_config() | cfg::kLazy) == MsrResult::kOk);
  CHECK(g.rdmsr(0, config_msr(1)) == (message_config() | cfg::kLazy));
  // COUNT takes any value and reads it back.
  REQUIRE(g.wrmsr(0, count_msr(3), 0x123456789ull) == MsrResult::kOk);
  CHECK(g.rdmsr(0, count_msr(3)) == 0x123456789ull);
  // Without the direct-mode feature, direct mode is #GP.
  PartitionFeatures f = kFullFeatures;
  f.misc &= ~tlfs::cpuid::kFeatureStimerDirectMode;
  Guest h(1, f);
  CHECK(h.wrmsr(0, config_msr(0), direct_config()) == MsrResult::kGp);
  CHECK(h.wrmsr(0, config_msr(0), message_config()) == MsrResult::kOk);
}

TEST_CASE("stimer: timers are per VP and fire on their own VP") {
  TimerGuest g;
  g.enable_synic(1, kSint);
  REQUIRE(g.wrmsr(1, config_msr(0), message_config()) == MsrResult::kOk);
  REQUIRE(g.wrmsr(1, count_msr(0), g.now() + 10) == MsrResult::kOk);
  CHECK(stimers_next_deadline(g.vp(0)) == kNoDeadline);
  CHECK(g.rdmsr(0, count_msr(0)) == 0);
  g.run_until(g.now() + 10, 0);  // VP 0's run does not fire VP 1's timer
  CHECK(g.irqs.raised.empty());
  stimers_run(g.vp(1), g.now());
  REQUIRE(g.irqs.raised.size() == 1);
  CHECK(g.irqs.raised[0].vp == 1);
  CHECK(g.slot(1, kSint).message_type == tlfs::kMessageTypeTimerExpired);
  CHECK(g.slot(0, kSint).message_type == tlfs::kMessageTypeNone);
}

TEST_CASE("stimer: without a SIM page the message is lost and the timer goes on") {
  TimerGuest g;
  REQUIRE(g.wrmsr(0, msr::kSimp, 0) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, config_msr(0), message_config() | cfg::kPeriodic) == MsrResult::kOk);
  const uint64_t start = g.now();
  REQUIRE(g.wrmsr(0, count_msr(0), 100) == MsrResult::kOk);
  g.run_until(start + 100);
  CHECK(g.irqs.raised.empty());
  CHECK(stimers_next_deadline(g.vp(0)) == start + 200);
}
