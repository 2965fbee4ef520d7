// Group "time": the reference TSC page (TLFS 12.7), TIME_REF_COUNT, the
// frequency MSRs, synthetic timers (TLFS 12.3) in message and direct mode,
// and the crash MSRs, from the guest's side on VP 0. The checks on VP 1 run
// from the smp group (checks_time_vp1.cpp). Timers use SINT3 (vector 0x50,
// AutoEOI) for messages and vectors 0x54/0x55 (EOI'd by the handler) in
// direct mode. Waits are bounded in TSC ticks.
//
// It leaves the reference TSC page enabled at env.time_pages (env.tsc_page)
// for VP 1's checks.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

namespace msr = tlfs::msr;
namespace cfg = tlfs::stimer_config;
namespace c = tlfs::cpuid;

constexpr uint8_t kGp = 13;
constexpr uint8_t kVecDirect = kIrqBase + 4;   // 0x54
constexpr uint8_t kVecDirect2 = kIrqBase + 5;  // 0x55
constexpr uint8_t kRamFill = 0x5A;

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

Fault guarded_write64(uint64_t* where, uint64_t value) {
  static uint64_t* g_where;
  static uint64_t g_value;
  g_where = where;
  g_value = value;
  Fault f;
  run_guarded([](void*) { *static_cast<volatile uint64_t*>(g_where) = g_value; }, nullptr, &f);
  return f;
}

