// Group "time", its synthetic timers (TLFS 12.3): the timer MSRs, one-shot
// and periodic timers in message mode (SINT3, vector 0x50, AutoEOI) and in
// direct mode (vectors 0x54/0x55, EOI'd by the handler), and how close to
// their expiration they arrive. Run from group_time (checks_time.cpp) on
// VP 0, with the reference TSC page that group enabled. Waits are bounded in
// TSC ticks.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

namespace msr = tlfs::msr;
namespace cfg = tlfs::stimer_config;

constexpr uint8_t kVecDirect = kIrqBase + 4;   // 0x54
constexpr uint8_t kVecDirect2 = kIrqBase + 5;  // 0x55

uint64_t stimer_config(uint32_t n) {
  return msr::kStimer0Config + 2 * n;
}
uint64_t stimer_count(uint32_t n) {
  return msr::kStimer0Count + 2 * n;
}
constexpr uint64_t kMessageConfig = cfg::kEnable | (uint64_t{kSintMsg} << cfg::kSintShift);
uint64_t direct_config(uint8_t vector) {
  return cfg::kEnable | cfg::kDirectMode | (uint64_t{vector} << cfg::kVectorShift);
}

struct Expiry {
  bool arrived;
  uint32_t type, size, index;
  uint64_t expiration, delivery;
  uint64_t seen;  // reference time the guest's handler ran (its TSC through the page)
};

// Reference time at a TSC value of this CPU, through the page the group
// enabled (TIME_REF_COUNT now when there is none).
uint64_t time_at_tsc(uint64_t tsc) {
  const auto* p = reinterpret_cast<const volatile tlfs::ReferenceTscPage*>(env.tsc_page);
  if (p == nullptr || p->sequence == 0) return ref_now();
  return static_cast<uint64_t>((static_cast<unsigned __int128>(tsc) * p->scale) >> 64) +
         static_cast<uint64_t>(p->offset);
}

// Waits for one more SINT3 interrupt and reads the slot (not freed).
Expiry wait_timer_message(uint32_t c0, uint64_t units) {
  Expiry e{};
  const uint64_t t0 = ref_now();
  sti();
  while (irq_count(kVecMsg) == c0 && ref_now() - t0 < units) cpu_pause();
  cli();
  e.arrived = irq_count(kVecMsg) > c0;
  e.seen = e.arrived ? time_at_tsc(irq_tsc_on(0, kVecMsg)) : ref_now();
  volatile tlfs::Message* m = sim_slot(kSintMsg);
  e.type = m->message_type;
  e.size = m->payload_size;
  tlfs::TimerMessagePayload pl;
  memcpy(&pl, const_cast<const uint8_t*>(m->payload), sizeof(pl));
  e.index = pl.timer_index;
  e.expiration = pl.expiration_time;
  e.delivery = pl.delivery_time;
  return e;
}

bool slot_free() {
  return sim_slot(kSintMsg)->message_type == tlfs::kMessageTypeNone;
}

