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
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr uint32_t kTypeLoad = 0x4D560600;
constexpr uint32_t kMagic = 0x44414F4C;  // "LOAD"
constexpr uint32_t kPayload = 24;  // magic, sender, receiver, sequence number, TSC at the post
constexpr uint32_t kMaxOutstanding = 1 + tlfs::kMessageBuffersPerPort;  // slot + 16 buffers

constexpr uint32_t msg_port(unsigned s, unsigned d) {
  return 0x3000 + 16 * s + d;
}
constexpr uint32_t msg_conn(unsigned s, unsigned d) {
  return 0x4000 + 16 * s + d;
}
constexpr uint32_t evt_port(unsigned d) {
  return 0x3800 + d;
}
constexpr uint32_t evt_conn(unsigned d) {
  return 0x4800 + d;
}

template <typename T>
T ld(const T& x) {
  return __atomic_load_n(&x, __ATOMIC_SEQ_CST);
}
template <typename T>
void st(T& x, T v) {
  __atomic_store_n(&x, v, __ATOMIC_SEQ_CST);
}
template <typename T>
void inc(T& x) {
  __atomic_add_fetch(&x, T{1}, __ATOMIC_SEQ_CST);
}

// Per (sender s, receiver d).
struct alignas(64) Pair {
  uint32_t quota_msgs, quota_evts;  // set up front
  uint32_t accepted;                // s: SUCCESS posts (= next sequence number)
  uint32_t signals;                 // s: SUCCESS SignalEvents
  uint32_t received;                // d: messages from s taken out of the slot
  uint32_t next_seq;                // d: sequence number expected next
  uint32_t flags_seen;              // d: flag s found set (0->1 transitions)
  uint64_t backoff_until;           // s: no post to d before this TSC
  bool gave_up;                     // s: unexpected status, no more posts to d
  bool evt_gave_up;                 // s: unexpected status, no more SignalEvents to d
};

// Per CPU.
struct alignas(64) Cpu {
  // Setup.
  uint32_t ready;  // 1 ok, 2 failed
  uint64_t vp_index;
  char setup_error[160];
  // Receiver.
  uint32_t stall_epoch;   // odd: stalled or draining the stall's backlog
  uint32_t stop_consume;  // the SINT3 handler leaves the slot alone
  uint32_t ib_against;    // INSUFFICIENT_BUFFERS senders got from this CPU
  uint32_t msg_irqs, evt_irqs, ignored_irqs, spurious_irqs, empty_evt_irqs;
  uint64_t latency_sum, latency_max;  // TSC ticks from the post to the copy-out
  uint64_t post_ticks, signal_ticks;  // in PostMessage / SignalEvent calls (interrupts included)
  uint64_t posts, signals;            // calls made
  uint32_t order_errors, bad_messages;
  char first_error[200];
  int stall_state;  // 0 not yet, 1 stalled, 2 draining, 3 over
  uint64_t stall_start, stall_resume, stall_end;
  uint32_t stall_ib;  // ib_against at the end of the stall minus at its start
  uint32_t stall_ib_base, stall_snapshot[kMaxCpus];
  uint32_t stall_at;       // stall once this many messages arrived (a share of what it expects)
  uint32_t stall_arrived;  // messages arrived when it began
  uint32_t arrived;        // messages arrived so far, from all senders
  // Sender.
  uint32_t ib_stalled, ib_outside, ib_early, bound_exceeded, other_status;
  char first_ib_outside[200], first_early[200], first_bound[200], first_status[200];
  // End.
  uint32_t send_done, delivered, finished;
  uint64_t send_done_tsc, delivered_tsc;
  uint32_t leftover_flags, leftover_slot;
  uint32_t irq_base_msg, irq_base_evt;
};

Pair g_pair[kMaxCpus][kMaxCpus];
Cpu g_cpu[kMaxCpus];
unsigned g_n;
bool g_self;  // --self: the single pair (0, 0)
uint32_t g_go, g_abort;

// The (sender, receiver) pairs that take part: s != d, or s = d = 0 with --self.
bool pair_used(unsigned s, unsigned d) {
  return g_self ? s == d : s != d;
}
uint64_t g_hz;
uint64_t g_go_tsc;
uint64_t g_stall_min, g_stall_max, g_backoff, g_quiet;
uint32_t g_window;  // --window
uint32_t g_passed, g_failed;
char g_failed_names[300];

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