void outl(uint16_t port, uint32_t value) {
  asm volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

uint64_t ref_now() {
  return rdmsr(msr::kTimeRefCount).value;
}

// Spins with interrupts on until `units` of reference time have passed.
void spin_units(uint64_t units) {
  const uint64_t t0 = ref_now();
  sti();
  while (ref_now() - t0 < units) cpu_pause();
  cli();
}

bool page_all(const uint8_t* p, uint8_t v) {
  for (int i = 0; i < 4096; ++i) {
    if (p[i] != v) return false;
  }
  return true;
}

const char* fault_text(const Fault& f) {
  return f.faulted ? vector_name(f.vector) : "no fault";
}

void cpuid_checks() {
  const Cpuid f = cpuid(c::kFeaturesLeaf);
  const Cpuid h = cpuid(c::kHintsLeaf);
  const uint32_t eax_want = c::kAccessPartitionRefCounter | c::kAccessSynicTimers |
                            c::kAccessPartitionReferenceTsc | c::kAccessFrequencyMsrs;
  const uint32_t edx_want =
      c::kFeatureFrequencyMsrs | c::kFeatureGuestCrashMsrs | c::kFeatureStimerDirectMode;
  check_hv("time-cpuid-features", (f.eax & eax_want) == eax_want && (f.edx & edx_want) == edx_want,
           "0x40000003 EAX 0x%x EDX 0x%x: expected EAX bits 1,3,9,11 and EDX bits 8,10,19", f.eax,
           f.edx);
  check_hv("time-cpuid-relaxed-timing-hint", (h.eax & c::kHintRelaxedTiming) != 0,
           "0x40000004 EAX 0x%x: expected bit 5 (relaxed timing)", h.eax);
  // Invariant TSC (EAX bit 15) is advertised only when microhv knows every
  // CPU runs one TSC; its MSR exists exactly when the bit is set.
  const MsrResult inv = rdmsr(msr::kTscInvariantControl);
  const bool bit = (f.eax & c::kAccessTscInvariant) != 0;
  check_hv("time-invariant-tsc-bit-matches-its-msr",
           bit ? !inv.fault.faulted : (inv.fault.faulted && inv.fault.vector == kGp),
           "EAX bit 15 = %u, rdmsr TSC_INVARIANT_CONTROL: %s", bit ? 1u : 0u,
           fault_text(inv.fault));
  note("time: invariant TSC %s (0x40000003 EAX bit 15)", bit ? "advertised" : "not advertised");
}

void msr_checks() {
  const MsrResult tsc = rdmsr(msr::kTscFrequency);
  const MsrResult apic = rdmsr(msr::kApicFrequency);
  const uint64_t measured = tsc_hz();
  const uint64_t diff = tsc.value > measured ? tsc.value - measured : measured - tsc.value;
  check_hv("time-tsc-frequency-msr", !tsc.fault.faulted && diff * 50 <= measured,
           "TSC_FREQUENCY %lu Hz (%s), measured here against Stall %lu Hz: expected within 2%%",
           tsc.value, fault_text(tsc.fault), measured);
  check_hv("time-apic-frequency-msr", !apic.fault.faulted && apic.value >= 1'000'000,
           "APIC_FREQUENCY %lu Hz (%s): expected a measured rate of at least 1 MHz", apic.value,
           fault_text(apic.fault));
  note("time: TSC_FREQUENCY %lu Hz, APIC_FREQUENCY %lu Hz", tsc.value, apic.value);
  const uint32_t read_only[] = {msr::kTimeRefCount, msr::kTscFrequency, msr::kApicFrequency};
  bool all_gp = true;
  uint32_t bad = 0;
  for (uint32_t m : read_only) {
    const Fault f = wrmsr(m, 1);
    if (!(f.faulted && f.vector == kGp)) {
      all_gp = false;
      bad = m;
    }
  }
  check_hv("time-read-only-msrs-gp-on-write", all_gp,
           "wrmsr 0x%x did not raise #GP (TIME_REF_COUNT and the frequencies are read-only)", bad);
  const uint64_t a = ref_now();
  spin_units(100);
  const uint64_t b = ref_now();
  check_hv("time-ref-count-advances", b >= a + 100 && b < a + 100'000'000,
           "TIME_REF_COUNT %lu then %lu after 10 us", a, b);
}

// ------------------------------------------------------------------ TSC page
void tsc_page_checks() {
  uint8_t* page = env.time_pages;
  uint8_t* other = env.time_pages + 4096;
  memset(page, kRamFill, 4096);
  memset(other, kRamFill, 4096);
  const uint64_t gpa = reinterpret_cast<uint64_t>(page);
  const Fault en = wrmsr(msr::kReferenceTsc, gpa | 1);
  const MsrResult back = rdmsr(msr::kReferenceTsc);
  auto* p = reinterpret_cast<volatile tlfs::ReferenceTscPage*>(page);
  check_hv("time-tsc-page-enable",
           !en.faulted && back.value == (gpa | 1) && p->sequence != 0 && p->scale != 0 &&
               !page_all(page, kRamFill),
           "wrmsr REFERENCE_TSC=0x%lx: %s, reads 0x%lx; page sequence %u scale 0x%lx", gpa | 1,
           fault_text(en), back.value, p->sequence, p->scale);

  // The TLFS 12.7.3 algorithm against TIME_REF_COUNT read before and after.
  uint64_t last = 0, worst_early = 0, worst_late = 0;
  bool ok = true, monotonic = true;
  char why[200] = "";
  for (int i = 0; i < 200 && ok; ++i) {
    const uint64_t m1 = ref_now();
    uint64_t t = 0;
    ok = read_tsc_page(p, &t);
    const uint64_t m2 = ref_now();
    if (!ok) {
      microhv::format(why, sizeof(why), "sequence 0 at iteration %d", i);
    } else if (t < m1 || t > m2) {
      ok = false;
      microhv::format(why, sizeof(why), "page time %lu outside [%lu, %lu] (MSR before, after)", t,
                      m1, m2);
    }
    if (t < last) monotonic = false;
    last = t;
    if (t >= m1 && t - m1 > worst_early) worst_early = t - m1;
    if (m2 >= t && m2 - t > worst_late) worst_late = m2 - t;
  }
  check_hv("time-tsc-page-matches-time-ref-count", ok && monotonic, "%s%s", why,
           monotonic ? "" : "; page time went backwards");

  Fault w = guarded_write64(const_cast<uint64_t*>(&p->scale), 0);
  check_hv("time-tsc-page-write-protected", w.faulted && w.vector == kGp && p->scale != 0,
           "write to the page: %s (expected #GP), scale now 0x%lx", fault_text(w), p->scale);

  const uint64_t gpa2 = reinterpret_cast<uint64_t>(other);
  const Fault mv = wrmsr(msr::kReferenceTsc, gpa2 | 1);
  auto* q = reinterpret_cast<volatile tlfs::ReferenceTscPage*>(other);
  uint64_t t2 = 0;
  const uint64_t m1 = ref_now();
  const bool valid = read_tsc_page(q, &t2);
  const uint64_t m2 = ref_now();
  check_hv("time-tsc-page-move",
           !mv.faulted && page_all(page, kRamFill) && valid && t2 >= m1 && t2 <= m2,
           "moved to 0x%lx (%s): old page RAM %s, new page %s, time %lu in [%lu, %lu]", gpa2,
           fault_text(mv), page_all(page, kRamFill) ? "intact" : "changed",
           valid ? "valid" : "sequence 0", t2, m1, m2);

  const Fault off = wrmsr(msr::kReferenceTsc, gpa2);
  check_hv("time-tsc-page-disable", !off.faulted && page_all(other, kRamFill),
           "disabled (%s): the RAM underneath is %s", fault_text(off),
           page_all(other, kRamFill) ? "back" : "still covered");

  // Back on at the first page, for the rest of the suite and VP 1.
  wrmsr(msr::kReferenceTsc, gpa | 1);
  env.tsc_page = page;

  // With `testdev = on` the test device can force sequence 0 (guests then
  // read TIME_REF_COUNT, TLFS 12.7.2) and restore it.
  const uint32_t before = p->sequence;
  outl(0x3000, 0x00100001u);  // control 0x10, "invalid"
  const uint32_t forced = p->sequence;
  outl(0x3000, 0x00100000u);  // valid again
  const uint32_t after = p->sequence;
  uint64_t t3 = 0;
  if (forced == before && after == before) {
    skip("time-tsc-page-sequence-0-then-valid", "port 0x3000 is not microhv's test device here");
  } else {
    check_hv("time-tsc-page-sequence-0-then-valid",
             forced == 0 && after != 0 && after != before && read_tsc_page(p, &t3),
             "sequence %u, forced invalid %u (expected 0), restored %u (expected a new one)",
             before, forced, after);
  }
}

// ------------------------------------------------------------------ timers
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

void crash_msr_checks() {
  const MsrResult ctl = rdmsr(msr::kCrashCtl);
  check_hv("time-crash-ctl-capabilities",
           !ctl.fault.faulted &&
               ctl.value == (tlfs::crash_ctl::kNotify | tlfs::crash_ctl::kCrashMessage),
           "CRASH_CTL reads 0x%lx (%s): expected bits 63 (notify) and 62 (message)", ctl.value,
           fault_text(ctl.fault));
  bool ok = true;
  for (uint32_t i = 0; i < tlfs::kCrashParameterCount; ++i) {
    const uint64_t v = 0xC0FFEE00ull + i;
    ok = ok && !wrmsr(msr::kCrashP0 + i, v).faulted && rdmsr(msr::kCrashP0 + i).value == v;
  }
  check_hv("time-crash-p0-p4-roundtrip", ok, "a CRASH_Pn MSR did not keep its value");
  const Fault r = wrmsr(msr::kCrashCtl, 1);
  const Fault quiet = wrmsr(msr::kCrashCtl, tlfs::crash_ctl::kCrashMessage);  // no notify bit
  check_hv("time-crash-ctl-gp-rules", r.faulted && r.vector == kGp && !quiet.faulted,
           "CRASH_CTL=1: %s (expected #GP); bit 62 alone: %s (expected accepted, no report)",
           fault_text(r), fault_text(quiet));
}

}  // namespace

