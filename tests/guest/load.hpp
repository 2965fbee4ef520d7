// The load test (--load, load.cpp), shared between its set-up and report
// (load.cpp) and the storm every CPU runs (load_storm.cpp). Internal to
// those two files.
#pragma once

#include <stdarg.h>

#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest::load {

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
inline void inc(T& x) {
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

// ------------------------------------------------------------------ state (load.cpp)
extern Pair g_pair[kMaxCpus][kMaxCpus];
extern Cpu g_cpu[kMaxCpus];
extern unsigned g_n;
extern bool g_self;  // --self: the single pair (0, 0)
extern uint32_t g_go, g_abort;
extern uint64_t g_hz;
extern uint64_t g_go_tsc;
extern uint64_t g_stall_min, g_stall_max, g_backoff, g_quiet;
extern uint32_t g_window;  // --window
// CPU 0 only: the global limits (load_storm.cpp).
extern uint64_t g_deadline, g_watch_tsc, g_watch_sum;
extern uint64_t g_stuck_ticks;
extern bool g_timed_out, g_hung;

// The (sender, receiver) pairs that take part: s != d, or s = d = 0 with --self.
inline bool pair_used(unsigned s, unsigned d) {
  return g_self ? s == d : s != d;
}

// One "load: ..." line on COM1.
void sayf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Keeps the first message written to `where`.
void record(char* where, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

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

inline volatile tlfs::Message* slot_of(unsigned cpu) {
  return reinterpret_cast<volatile tlfs::Message*>(env.cpu[cpu].sim +
                                                   kSintMsg * tlfs::kMessageSize);
}
inline uint8_t* flags_of(unsigned cpu) {
  return env.cpu[cpu].sief + kSintEvt * (tlfs::kFlagsPerSint / 8);
}

// ------------------------------------------------------------------ the report (load_report.cpp)
// One "load: PASS <name>" or "load: FAIL <name>: <detail>" line.
void result(const char* name, bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
// The verdict and "N passed, N failed", then power off.
[[noreturn]] void finish();
// Per-CPU figures and every check, once the storm is over (started at TSC
// `go`); then finish().
[[noreturn]] void report_and_finish(uint64_t go);

// ------------------------------------------------------------------ the storm (load_storm.cpp)
// The SINT3/SINT4 handler hook (set_irq_hook).
void on_irq(unsigned cpu, uint8_t vector);
// The storm on CPU c; interrupts enabled. Returns when done or aborted.
void worker(unsigned c);
// CPU 0: true once the global time limit passed or nothing moved for 10 s
// (and sets g_abort).
bool progress_stalled(uint64_t now);

}  // namespace guest::load
