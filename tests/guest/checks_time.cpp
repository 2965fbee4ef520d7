// Group "time": the reference TSC page (TLFS 12.7), TIME_REF_COUNT, the
// frequency MSRs, synthetic timers (TLFS 12.3, checks_timers.cpp) and the
// crash MSRs, from the guest's side on VP 0. The checks on VP 1 run from the
// smp group (checks_time_vp1.cpp). Waits are bounded in TSC ticks.
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

constexpr uint8_t kRamFill = 0x5A;

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

bool page_all(const uint8_t* p, uint8_t v) {
  for (int i = 0; i < 4096; ++i) {
    if (p[i] != v) return false;
  }
  return true;
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

uint64_t ref_now() {
  return rdmsr(msr::kTimeRefCount).value;
}

void spin_units(uint64_t units) {
  const uint64_t t0 = ref_now();
  sti();
  while (ref_now() - t0 < units) cpu_pause();
  cli();
}

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
  timer_checks();
  crash_msr_checks();
}

}  // namespace guest
