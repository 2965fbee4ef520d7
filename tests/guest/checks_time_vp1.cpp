// The time group's checks on VP 1, run from the smp group while VP 1 is in
// its command loop (smp_vp1.hpp): the reference TSC page read on VP 1
// against VP 1's TIME_REF_COUNT (the page is partition-wide), and a
// synthetic timer of VP 1 that fires on VP 1 while it halts -- its message
// in VP 1's SIM slot, nothing on VP 0.
#include "tests/guest/smp_vp1.hpp"

namespace guest {
namespace smp {

namespace {

namespace msr = tlfs::msr;

constexpr const char* kPage = "time-vp1-tsc-page-matches-time-ref-count";
constexpr const char* kTimer = "time-vp1-stimer-fires-on-vp1-halted";

}  // namespace

// On VP 1.
void ap_time_command(Box& b, uint32_t seq) {
  if (b.cmd == kCmdTimeSample) {
    const auto* page = reinterpret_cast<const volatile tlfs::ReferenceTscPage*>(b.arg);
    const MsrResult before = rdmsr(msr::kTimeRefCount);
    uint64_t t = 0;
    const bool valid = read_tsc_page(page, &t);
    const MsrResult after = rdmsr(msr::kTimeRefCount);
    b.res[0] = before.value;
    b.res[1] = t;
    b.res[2] = after.value;
    b.ok = valid && !before.fault.faulted && !after.fault.faulted;
    if (!b.ok)
      microhv::format(b.why, sizeof(b.why), "on VP 1: %s",
                      valid ? "rdmsr TIME_REF_COUNT faulted" : "page sequence 0");
    return;
  }
  // kCmdStimerHalt: STIMER0 at now + ticks (reference time units), then halt.
  const MsrResult now = rdmsr(msr::kTimeRefCount);
  const Fault f1 = wrmsr(msr::kStimer0Config, b.arg);
  const Fault f2 = wrmsr(msr::kStimer0Count, now.value + b.ticks);
  b.res[0] = now.value + b.ticks;
  if (f1.faulted || f2.faulted) {
    microhv::format(b.why, sizeof(b.why), "on VP 1: STIMER0 CONFIG %s, COUNT %s",
                    f1.faulted ? vector_name(f1.vector) : "ok",
                    f2.faulted ? vector_name(f2.vector) : "ok");
    b.ok = false;
    return;
  }
  b.ticks = g_expect;  // the wait below is bounded by the BSP's abort
  ap_wait(b, seq);
  b.res[1] = irq_tsc_on(kAp, b.vector);  // TSC when VP 1's handler ran
  wrmsr(msr::kStimer0Config, 0);
}

// On VP 0.
void time_checks_on_vp1() {
  if (g_ap_lost) {
    fail(kPage, "%s", g_lost_why);
    fail(kTimer, "%s", g_lost_why);
    return;
  }
  if (env.tsc_page == nullptr) {
    skip(kPage, "the time group did not run (it enables the reference TSC page)");
  } else {
    g_box.arg = reinterpret_cast<uint64_t>(env.tsc_page);
    bool ok = true;
    char why[200] = "";
    for (int i = 0; i < 20 && ok; ++i) {
      ok = run(kCmdTimeSample, "reading the TSC page on VP 1") && g_box.ok &&
           g_box.res[0] <= g_box.res[1] && g_box.res[1] <= g_box.res[2];
      if (!ok) {
        microhv::format(why, sizeof(why), "%s; TIME_REF_COUNT %lu, page %lu, TIME_REF_COUNT %lu",
                        g_ap_lost ? g_lost_why : g_box.why, g_box.res[0], g_box.res[1],
                        g_box.res[2]);
      }
    }
    check(kPage, ok, "%s", why);
  }
  // VP 1's STIMER0, message mode on its SINT3, due in 2 ms; VP 1 halts.
  // Its promptness is measured through the reference TSC page.
  if (env.tsc_page == nullptr) {
    skip(kTimer, "the time group did not run (it enables the reference TSC page)");
    return;
  }
  clear_ap_slot();
  clear_bsp_slot();
  const uint32_t ap0 = irq_count_on(kAp, kVecMsg), bsp0 = irq_count(kVecMsg);
  g_box.arg =
      tlfs::stimer_config::kEnable | (uint64_t{kSintMsg} << tlfs::stimer_config::kSintShift);
  uint32_t seq = 0;
  const bool began =
      begin_wait(&seq, kVecMsg, ap0 + 1, 20'000, g_quiet, true, static_cast<Cmd>(kCmdStimerHalt));
  const bool done = began && end_wait(seq, g_expect, g_quiet);
  volatile tlfs::Message* m = ap_slot(kSintMsg);
  tlfs::TimerMessagePayload p{};
  memcpy(&p, const_cast<const uint8_t*>(m->payload), sizeof(p));
  const bool in_vp1 = m->message_type == tlfs::kMessageTypeTimerExpired && p.timer_index == 0 &&
                      p.expiration_time == g_box.res[0];
  // VP 1 halts with nothing else to wake it (the BSP's wake-up IPI comes
  // only after 2 s): its handler must run soon after the due time, which
  // only the host timer counting in HLT can do. The TSC is the same on both
  // CPUs here, so the page (read on VP 0) converts VP 1's TSC.
  const auto* page = reinterpret_cast<const volatile tlfs::ReferenceTscPage*>(env.tsc_page);
  uint64_t ran = 0;
  if (page != nullptr && page->sequence != 0) {
    ran =
        static_cast<uint64_t>((static_cast<unsigned __int128>(g_box.res[1]) * page->scale) >> 64) +
        static_cast<uint64_t>(page->offset);
  }
  const uint64_t due = g_box.res[0];
  const bool prompt = ran >= due && ran - due <= 10'000;  // within 1 ms
  check(kTimer,
        done && g_box.ok && in_vp1 && prompt && irq_count_on(kAp, kVecMsg) == ap0 + 1 &&
            irq_count(kVecMsg) == bsp0 && bsp_slot_empty(),
        "%s%s; VP 1 slot type 0x%x expiration %lu (due %lu); VP 1's handler ran at %lu (expected "
        "within 1 ms of due, while halted); interrupts: VP 1 %u (expected 1), VP 0 %u (expected "
        "0); %u wake-ups from hlt",
        done ? "" : "VP 1 did not finish: ", done ? g_box.why : g_lost_why, m->message_type,
        p.expiration_time, due, ran, irq_count_on(kAp, kVecMsg) - ap0, irq_count(kVecMsg) - bsp0,
        g_box.wakeups);
  if (ran >= due) {
    note(
        "time: VP 1's timer, due %lu while VP 1 halted: handler ran %lu units (100 ns) later, %u "
        "wake-up(s)",
        due, ran - due, g_box.wakeups);
  }
  clear_ap_slot();
}

}  // namespace smp
}  // namespace guest