bool read_tsc_page(const volatile tlfs::ReferenceTscPage* p, uint64_t* time) {
  for (int tries = 0; tries < 100; ++tries) {
    const uint32_t seq = p->sequence;
    if (seq == tlfs::kTscSequenceInvalid) return false;
    asm volatile("" ::: "memory");
    const uint64_t scale = p->scale;
    const int64_t offset = p->offset;
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    const uint64_t tsc = (static_cast<uint64_t>(hi) << 32) | lo;
    asm volatile("" ::: "memory");
    if (p->sequence != seq) continue;
    *time = static_cast<uint64_t>((static_cast<unsigned __int128>(tsc) * scale) >> 64) +
            static_cast<uint64_t>(offset);
    return true;
  }
  return false;
}

void report_crash_at_end() {
  // A text page as Linux's kmsg dump leaves it, then P3 = its GPA, P4 = its
  // size and CRASH_CTL = notify | message (TLFS: guest crash enlightenment).
  char* text = reinterpret_cast<char*>(env.time_pages + 2 * 4096);
  const char message[] =
      "guest suite: crash report test\n"
      "second line with a tab\tand a bell \a (shown as dots)\n"
      "end of report\n";
  memcpy(text, message, sizeof(message) - 1);
  say("guest: NOTE reporting a crash through CRASH_CTL (microhv stops the partition)");
  serial_drain();
  wrmsr(msr::kCrashP0, 0x5555);
  wrmsr(msr::kCrashP0 + 3, reinterpret_cast<uint64_t>(text));
  wrmsr(msr::kCrashP0 + 4, sizeof(message) - 1);
  wrmsr(msr::kCrashCtl, tlfs::crash_ctl::kNotify | tlfs::crash_ctl::kCrashMessage);
  say("guest: FAIL crash-at-end: the partition still runs after CRASH_CTL notify");
}

void group_time() {
  if (!ensure_synic()) {
    fail("time-prerequisite", "%s", fixture_error());
    return;
  }
  cpuid_checks();
  msr_checks();
  tsc_page_checks();
  timer_msr_checks();
  timer_message_checks();
  timer_direct_checks();
  timer_accuracy();
  crash_msr_checks();
}

}  // namespace guest
