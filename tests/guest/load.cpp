// Load mode (load option --load): every CPU posts messages to every other
// CPU and signals events on them at once, for a while; run by
// scripts/test-load.sh under Bochs with `cpu: count=N`.
//
//   --messages=N   messages each CPU posts (default 10000, at least 100),
//                  round-robin over the other CPUs
//   --events=N     SignalEvents each CPU makes (default: as many as messages)
//   --window=N     flow control: a sender keeps at most N (1..16, default 8)
//                  of its messages to a receiver accepted and not yet read,
//                  except while that receiver is stalled; so the port's 16
//                  buffers never run out outside a stall unless microhv loses
//                  track of them
//   --timeout=S    global limit in seconds of guest time (TSC, tsc_hz(): calibrated
//                  with the firmware's Stall; default 300); also 10 s without any
//                  progress ends the run
//   --self         harness self-check: CPU 0 alone posts and signals to its
//                  own ports (one pair, s = d = 0), so the whole machinery
//                  (stall, INSUFFICIENT_BUFFERS accounting, checks) can run
//                  on a uniprocessor microhv; not a cross-VP test
//
// Setup (CPU 0, before the storm): one message port per (sender s, receiver
// d) pair, id 0x3000 + 16 s + d, target VP d, SINT3, connection 0x4000 +
// 16 s + d; one event port per receiver d, id 0x3800 + d, target VP d,
// SINT4, flags 0..N-1 (sender s signals flag s), connection 0x4800 + d.
// Every CPU programs its own SynIC (SINT3 = 0x50, SINT4 = 0x51, both
// AutoEOI) and checks VP_INDEX = its MP-services processor number.
//
// Storm, on every CPU with interrupts enabled:
//  - sender: message k to d carries (sender, d, k, TSC) with k the per-(s, d)
//    sequence number; SUCCESS advances k; at most --window messages to d may
//    be unread unless d is stalled; INSUFFICIENT_BUFFERS is counted,
//    with the receiver's stall state around the call (stall epoch read before
//    and after: odd or changed = during a stall), and that destination is
//    retried after a short back-off; after each post one fast SignalEvent of
//    flag s on d's event port.
//  - receiver, in the SINT3 handler: checks the message (sender, sequence in
//    order per sender), copies it out, frees the slot and writes EOM when
//    MessagePending was set. In the SINT4 handler: clears the flags it finds
//    set (each one a 0->1 transition) and counts them.
//  - stall: once, when (d + 1) / (N + 1) of the messages it expects arrived,
//    CPU d stops consuming (its handler leaves the slot alone) until a sender got
//    INSUFFICIENT_BUFFERS from it (at least 5 ms, at most 500 ms), then
//    consumes again; its stall epoch stays odd until everything accepted for
//    it before it resumed has arrived (the backlog of the stall).
//  - end: when every sender is done and everything accepted has arrived, a
//    quiet window, then the SIEF page must hold no flag (a flag without its
//    interrupt would stay set) and the SIM slot must be empty.
//
// CPU 0 then prints (only CPU 0 writes COM1):
//   load: N messages delivered in T TSC ticks = X per million ticks
//   load: INSUFFICIENT_BUFFERS N (N during stalls, N outside)
//   load: PASS <check> / load: FAIL <check>: <detail>   one line per check
//   load: PASS  or  load: FAIL <failed checks>
//   N passed, N failed
#include "tests/guest/load.hpp"