// ------------------------------------------------------------------ raw access
// The storm calls the hypercall page and WRMSR directly: interrupts are on
// and the handlers write EOM, so nothing may use the guarded regions.
inline uint64_t hv_call(uint64_t control, uint64_t in, uint64_t out) {
  register uint64_t r8 asm("r8") = out;
  uint64_t rax = reinterpret_cast<uint64_t>(env.hypercall_page);
  uint64_t rcx = control, rdx = in;
  asm volatile("call *%%rax"
               : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8)
               :
               : "rsi", "rdi", "r9", "r10", "r11", "memory", "cc");
  return rax;
}

inline void raw_wrmsr(uint32_t msr, uint64_t v) {
  asm volatile("wrmsr"
               :
               : "c"(msr), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32))
               : "memory");
}

volatile tlfs::Message* slot_of(unsigned cpu) {
  return reinterpret_cast<volatile tlfs::Message*>(env.cpu[cpu].sim +
                                                   kSintMsg * tlfs::kMessageSize);
}
uint8_t* flags_of(unsigned cpu) {
  return env.cpu[cpu].sief + kSintEvt * (tlfs::kFlagsPerSint / 8);
}

// ------------------------------------------------------------------ receiver
void begin_stall(unsigned c);
void check_drained(unsigned c);

// Takes the message out of CPU c's SINT3 slot. Interrupts are off.
void consume_slot(unsigned c) {
  Cpu& me = g_cpu[c];
  volatile tlfs::Message* m = slot_of(c);
  const uint32_t type = m->message_type;
  if (type == tlfs::kMessageTypeNone) {
    ++me.spurious_irqs;
    return;
  }
  const uint32_t size = m->payload_size;
  uint32_t w[6];
  for (int i = 0; i < 6; ++i) {
    w[i] = static_cast<uint32_t>(m->payload[4 * i]) |
           static_cast<uint32_t>(m->payload[4 * i + 1]) << 8 |
           static_cast<uint32_t>(m->payload[4 * i + 2]) << 16 |
           static_cast<uint32_t>(m->payload[4 * i + 3]) << 24;
  }
  const uint32_t s = w[1], d = w[2], seq = w[3];
  if (type != kTypeLoad || size != kPayload || w[0] != kMagic || s >= g_n || !pair_used(s, c) ||
      d != c) {
    inc(me.bad_messages);
    record(me.first_error, sizeof(me.first_error),
           "VP %u got a message it cannot place: type 0x%x size %u magic 0x%x sender %u dest %u "
           "seq %u",
           c, type, size, w[0], s, d, seq);
  } else {
    Pair& p = g_pair[s][c];
    if (seq != p.next_seq) {
      inc(me.order_errors);
      record(me.first_error, sizeof(me.first_error),
             "VP %u: message from VP %u has sequence number %u, expected %u (%s)", c, s, seq,
             p.next_seq, seq < p.next_seq ? "duplicate or reordered" : "messages missing");
    }
    p.next_seq = seq + 1;
    st(p.received, p.received + 1);
    ++me.arrived;
    // Post to copy-out, by the TSC (comparable across CPUs where TSCs are in
    // step, as under Bochs).
    const uint64_t posted = static_cast<uint64_t>(w[5]) << 32 | w[4];
    const uint64_t now = rdtsc();
    const uint64_t latency = now > posted ? now - posted : 0;
    me.latency_sum += latency;
    if (latency > me.latency_max) me.latency_max = latency;
  }
  m->message_type = tlfs::kMessageTypeNone;
  asm volatile("mfence" ::: "memory");
  if ((m->message_flags & tlfs::kMessageFlagPending) != 0) raw_wrmsr(tlfs::msr::kEom, 0);
  check_drained(c);
}

void on_event(unsigned c) {
  uint8_t* flags = flags_of(c);
  bool found = false;
  for (unsigned s = 0; s < g_n; ++s) {
    if (!pair_used(s, c)) continue;
    const uint8_t bit = static_cast<uint8_t>(1u << (s % 8));
    if ((ld(flags[s / 8]) & bit) == 0) continue;
    const uint8_t old =
        __atomic_fetch_and(&flags[s / 8], static_cast<uint8_t>(~bit), __ATOMIC_SEQ_CST);
    if ((old & bit) != 0) {
      inc(g_pair[s][c].flags_seen);
      found = true;
    }
  }
  if (!found) ++g_cpu[c].empty_evt_irqs;
}

