// The load test's report (--load): per-CPU figures and the checks, from
// what the storm (load_storm.cpp) counted. Set-up: load.cpp.
#include "tests/guest/load.hpp"

namespace guest::load {

uint32_t g_passed, g_failed;
char g_failed_names[300];

void result(const char* name, bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void result(const char* name, bool ok, const char* fmt, ...) {
  if (ok) {
    ++g_passed;
    sayf("PASS %s", name);
    return;
  }
  ++g_failed;
  char detail[320];
  va_list args;
  va_start(args, fmt);
  microhv::format(detail, sizeof(detail), fmt, args);
  va_end(args);
  sayf("FAIL %s: %s", name, detail);
  size_t n = 0;
  while (g_failed_names[n] != '\0') ++n;
  microhv::format(g_failed_names + n, sizeof(g_failed_names) - n, "%s%s", n != 0 ? " " : "", name);
}

[[noreturn]] void finish() {
  if (g_failed == 0) {
    sayf("PASS");
  } else {
    sayf("FAIL %s", g_failed_names);
  }
  char buf[64];
  microhv::format(buf, sizeof(buf), "%u passed, %u failed", g_passed, g_failed);
  say(buf);
  shutdown();
}

namespace {

void report_cpu(unsigned c) {
  const Cpu& me = g_cpu[c];
  uint32_t sent = 0, received = 0, signals = 0, flags = 0;
  for (unsigned o = 0; o < g_n; ++o) {
    sent += g_pair[c][o].accepted;
    signals += g_pair[c][o].signals;
    received += g_pair[o][c].received;
    flags += g_pair[o][c].flags_seen;
  }
  sayf(
      "VP %u: posted %u (INSUFFICIENT_BUFFERS %u during stalls, %u outside), received %u; "
      "signalled %u, flags seen %u, SINT4 interrupts %u (%u found no flag); SINT3 interrupts "
      "%u (%u while stalled, %u with an empty slot)",
      c, sent, me.ib_stalled, me.ib_outside, received, signals, flags,
      irq_count_on(c, kVecEvt) - me.irq_base_evt, me.empty_evt_irqs,
      irq_count_on(c, kVecMsg) - me.irq_base_msg, me.ignored_irqs, me.spurious_irqs);
  auto since_go = [](uint64_t t) { return t > g_go_tsc ? t - g_go_tsc : uint64_t{0}; };
  sayf(
      "VP %u: done posting at +%lu ticks, everything for it arrived at +%lu; post to copy-out "
      "%lu ticks on average, %lu at most; %lu PostMessage calls, %lu ticks each, %lu "
      "SignalEvent calls, %lu ticks each (interrupts taken meanwhile included)",
      c, since_go(me.send_done_tsc), since_go(me.delivered_tsc),
      received != 0 ? me.latency_sum / received : uint64_t{0}, me.latency_max, me.posts,
      me.posts != 0 ? me.post_ticks / me.posts : uint64_t{0}, me.signals,
      me.signals != 0 ? me.signal_ticks / me.signals : uint64_t{0});
  if (me.stall_state == 0) {
    sayf("VP %u: never stalled", c);
  } else {
    sayf(
        "VP %u: stalled at %u messages received (+%lu ticks) for %lu ticks, backlog drained %lu "
        "ticks later; senders got INSUFFICIENT_BUFFERS %u times from it meanwhile%s",
        c, me.stall_arrived, since_go(me.stall_start), me.stall_resume - me.stall_start,
        me.stall_state == 3 ? me.stall_end - me.stall_resume : uint64_t{0}, me.stall_ib,
        me.stall_state == 3 ? "" : " (the stall did not end)");
  }
}

}  // namespace

[[noreturn]] void report_and_finish(uint64_t go) {
  uint64_t end = 0;
  for (unsigned c = 0; c < g_n; ++c) {
    if (g_cpu[c].delivered_tsc > end) end = g_cpu[c].delivered_tsc;
  }
  const uint64_t ticks = end > go ? end - go : 1;
  set_irq_hook(nullptr);

  // Report.
  uint64_t delivered = 0, accepted = 0;
  uint32_t ib_stalled = 0, ib_outside = 0, ib_early = 0, bound = 0, other = 0, order = 0, bad = 0,
           leftover = 0, slots = 0;
  bool quota_ok = true, counts_ok = true, all_finished = true;
  char counts_detail[200] = "", events_detail[200] = "", quota_detail[200] = "";
  bool events_ok = true;
  for (unsigned c = 0; c < g_n; ++c) {
    const Cpu& me = g_cpu[c];
    report_cpu(c);
    ib_stalled += me.ib_stalled;
    ib_outside += me.ib_outside;
    ib_early += me.ib_early;
    bound += me.bound_exceeded;
    other += me.other_status;
    order += me.order_errors;
    bad += me.bad_messages;
    leftover += me.leftover_flags;
    slots += me.leftover_slot;
    all_finished = all_finished && ld(me.finished) != 0;
    uint32_t interrupts = irq_count_on(c, kVecEvt) - me.irq_base_evt, transitions = 0;
    uint64_t signals = 0;
    for (unsigned o = 0; o < g_n; ++o) {
      if (!pair_used(c, o)) continue;
      const Pair& out = g_pair[c][o];
      const Pair& in = g_pair[o][c];
      delivered += in.received;
      accepted += in.accepted;
      if (out.accepted != out.quota_msgs || out.signals != out.quota_evts) {
        quota_ok = false;
        if (quota_detail[0] == '\0') {
          microhv::format(quota_detail, sizeof(quota_detail),
                          "VP %u -> VP %u: %u of %u messages and %u of %u SignalEvents accepted", c,
                          o, out.accepted, out.quota_msgs, out.signals, out.quota_evts);
        }
      }
      if (in.received != in.accepted) {
        counts_ok = false;
        if (counts_detail[0] == '\0') {
          microhv::format(counts_detail, sizeof(counts_detail),
                          "VP %u -> VP %u: %u accepted, %u arrived", o, c, in.accepted,
                          in.received);
        }
      }
      transitions += in.flags_seen;
      signals += in.signals;
      if (in.flags_seen > in.signals) {
        events_ok = false;
        if (events_detail[0] == '\0') {
          microhv::format(events_detail, sizeof(events_detail),
                          "VP %u -> VP %u: %u flags seen from %u SignalEvents", o, c, in.flags_seen,
                          in.signals);
        }
      }
    }
    if (interrupts > transitions || (transitions > 0 && interrupts == 0)) {
      events_ok = false;
      if (events_detail[0] == '\0') {
        microhv::format(events_detail, sizeof(events_detail),
                        "VP %u: %u SINT4 interrupts for %u flag transitions (expected 1..%u)", c,
                        interrupts, transitions, transitions);
      }
    }
    sayf(
        "events on VP %u: %lu SignalEvents accepted, %u 0->1 transitions (flags found set), %u "
        "interrupts",
        c, signals, transitions, interrupts);
  }
  const uint64_t rate = delivered * 1'000'000 / ticks;
  const uint64_t rate_frac = (delivered * 100'000'000 / ticks) % 100;
  sayf("%lu messages delivered in %lu TSC ticks = %lu.%02lu per million ticks", delivered, ticks,
       rate, rate_frac);
  sayf("INSUFFICIENT_BUFFERS %u (%u during stalls, %u outside)", ib_stalled + ib_outside,
       ib_stalled, ib_outside);

  char why[240];
  if (g_timed_out || g_hung || !all_finished) {
    char slots_text[160] = "";
    size_t n = 0;
    for (unsigned c = 0; c < g_n && n + 40 < sizeof(slots_text); ++c) {
      volatile tlfs::Message* m = slot_of(c);
      microhv::format(slots_text + n, sizeof(slots_text) - n, "%sVP %u slot type 0x%x flags %u",
                      c == 0 ? "" : ", ", c, static_cast<unsigned>(m->message_type),
                      static_cast<unsigned>(m->message_flags));
      while (slots_text[n] != '\0') ++n;
    }
    microhv::format(why, sizeof(why), "%s; %s",
                    g_timed_out ? "global time limit reached"
                    : g_hung    ? "no progress for 10 s"
                                : "a CPU did not finish",
                    slots_text);
    for (unsigned c = 1; c < g_n; ++c) {
      const ApFault& f = ap_fault(c);
      if (f.faulted) {
        microhv::format(why, sizeof(why), "VP %u took %s (error 0x%lx) at rip 0x%lx cr2 0x%lx", c,
                        vector_name(static_cast<uint8_t>(f.vector)), f.error, f.rip, f.cr2);
      }
    }
  }
  result("load-nothing-hung", !g_timed_out && !g_hung && all_finished, "%s", why);
  result("load-every-message-posted", quota_ok && other == 0, "%s%s%s", quota_detail,
         quota_detail[0] != '\0' && other != 0 ? "; " : "",
         other != 0 ? g_cpu[0].first_status[0] != '\0' ? g_cpu[0].first_status
                                                       : "unexpected "
                                                         "status"
                    : "");
  {
    const char* first = "";
    for (unsigned c = 0; c < g_n && first[0] == '\0'; ++c) first = g_cpu[c].first_error;
    result("load-messages-exactly-once-in-order", counts_ok && order == 0 && bad == 0 && slots == 0,
           "%u order errors, %u unplaceable messages, %u slots not empty at the end; %s %s", order,
           bad, slots, counts_detail, first);
  }
  {
    const char* first = "";
    for (unsigned c = 0; c < g_n && first[0] == '\0'; ++c) first = g_cpu[c].first_ib_outside;
    result("load-insufficient-buffers-only-during-stalls", ib_outside == 0, "%u outside: %s",
           ib_outside, first);
  }
  {
    uint32_t stalls = 0;
    for (unsigned c = 0; c < g_n; ++c) stalls += g_cpu[c].stall_state != 0 ? 1 : 0;
    result("load-insufficient-buffers-during-stalls", stalls > 0 && ib_stalled > 0,
           "%u stalls, %u INSUFFICIENT_BUFFERS during them (a stalled receiver must run a port's "
           "16 buffers out)",
           stalls, ib_stalled);
  }
  {
    const char* first = "";
    for (unsigned c = 0; c < g_n && first[0] == '\0'; ++c) first = g_cpu[c].first_early;
    result("load-insufficient-buffers-only-with-16-queued", ib_early == 0, "%u: %s", ib_early,
           first);
  }
  {
    const char* first = "";
    for (unsigned c = 0; c < g_n && first[0] == '\0'; ++c) first = g_cpu[c].first_bound;
    result("load-at-most-slot-plus-16-outstanding", bound == 0, "%u: %s", bound, first);
  }
  result("load-events-interrupts-match-transitions", events_ok, "%s", events_detail);
  result("load-events-no-lost-wakeup", leftover == 0,
         "%u SIEF flag(s) still set after the quiet window (a 0->1 transition without its "
         "interrupt)",
         leftover);
  (void)accepted;
  finish();
}

}  // namespace guest::load
