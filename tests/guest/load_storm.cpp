// The load test's storm (--load): what every CPU runs at once -- the
// receiver (SINT3 and SINT4 handlers, the stall), the sender (PostMessage and
// SignalEvent with flow control) and CPU 0's watch over the global limits.
// Set-up and report: load.cpp.
#include "tests/guest/load.hpp"

namespace guest::load {

uint64_t g_deadline, g_watch_tsc, g_watch_sum;
uint64_t g_stuck_ticks;
bool g_timed_out, g_hung;

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

}  // namespace guest::load