void on_irq(unsigned cpu, uint8_t vector) {
  if (cpu >= g_n) return;
  Cpu& me = g_cpu[cpu];
  if (vector == kVecMsg) {
    ++me.msg_irqs;
    if (me.stall_state == 0 && me.arrived >= me.stall_at) begin_stall(cpu);
    if (ld(me.stop_consume) != 0) {
      ++me.ignored_irqs;  // stalled: the message stays in the slot
      return;
    }
    consume_slot(cpu);
  } else if (vector == kVecEvt) {
    ++me.evt_irqs;
    on_event(cpu);
  }
}

// Every CPU that sends to `c` is done.
bool all_senders_done(unsigned c) {
  for (unsigned s = 0; s < g_n; ++s) {
    if (pair_used(s, c) && ld(g_cpu[s].send_done) == 0) return false;
  }
  return true;
}

// The receiver's stall begins in its SINT3 handler (a receiver that is kept
// busy may not get back to its main loop for a long time), interrupts off.
void begin_stall(unsigned c) {
  Cpu& me = g_cpu[c];
  st(me.stall_epoch, me.stall_epoch + 1);  // odd: stalled
  st(me.stop_consume, 1u);
  me.stall_start = rdtsc();
  me.stall_ib_base = ld(me.ib_against);
  me.stall_arrived = me.arrived;
  st(me.stall_state, 1);
}

// The stall is over once everything accepted for c before it resumed has
// arrived. Interrupts off; called after each message and from the main loop.
void check_drained(unsigned c) {
  Cpu& me = g_cpu[c];
  if (me.stall_state != 2) return;
  for (unsigned s = 0; s < g_n; ++s) {
    if (pair_used(s, c) && ld(g_pair[s][c].received) < me.stall_snapshot[s]) return;
  }
  me.stall_ib = ld(me.ib_against) - me.stall_ib_base;
  st(me.stall_epoch, me.stall_epoch + 1);  // even: over
  me.stall_end = rdtsc();
  st(me.stall_state, 3);
}

// ... and resumes from its main loop: after at least 5 ms once a sender got
// INSUFFICIENT_BUFFERS from it, after 500 ms, or when no sender is left.
void stall_step(unsigned c) {
  Cpu& me = g_cpu[c];
  const int state = ld(me.stall_state);
  if (state == 1) {
    const uint64_t now = rdtsc();
    const uint64_t held = now - me.stall_start;
    const bool got_ib = ld(me.ib_against) != me.stall_ib_base;
    if (!((got_ib && held >= g_stall_min) || held >= g_stall_max || all_senders_done(c))) return;
    cli();
    for (unsigned s = 0; s < g_n; ++s) me.stall_snapshot[s] = ld(g_pair[s][c].accepted);
    me.stall_resume = now;
    st(me.stall_state, 2);
    st(me.stop_consume, 0u);
    if (slot_of(c)->message_type != tlfs::kMessageTypeNone) consume_slot(c);
    check_drained(c);
    sti();
  } else if (state == 2) {
    cli();
    check_drained(c);
    sti();
  }
}

bool all_arrived(unsigned c) {
  if (!all_senders_done(c)) return false;
  for (unsigned s = 0; s < g_n; ++s) {
    if (pair_used(s, c) && ld(g_pair[s][c].received) < ld(g_pair[s][c].accepted)) return false;
  }
  return true;
}