void timer_message_checks() {
  clear_slot_and_eom(kSintMsg, true);
  // One-shot, message mode: STIMER0 at now + 1 ms.
  {
    const uint32_t c0 = irq_count(kVecMsg);
    const uint64_t due = ref_now() + 10'000;
    const Fault f1 = wrmsr(stimer_config(0), kMessageConfig);
    const Fault f2 = wrmsr(stimer_count(0), due);
    const Expiry e = wait_timer_message(c0, 2'000'000);
    check_hv("time-stimer-oneshot-message",
             !f1.faulted && !f2.faulted && e.arrived && e.type == tlfs::kMessageTypeTimerExpired &&
                 e.size == sizeof(tlfs::TimerMessagePayload) && e.index == 0 &&
                 e.expiration == due && e.delivery >= due && e.seen >= due,
             "%s; slot type 0x%x size %u timer %u, expiration %lu (due %lu), delivery %lu",
             e.arrived ? "interrupt" : "no interrupt within 200 ms", e.type, e.size, e.index,
             e.expiration, due, e.delivery);
    note("time: one-shot due %lu: message written at +%lu, handler ran at +%lu (100 ns units)", due,
         e.delivery - due, e.seen - due);
    clear_slot_and_eom(kSintMsg, true);
    const uint32_t c1 = irq_count(kVecMsg);
    spin_units(20'000);
    const MsrResult cfg0 = rdmsr(stimer_config(0));
    check_hv("time-stimer-oneshot-fires-once-then-disabled",
             irq_count(kVecMsg) == c1 && (cfg0.value & cfg::kEnable) == 0,
             "%u more interrupts in 2 ms; CONFIG now 0x%lx (enable must be clear)",
             irq_count(kVecMsg) - c1, cfg0.value);
  }
  // Periodic, message mode: STIMER1 every 500 us; five expirations on the grid.
  {
    const uint64_t period = 5'000;
    const uint64_t start = ref_now();
    wrmsr(stimer_config(1), kMessageConfig | cfg::kPeriodic);
    wrmsr(stimer_count(1), period);
    uint64_t exp[5] = {};
    bool ok = true;
    char why[160] = "";
    for (int i = 0; i < 5 && ok; ++i) {
      const Expiry e = wait_timer_message(irq_count(kVecMsg), 20 * period);
      ok = e.arrived && e.type == tlfs::kMessageTypeTimerExpired && e.index == 1;
      exp[i] = e.expiration;
      if (!ok)
        microhv::format(why, sizeof(why), "expiration %d: %s, type 0x%x timer %u", i + 1,
                        e.arrived ? "wrong message" : "no interrupt", e.type, e.index);
      clear_slot_and_eom(kSintMsg, true);
    }
    for (int i = 1; i < 5 && ok; ++i) {
      const uint64_t d = exp[i] - exp[i - 1];
      if (d == 0 || d % period != 0) {
        ok = false;
        microhv::format(why, sizeof(why), "expirations %lu and %lu are not whole periods apart",
                        exp[i - 1], exp[i]);
      }
    }
    check_hv("time-stimer-periodic-message", ok && exp[0] >= start + period, "%s", why);
    // Stop: CONFIG 0, no more expirations in three periods. An expiration
    // just before the stop may still be in the slot with its interrupt
    // pending (IF was 0): take it first.
    wrmsr(stimer_config(1), 0);
    wait_irq(kVecMsg, irq_count(kVecMsg) + 1, kSpinQuiet / 10);
    clear_slot_and_eom(kSintMsg, true);
    const uint32_t c1 = irq_count(kVecMsg);
    spin_units(3 * period);
    check_hv("time-stimer-stop", irq_count(kVecMsg) == c1 && slot_free(),
             "%u interrupts after CONFIG 0", irq_count(kVecMsg) - c1);
  }
  // Busy slot: the first message stays unread; the next expiration waits
  // with MessagePending set and arrives on EOM.
  {
    const uint64_t period = 3'000;
    wrmsr(stimer_config(2), kMessageConfig | cfg::kPeriodic);
    wrmsr(stimer_count(2), period);
    const Expiry first = wait_timer_message(irq_count(kVecMsg), 20 * period);
    const uint32_t c1 = irq_count(kVecMsg);
    spin_units(4 * period);
    volatile tlfs::Message* m = sim_slot(kSintMsg);
    const bool pending = (m->message_flags & tlfs::kMessageFlagPending) != 0;
    const bool kept = m->message_type == tlfs::kMessageTypeTimerExpired;
    check_hv("time-stimer-busy-slot-message-pending",
             first.arrived && irq_count(kVecMsg) == c1 && pending && kept,
             "first %s; %u more interrupts while the slot was busy (expected 0); MessagePending %u",
             first.arrived ? "arrived" : "missing", irq_count(kVecMsg) - c1, pending ? 1u : 0u);
    // Guest protocol: free the slot, MessagePending was set -> EOM.
    const uint64_t freed = ref_now();
    m->message_type = tlfs::kMessageTypeNone;
    asm volatile("mfence" ::: "memory");
    wrmsr(msr::kEom, 0);
    const Expiry next = wait_timer_message(c1, 20 * period);
    check_hv("time-stimer-busy-slot-eom-delivers",
             next.arrived && next.type == tlfs::kMessageTypeTimerExpired && next.index == 2 &&
                 next.expiration > first.expiration && next.delivery >= freed,
             "after EOM: %s, expiration %lu (first %lu), delivery %lu (slot freed at %lu)",
             next.arrived ? "interrupt" : "no interrupt", next.expiration, first.expiration,
             next.delivery, freed);
    wrmsr(stimer_config(2), 0);
    clear_slot_and_eom(kSintMsg, true);
  }
}

void timer_direct_checks() {
  set_non_auto_eoi(kVecDirect, true);
  set_non_auto_eoi(kVecDirect2, true);
  // One-shot, direct mode, the way Linux programs it (auto-enable, COUNT writes).
  {
    const uint32_t c0 = irq_count(kVecDirect);
    const Fault f1 = wrmsr(stimer_config(3), direct_config(kVecDirect) | cfg::kAutoEnable);
    const uint64_t due = ref_now() + 5'000;
    const Fault f2 = wrmsr(stimer_count(3), due);
    wait_irq(kVecDirect, c0 + 1, kSpinExpect);
    const uint64_t seen = time_at_tsc(irq_tsc_on(0, kVecDirect));
    check_hv(
        "time-stimer-direct-oneshot",
        !f1.faulted && !f2.faulted && irq_count(kVecDirect) == c0 + 1 && slot_free() && seen >= due,
        "CONFIG %s, COUNT %s; %u interrupts on 0x%x (expected 1), SINT3 slot %s", fault_text(f1),
        fault_text(f2), irq_count(kVecDirect) - c0, kVecDirect,
        slot_free() ? "empty" : "written (direct mode writes no message)");
    // Re-armed by a COUNT write (auto-enable), then stopped by COUNT 0.
    const uint32_t c1 = irq_count(kVecDirect);
    wrmsr(stimer_count(3), ref_now() + 2'000);
    wait_irq(kVecDirect, c1 + 1, kSpinExpect);
    const bool rearmed = irq_count(kVecDirect) == c1 + 1;
    wrmsr(stimer_count(3), ref_now() + 50'000);
    wrmsr(stimer_count(3), 0);
    const uint32_t c2 = irq_count(kVecDirect);
    spin_units(80'000);
    check_hv("time-stimer-direct-restart-and-count-zero-stops",
             rearmed && irq_count(kVecDirect) == c2 &&
                 (rdmsr(stimer_config(3)).value & cfg::kEnable) == 0,
             "re-armed by COUNT: %s; %u interrupts after COUNT 0 (expected 0)",
             rearmed ? "fired" : "did not fire", irq_count(kVecDirect) - c2);
    wrmsr(stimer_config(3), 0);
  }
  // Periodic, direct mode, waited for halted: the host timer wakes HLT.
  {
    const uint32_t c0 = irq_count(kVecDirect2);
    wrmsr(stimer_config(0), direct_config(kVecDirect2) | cfg::kPeriodic);
    wrmsr(stimer_count(0), 2'000);
    const uint64_t t0 = rdtsc(), limit = tsc_hz();
    uint32_t halts = 0;
    while (irq_count(kVecDirect2) < c0 + 3 && rdtsc() - t0 < limit) {
      asm volatile("sti; hlt; cli" ::: "memory");
      ++halts;
    }
    wrmsr(stimer_config(0), 0);
    check_hv("time-stimer-direct-periodic-wakes-halted-vp", irq_count(kVecDirect2) >= c0 + 3,
             "%u interrupts on 0x%x in %u halts within 1 s (expected 3)",
             irq_count(kVecDirect2) - c0, kVecDirect2, halts);
  }
}

void timer_msr_checks() {
  const Fault r1 = wrmsr(stimer_config(0), 1ull << 13);
  const Fault r2 = wrmsr(stimer_config(0), direct_config(15));
  check_hv("time-stimer-config-gp-rules",
           r1.faulted && r1.vector == kGp && r2.faulted && r2.vector == kGp,
           "reserved bit 13: %s, direct vector 15: %s (expected #GP for both)", fault_text(r1),
           fault_text(r2));
  const Fault s0 = wrmsr(stimer_config(1), cfg::kEnable);  // message mode, SINT 0
  const MsrResult back = rdmsr(stimer_config(1));
  check_hv("time-stimer-sint0-stays-disabled", !s0.faulted && (back.value & cfg::kEnable) == 0,
           "CONFIG enable with SINTx 0: %s, reads 0x%lx (enable must stay clear)", fault_text(s0),
           back.value);
  const Fault cw = wrmsr(stimer_count(2), 0x123456789ull);
  const MsrResult cr = rdmsr(stimer_count(2));
  check_hv("time-stimer-count-roundtrip", !cw.faulted && cr.value == 0x123456789ull,
           "COUNT 0x123456789 reads 0x%lx (%s)", cr.value, fault_text(cw));
  wrmsr(stimer_count(2), 0);
  wrmsr(stimer_config(1), 0);
}

// Requested vs delivered: one-shots at now + 50 us, the message's own times
// and the guest's TIME_REF_COUNT right after the interrupt.
void timer_accuracy() {
  constexpr int kRuns = 16;
  uint64_t write_lag[kRuns], seen_lag[kRuns];
  int n = 0;
  for (int i = 0; i < kRuns; ++i) {
    const uint32_t c0 = irq_count(kVecMsg);
    const uint64_t due = ref_now() + 500;
    // COUNT first: CONFIG with enable starts the timer from the COUNT it holds.
    wrmsr(stimer_config(0), 0);
    wrmsr(stimer_count(0), due);
    wrmsr(stimer_config(0), kMessageConfig);
    const Expiry e = wait_timer_message(c0, 1'000'000);
    clear_slot_and_eom(kSintMsg, true);
    if (!e.arrived || e.expiration != due || e.delivery < due) continue;
    write_lag[n] = e.delivery - due;
    seen_lag[n] = e.seen - due;
    ++n;
  }
  wrmsr(stimer_config(0), 0);
  uint64_t wmin = ~0ull, wmax = 0, smin = ~0ull, smax = 0, wsum = 0, ssum = 0;
  for (int i = 0; i < n; ++i) {
    wmin = write_lag[i] < wmin ? write_lag[i] : wmin;
    wmax = write_lag[i] > wmax ? write_lag[i] : wmax;
    smin = seen_lag[i] < smin ? seen_lag[i] : smin;
    smax = seen_lag[i] > smax ? seen_lag[i] : smax;
    wsum += write_lag[i];
    ssum += seen_lag[i];
  }
  check_hv("time-stimer-accuracy-all-delivered-not-early", n == kRuns,
           "%d of %d one-shots at now + 50 us arrived no earlier than due", n, kRuns);
  if (n > 0) {
    note(
        "time: stimer accuracy over %d one-shots at now + 50 us (100 ns units): message written "
        "min %lu mean %lu max %lu after due; the guest's handler ran min %lu mean %lu max %lu "
        "after due",
        n, wmin, wsum / n, wmax, smin, ssum / n, smax);
  }
}

}  // namespace

void timer_checks() {
  timer_msr_checks();
  timer_message_checks();
  timer_direct_checks();
  timer_accuracy();
}

}  // namespace guest