namespace guest::load {

Pair g_pair[kMaxCpus][kMaxCpus];
Cpu g_cpu[kMaxCpus];
unsigned g_n;
bool g_self;  // --self: the single pair (0, 0)
uint32_t g_go, g_abort;

uint64_t g_hz;
uint64_t g_go_tsc;
uint64_t g_stall_min, g_stall_max, g_backoff, g_quiet;
uint32_t g_window;  // --window

void sayf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void sayf(const char* fmt, ...) {
  char text[400];
  va_list args;
  va_start(args, fmt);
  microhv::format(text, sizeof(text), fmt, args);
  va_end(args);
  char out[420];
  microhv::format(out, sizeof(out), "load: %s", text);
  say(out);
}

void record(char* where, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void record(char* where, size_t cap, const char* fmt, ...) {
  if (where[0] != '\0') return;  // keep the first
  va_list args;
  va_start(args, fmt);
  microhv::format(where, cap, fmt, args);
  va_end(args);
}

namespace {

// Programs this CPU's SynIC and checks VP_INDEX; interrupts off.
bool setup_cpu(unsigned c) {
  Cpu& me = g_cpu[c];
  const CpuPages& p = env.cpu[c];
  MsrResult vp = rdmsr(tlfs::msr::kVpIndex);
  me.vp_index = vp.value;
  if (vp.fault.faulted || vp.value != c) {
    microhv::format(me.setup_error, sizeof(me.setup_error),
                    "VP_INDEX on MP processor %u reads %s0x%lx (expected %u)", c,
                    vp.fault.faulted ? "(faulted) " : "", vp.value, c);
    return false;
  }
  char why[160];
  if (!program_synic(p.sim, p.sief, kReceiverSints,
                     sizeof(kReceiverSints) / sizeof(kReceiverSints[0]), why, sizeof(why))) {
    microhv::format(me.setup_error, sizeof(me.setup_error), "VP %u: %s", c, why);
    return false;
  }
  me.irq_base_msg = irq_count_on(c, kVecMsg);
  me.irq_base_evt = irq_count_on(c, kVecEvt);
  return true;
}

void ap_main(void* arg) {
  const auto c = static_cast<unsigned>(reinterpret_cast<uintptr_t>(arg));
  cli();
  ap_enter();
  Cpu& me = g_cpu[c];
  if (this_cpu() != c) {
    microhv::format(me.setup_error, sizeof(me.setup_error),
                    "MP processor %u has local APIC ID 0x%x, which the table maps to CPU %u", c,
                    apic_id(), this_cpu());
    st(me.ready, 2u);
  } else {
    st(me.ready, setup_cpu(c) ? 1u : 2u);
  }
  while (ld(g_go) == 0 && ld(g_abort) == 0) cpu_pause();
  if (ld(g_abort) == 0 && me.ready == 1) worker(c);
  // Stay here: our SynIC keeps its SINTs pointed at our IDT's vectors.
  for (;;) asm volatile("cli; hlt");
}

[[noreturn]] void setup_failed(const char* name, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
[[noreturn]] void setup_failed(const char* name, const char* fmt, ...) {
  char detail[320];
  va_list args;
  va_start(args, fmt);
  microhv::format(detail, sizeof(detail), fmt, args);
  va_end(args);
  st(g_abort, 1u);
  result(name, false, "%s", detail);
  finish();
}

}  // namespace
}  // namespace guest::load

namespace guest {

using namespace guest::load;

[[noreturn]] void run_load() {
  g_n = cpu_count();
  g_self = has_option("--self");
  if (g_self) g_n = 1;
  const uint64_t messages = option_number("--messages=", 10000, 100, 10'000'000);
  const uint64_t events = option_number("--events=", messages, 0, 10'000'000);
  const uint64_t timeout_s = option_number("--timeout=", 300, 1, 100'000);
  g_window = static_cast<uint32_t>(option_number("--window=", 8, 1, 16));
  g_hz = tsc_hz();
  sayf(
      "microhv load test: %u CPUs, %lu messages and %lu SignalEvents per CPU, at most %u "
      "messages per receiver unread (unless it stalls), TSC %lu kHz, limit %lu s",
      g_n, messages, events, g_window, g_hz / 1000, timeout_s);
  sayf("%s%s", mp_note(), g_self ? "; --self: CPU 0 alone, posting to itself" : "");
  if (g_n < 2 && !g_self) setup_failed("load-cpus", "needs at least 2 CPUs (%s)", mp_note());
  {
    char why[160];
    if (!detect_hyperv(why, sizeof(why))) {
      setup_failed("load-hyperv", "no Hyper-V interface (%s)", why);
    }
  }
  if (!ensure_hypercall()) setup_failed("load-hypercall-page", "%s", fixture_error());

  // Quotas: round-robin over the other CPUs.
  const unsigned dests = g_self ? 1 : g_n - 1;
  for (unsigned s = 0; s < g_n; ++s) {
    for (unsigned k = 0; k < dests; ++k) {
      const unsigned d = g_self ? s : (s + 1 + k) % g_n;
      g_pair[s][d].quota_msgs =
          static_cast<uint32_t>(messages / dests + (k < messages % dests ? 1 : 0));
      g_pair[s][d].quota_evts =
          static_cast<uint32_t>(events / dests + (k < events % dests ? 1 : 0));
    }
  }
  // Receiver d stalls when (d + 1) / (N + 1) of what it expects arrived: the
  // senders are busy then, whatever the CPUs' relative speeds.
  for (unsigned d = 0; d < g_n; ++d) {
    uint64_t expected = 0;
    for (unsigned s = 0; s < g_n; ++s) expected += g_pair[s][d].quota_msgs;
    g_cpu[d].stall_at = static_cast<uint32_t>(expected * (d + 1) / (g_n + 1));
  }
  g_stall_min = g_hz / 200;  // 5 ms
  g_stall_max = g_hz / 2;    // 500 ms
  g_backoff = g_hz / 20000;  // 50 us
  g_quiet = g_hz / 100;      // 10 ms

  // Ports.
  char got[128];
  for (unsigned d = 0; d < g_n; ++d) {
    for (unsigned s = 0; s < g_n; ++s) {
      if (!pair_used(s, d)) continue;
      HvResult r = create_port(msg_port(s, d), tlfs::PortType::kMessage, kSintMsg, d);
      if (!is_status(r, Status::kSuccess)) {
        setup_failed("load-ports", "CreatePort 0x%x (message, SINT3, VP %u): %s", msg_port(s, d), d,
                     describe(r, got, sizeof(got)));
      }
      r = connect_port(msg_conn(s, d), msg_port(s, d), tlfs::PortType::kMessage);
      if (!is_status(r, Status::kSuccess)) {
        setup_failed("load-ports", "ConnectPort 0x%x -> 0x%x: %s", msg_conn(s, d), msg_port(s, d),
                     describe(r, got, sizeof(got)));
      }
    }
    HvResult r = create_port(evt_port(d), tlfs::PortType::kEvent, kSintEvt, d, 0,
                             static_cast<uint16_t>(g_n));
    if (!is_status(r, Status::kSuccess)) {
      setup_failed("load-ports", "CreatePort 0x%x (event, SINT4, VP %u, flags 0..%u): %s",
                   evt_port(d), d, g_n - 1, describe(r, got, sizeof(got)));
    }
    r = connect_port(evt_conn(d), evt_port(d), tlfs::PortType::kEvent);
    if (!is_status(r, Status::kSuccess)) {
      setup_failed("load-ports", "ConnectPort 0x%x -> 0x%x: %s", evt_conn(d), evt_port(d),
                   describe(r, got, sizeof(got)));
    }
  }

  // CPUs: every one programs its SynIC and checks its VP index.
  set_irq_hook(on_irq);
  for (unsigned c = 1; c < g_n; ++c) {
    char why[160];
    bool ok = mp_start_ap(c, ap_main, reinterpret_cast<void*>(static_cast<uintptr_t>(c)), why,
                          sizeof(why));
    cli();
    if (!ok) setup_failed("load-start-aps", "%s", why);
  }
  g_cpu[0].ready = setup_cpu(0) ? 1u : 2u;
  {
    const uint64_t t0 = rdtsc();
    for (unsigned c = 0; c < g_n; ++c) {
      while (ld(g_cpu[c].ready) == 0 && rdtsc() - t0 < 10 * g_hz) cpu_pause();
      const uint32_t ready = ld(g_cpu[c].ready);
      if (ready == 0) {
        const ApFault& f = ap_fault(c);
        if (f.faulted) {
          setup_failed("load-setup", "VP %u took %s at rip 0x%lx during setup", c,
                       vector_name(static_cast<uint8_t>(f.vector)), f.rip);
        }
        setup_failed("load-setup", "processor %u did not report within 10 s", c);
      }
      if (ready != 1) setup_failed("load-setup", "%s", g_cpu[c].setup_error);
    }
  }
  result("load-setup", true, "%s", "");

  // The storm.
  const uint64_t go = rdtsc();
  g_go_tsc = go;
  g_deadline = go + timeout_s * g_hz;
  g_watch_tsc = go;
  st(g_go, 1u);
  worker(0);
  // Wait for the others (bounded; an AP stuck in microhv never finishes).
  uint64_t last = 0;
  for (unsigned c = 1; c < g_n; ++c) {
    while (ld(g_cpu[c].finished) == 0) {
      const uint64_t now = rdtsc();
      if (g_abort == 0) {
        progress_stalled(now);
      } else if (last == 0) {
        last = now;
      } else if (now - last > 2 * g_hz) {
        break;
      }
      cpu_pause();
    }
  }
  report_and_finish(go);
}

}  // namespace guest