// ------------------------------------------------------------------ sender
void post(unsigned c, unsigned d, uint64_t now) {
  Cpu& me = g_cpu[c];
  Pair& p = g_pair[c][d];
  auto* in = reinterpret_cast<tlfs::PostMessageInput*>(env.cpu[c].in);
  in->connection_id = msg_conn(c, d);
  in->rsvdz = 0;
  in->message_type = kTypeLoad;
  in->payload_size = kPayload;
  const uint64_t t = rdtsc();
  const uint32_t w[6] = {
      kMagic, c, d, p.accepted, static_cast<uint32_t>(t), static_cast<uint32_t>(t >> 32)};
  memcpy(in->payload, w, sizeof(w));
  const uint32_t before_received = ld(p.received);
  const uint32_t e0 = ld(g_cpu[d].stall_epoch);
  const uint64_t rax = hv_call(static_cast<uint64_t>(tlfs::CallCode::kPostMessage),
                               reinterpret_cast<uint64_t>(env.cpu[c].in),
                               reinterpret_cast<uint64_t>(env.cpu[c].out));
  me.post_ticks += rdtsc() - t;
  ++me.posts;
  const uint32_t e1 = ld(g_cpu[d].stall_epoch);
  if (rax == static_cast<uint64_t>(Status::kSuccess)) {
    st(p.accepted, p.accepted + 1);
    const uint32_t outstanding = p.accepted - ld(p.received);
    if (outstanding > kMaxOutstanding) {
      ++me.bound_exceeded;
      record(me.first_bound, sizeof(me.first_bound),
             "VP %u -> VP %u: post %u accepted with %u messages accepted and not yet read (slot "
             "+ 16 buffers = %u)",
             c, d, p.accepted - 1, outstanding, kMaxOutstanding);
    }
    return;
  }
  if (rax == static_cast<uint64_t>(Status::kInsufficientBuffers)) {
    const bool stalled = (e0 & 1) != 0 || (e1 & 1) != 0 || e0 != e1;
    const uint32_t outstanding = p.accepted - before_received;  // >= the true value
    inc(g_cpu[d].ib_against);
    if (stalled) {
      ++me.ib_stalled;
    } else {
      ++me.ib_outside;
      record(me.first_ib_outside, sizeof(me.first_ib_outside),
             "VP %u -> VP %u, message %u: INSUFFICIENT_BUFFERS while VP %u was not stalled "
             "(stall epoch %u before, %u after; %u messages outstanding)",
             c, d, p.accepted, d, e0, e1, outstanding);
    }
    if (outstanding < tlfs::kMessageBuffersPerPort) {
      ++me.ib_early;
      record(me.first_early, sizeof(me.first_early),
             "VP %u -> VP %u, message %u: INSUFFICIENT_BUFFERS with at most %u messages "
             "outstanding (16 buffers per port)",
             c, d, p.accepted, outstanding);
    }
    p.backoff_until = now + g_backoff;
    return;
  }
  ++me.other_status;
  record(me.first_status, sizeof(me.first_status),
         "VP %u -> VP %u, message %u: PostMessage returned 0x%lx (%s)", c, d, p.accepted, rax,
         status_text(static_cast<uint16_t>(rax)));
  p.gave_up = true;
}

void signal(unsigned c, unsigned d) {
  Cpu& me = g_cpu[c];
  Pair& p = g_pair[c][d];
  const uint64_t rdx = evt_conn(d) | (static_cast<uint64_t>(c) << 32);
  const uint64_t t = rdtsc();
  const uint64_t rax = hv_call(
      static_cast<uint64_t>(tlfs::CallCode::kSignalEvent) | tlfs::control::kFastBit, rdx, 0);
  me.signal_ticks += rdtsc() - t;
  ++me.signals;
  if (rax == static_cast<uint64_t>(Status::kSuccess)) {
    st(p.signals, p.signals + 1);
    return;
  }
  ++me.other_status;
  record(me.first_status, sizeof(me.first_status),
         "VP %u -> VP %u: SignalEvent flag %u returned 0x%lx (%s)", c, d, c, rax,
         status_text(static_cast<uint16_t>(rax)));
  p.evt_gave_up = true;
}

// ------------------------------------------------------------------ per CPU
bool progress_stalled(uint64_t now);

// The storm on CPU c; interrupts enabled. Returns when done or aborted.
void worker(unsigned c) {
  Cpu& me = g_cpu[c];
  unsigned next = (c + 1) % g_n;
  sti();
  while (ld(g_abort) == 0) {
    const uint64_t now = rdtsc();
    if (me.send_done == 0) {
      bool left = false;
      unsigned d = next;
      for (unsigned k = 0; k < g_n; ++k, d = (d + 1) % g_n) {
        if (!pair_used(c, d)) continue;
        Pair& p = g_pair[c][d];
        const bool msgs = !p.gave_up && p.accepted < p.quota_msgs;
        const bool evts = !p.evt_gave_up && p.signals < p.quota_evts;
        if (!msgs && !evts) continue;
        left = true;
        // Flow control: at most g_window messages to d accepted and not yet
        // read, unless d is stalled (then the port's buffers are run out).
        const bool may_post =
            msgs && now >= p.backoff_until &&
            ((ld(g_cpu[d].stall_epoch) & 1) != 0 || p.accepted - ld(p.received) < g_window);
        if (!may_post && !evts) continue;
        if (may_post) post(c, d, now);
        if (evts) signal(c, d);
        next = (d + 1) % g_n;
        break;
      }
      if (!left) {
        me.send_done_tsc = now;
        st(me.send_done, 1u);
      }
    }
    stall_step(c);
    const int stall = ld(me.stall_state);
    if (me.send_done != 0 && stall != 1 && stall != 2 && all_arrived(c)) break;
    if (c == 0 && progress_stalled(now)) break;
    cpu_pause();
  }
  // Delivered (or aborted). A quiet window for the last events, then the end state.
  me.delivered_tsc = rdtsc();
  st(me.delivered, 1u);
  const uint64_t start = rdtsc();
  while (rdtsc() - start < g_quiet && ld(g_abort) == 0) cpu_pause();
  cli();
  uint32_t left = 0;
  const uint8_t* page = env.cpu[c].sief;
  for (int i = 0; i < 4096; ++i) left += static_cast<uint32_t>(__builtin_popcount(page[i]));
  me.leftover_flags = left;
  me.leftover_slot = slot_of(c)->message_type != tlfs::kMessageTypeNone ? 1u : 0u;
  st(me.finished, 1u);
}

// CPU 0 only: the global limits.
uint64_t g_deadline, g_watch_tsc, g_watch_sum;
uint64_t g_stuck_ticks;
bool g_timed_out, g_hung;

uint64_t progress_sum() {
  uint64_t sum = 0;
  for (unsigned s = 0; s < g_n; ++s) {
    for (unsigned d = 0; d < g_n; ++d) {
      const Pair& p = g_pair[s][d];
      sum += ld(p.accepted) + ld(p.signals) + ld(p.received) + ld(p.flags_seen);
    }
  }
  return sum;
}

bool progress_stalled(uint64_t now) {
  if (now - g_watch_tsc < g_hz / 10) return false;  // look every 100 ms
  if (now >= g_deadline) {
    g_timed_out = true;
    st(g_abort, 1u);
    return true;
  }
  const uint64_t sum = progress_sum();
  if (sum != g_watch_sum) {
    g_watch_sum = sum;
    g_stuck_ticks = 0;
  } else {
    g_stuck_ticks += now - g_watch_tsc;
    if (g_stuck_ticks >= 10 * g_hz) {
      g_hung = true;
      st(g_abort, 1u);
      return true;
    }
  }
  g_watch_tsc = now;
  return false;
}

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
  struct W {
    uint32_t msr;
    uint64_t value;
    const char* name;
  };
  const W writes[] = {
      {tlfs::msr::kSimp, reinterpret_cast<uint64_t>(p.sim) | 1, "SIMP"},
      {tlfs::msr::kSiefp, reinterpret_cast<uint64_t>(p.sief) | 1, "SIEFP"},
      {tlfs::msr::kSint0 + kSintMsg, kVecMsg | tlfs::sint_bits::kAutoEoi, "SINT3"},
      {tlfs::msr::kSint0 + kSintEvt, kVecEvt | tlfs::sint_bits::kAutoEoi, "SINT4"},
      {tlfs::msr::kScontrol, 1, "SCONTROL"},
  };
  for (const W& w : writes) {
    Fault f = wrmsr(w.msr, w.value);
    MsrResult r = rdmsr(w.msr);
    if (f.faulted || r.fault.faulted || r.value != w.value) {
      microhv::format(me.setup_error, sizeof(me.setup_error),
                      "VP %u: wrmsr %s=0x%lx %s, reads 0x%lx", c, w.name, w.value,
                      f.faulted ? vector_name(f.vector) : "ok", r.value);
      return false;
    }
  }
  for (uint8_t s = 0; s < 16; ++s) {
    reinterpret_cast<volatile tlfs::Message*>(p.sim + s * tlfs::kMessageSize)->message_type =
        tlfs::kMessageTypeNone;
  }
  memset(p.sief, 0, 4096);
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

// ------------------------------------------------------------------ report
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

}  // namespace guest
