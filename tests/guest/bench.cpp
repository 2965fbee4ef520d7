// Benchmark mode (load option --bench): TSC ticks per round trip through
// microhv, as seen by the guest. Each figure is the minimum and the median of
// N iterations (--iterations=N, default 200) after 20 warm-up iterations:
//
//   empty             the timing itself (lfence; rdtsc; lfence twice); not subtracted
//   cpuid             CPUID leaf 0x40000001: one exit that microhv answers
//   hypercall-unknown call code 0xFFFF through the hypercall page:
//                     INVALID_HYPERCALL_CODE (the bare hypercall path; information only)
//   post-invalid      PostMessage with MessageType 0 through the hypercall page:
//                     rejected by validation with INVALID_PARAMETER
//   post-deliver-eom  PostMessage to our own SINT3 slot (AutoEOI vector 0x50)
//                     with IF=1: the interrupt is taken inside the region, then
//                     the guest reads the slot, frees it and writes EOM; ends
//                     after the EOM wrmsr returns. Exactly one interrupt per
//                     iteration, else an error.
//   post-deliver      the same without the EOM (MessagePending was clear, so a
//                     guest may skip it, as Linux does): information only
//   signal-event      fast SignalEvent to our own event port (SINT4, AutoEOI)
//                     with IF=1: exactly one interrupt inside the region
//
// Output on COM1:
//   bench: cpuid median N ticks (min M)
//   bench: post-invalid median N ticks (min M)
//   bench: post-deliver-eom median N ticks (min M)
//   bench: ratio post-deliver-eom / cpuid = X.XX (target <= 2.5)
//   bench: done
// A failure prints "bench: ERROR <what>" instead and shuts down.
//
// RDTSC does not exit under microhv. Under Bochs with `clock: sync=none` the
// TSC counts executed instructions (guest and microhv alike), so the figures
// are path lengths and the same on every run.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr unsigned kWarmup = 20;
constexpr unsigned kDefaultIterations = 200;
constexpr unsigned kMaxIterations = 1000;
constexpr uint32_t kTypeBench = 0x4D560201;  // guest message type: nonzero, MSB clear
constexpr uint32_t kBenchPayload = 16;
// Upper bound of the wait for the SINT interrupt inside the measured region
// (normally it arrives before the hypercall returns).
constexpr uint64_t kIrqSpins = 1'000'000;

uint64_t g_samples[kMaxIterations];
unsigned g_irq_before_return;  // post-deliver rounds with the interrupt taken by the call's return
uint64_t g_max_spins;          // longest wait for it otherwise (pause iterations)

void sayf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void sayf(const char* fmt, ...) {
  char text[300];
  va_list args;
  va_start(args, fmt);
  microhv::format(text, sizeof(text), fmt, args);
  va_end(args);
  char out[320];
  microhv::format(out, sizeof(out), "bench: %s", text);
  say(out);
}

[[noreturn]] void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void error(const char* fmt, ...) {
  char text[300];
  va_list args;
  va_start(args, fmt);
  microhv::format(text, sizeof(text), fmt, args);
  va_end(args);
  sayf("ERROR %s", text);
  shutdown();
}

// lfence before: earlier instructions have completed; lfence after: later
// ones do not start before the TSC is read. No CPUID (it would exit).
inline uint64_t tsc() {
  uint32_t lo, hi;
  asm volatile("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// The hypercall page, called directly (not through run_guarded: the calls
// were checked once guarded before the loops).
inline uint64_t page_call(uint64_t control, uint64_t in_gpa, uint64_t out_gpa) {
  register uint64_t r8 asm("r8") = out_gpa;
  uint64_t rax = reinterpret_cast<uint64_t>(env.hypercall_page);
  uint64_t rcx = control;
  uint64_t rdx = in_gpa;
  asm volatile("call *%%rax"
               : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8)
               :
               : "rsi", "rdi", "r9", "r10", "r11", "memory", "cc");
  return rax;
}

inline void write_eom() {
  asm volatile("wrmsr" : : "c"(tlfs::msr::kEom), "a"(0u), "d"(0u) : "memory");
}

uint64_t in_gpa() {
  return reinterpret_cast<uint64_t>(env.in);
}
uint64_t out_gpa() {
  return reinterpret_cast<uint64_t>(env.out);
}
constexpr uint64_t kPostCode = static_cast<uint64_t>(tlfs::CallCode::kPostMessage);
constexpr uint64_t kUnknownCode = 0xFFFF;
constexpr uint64_t kSignalCode = static_cast<uint64_t>(tlfs::CallCode::kSignalEvent);

void prepare_post(uint32_t type) {
  tlfs::PostMessageInput in{};
  in.connection_id = kConnMsg;
  in.message_type = type;
  in.payload_size = kBenchPayload;
  fill_payload(in.payload, kBenchPayload, 7);
  memset(env.in, 0, 4096);
  memcpy(env.in, &in, sizeof(in));
}

// ------------------------------------------------------------------ rounds
// Each returns the ticks of one round trip or calls error().
uint64_t round_empty(unsigned) {
  uint64_t t0 = tsc();
  uint64_t t1 = tsc();
  return t1 - t0;
}

uint64_t round_cpuid(unsigned i) {
  uint32_t a = tlfs::cpuid::kInterfaceLeaf, b, c = 0, d;
  uint64_t t0 = tsc();
  asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d) : : "memory");
  uint64_t t1 = tsc();
  if (a != tlfs::cpuid::kHvInterfaceSignature) {
    error("cpuid: iteration %u: leaf 0x40000001 EAX 0x%x, expected \"Hv#1\"", i, a);
  }
  return t1 - t0;
}

uint64_t round_unknown_code(unsigned i) {
  uint64_t t0 = tsc();
  uint64_t rax = page_call(kUnknownCode, in_gpa(), out_gpa());
  uint64_t t1 = tsc();
  if (rax != static_cast<uint64_t>(Status::kInvalidHypercallCode)) {
    error("hypercall-unknown: iteration %u: result 0x%lx, expected 0x%x INVALID_HYPERCALL_CODE", i,
          rax, static_cast<unsigned>(Status::kInvalidHypercallCode));
  }
  return t1 - t0;
}

uint64_t round_post_invalid(unsigned i) {
  uint64_t t0 = tsc();
  uint64_t rax = page_call(kPostCode, in_gpa(), out_gpa());
  uint64_t t1 = tsc();
  if (rax != static_cast<uint64_t>(Status::kInvalidParameter)) {
    error("post-invalid: iteration %u: result 0x%lx, expected 0x%x INVALID_PARAMETER", i, rax,
          static_cast<unsigned>(Status::kInvalidParameter));
  }
  return t1 - t0;
}

template <bool kEom>
uint64_t round_post_deliver(unsigned i) {
  const char* name = kEom ? "post-deliver-eom" : "post-deliver";
  volatile tlfs::Message* slot = sim_slot(kSintMsg);
  if (slot->message_type != tlfs::kMessageTypeNone) {
    error("%s: iteration %u: SIM slot %u busy before the post (type 0x%x)", name, i, kSintMsg,
          static_cast<unsigned>(slot->message_type));
  }
  const uint32_t c0 = irq_count(kVecMsg);
  uint64_t spins = 0;
  sti();
  uint64_t t0 = tsc();
  uint64_t rax = page_call(kPostCode, in_gpa(), out_gpa());
  while (irq_count(kVecMsg) == c0 && spins < kIrqSpins) {
    asm volatile("pause" ::: "memory");
    ++spins;
  }
  const uint32_t in_region = irq_count(kVecMsg) - c0;
  uint32_t type = slot->message_type;
  uint8_t flags = slot->message_flags;
  slot->message_type = tlfs::kMessageTypeNone;
  if (kEom) {
    asm volatile("mfence" ::: "memory");
    write_eom();
  }
  uint64_t t1 = tsc();
  cli();
  const uint32_t taken = irq_count(kVecMsg) - c0;
  if (rax != static_cast<uint64_t>(Status::kSuccess)) {
    error("%s: iteration %u: PostMessage result 0x%lx, expected SUCCESS", name, i, rax);
  }
  if (in_region != 1 || taken != 1) {
    error(
        "%s: iteration %u: %u interrupts on vector 0x%x inside the measured region (%u by the "
        "end of the iteration), expected exactly 1",
        name, i, in_region, kVecMsg, taken);
  }
  if (spins == 0) {
    ++g_irq_before_return;
  } else if (spins > g_max_spins) {
    g_max_spins = spins;
  }
  if (type != kTypeBench || (flags & tlfs::kMessageFlagPending) != 0) {
    error(
        "%s: iteration %u: the slot held type 0x%x flags 0x%x, expected 0x%x without "
        "MessagePending",
        name, i, type, flags, kTypeBench);
  }
  return t1 - t0;
}

// Fast HvCallSignalEvent to our own event port (connection 0x2002, SINT4,
// AutoEOI vector kVecEvt), flag 3, with IF=1: the interrupt is taken inside
// the region. The flag is cleared before the region (a flag already set
// raises no interrupt, TLFS 11.10.4). Linux signals VMBus channels this way.
uint64_t round_signal_event(unsigned i) {
  volatile uint8_t* flags = sief_flags(kSintEvt);
  for (unsigned b = 0; b < 256; ++b) flags[b] = 0;
  constexpr unsigned kBit = kEvtBaseFlag + 3;
  const uint64_t params = kConnEvt | (static_cast<uint64_t>(3) << 32);
  const uint32_t c0 = irq_count(kVecEvt);
  uint64_t spins = 0;
  sti();
  uint64_t t0 = tsc();
  uint64_t rax = page_call(kSignalCode | tlfs::control::kFastBit, params, 0);
  while (irq_count(kVecEvt) == c0 && spins < kIrqSpins) {
    asm volatile("pause" ::: "memory");
    ++spins;
  }
  uint64_t t1 = tsc();
  cli();
  const uint32_t taken = irq_count(kVecEvt) - c0;
  if (rax != static_cast<uint64_t>(Status::kSuccess)) {
    error("signal-event: iteration %u: result 0x%lx, expected SUCCESS", i, rax);
  }
  if (taken != 1 || ((flags[kBit / 8] >> (kBit % 8)) & 1) == 0) {
    error("signal-event: iteration %u: %u interrupts on vector 0x%x, flag %u %s (expected 1, set)",
          i, taken, kVecEvt, kBit, ((flags[kBit / 8] >> (kBit % 8)) & 1) != 0 ? "set" : "clear");
  }
  return t1 - t0;
}

struct Stats {
  uint64_t min, median;
};

Stats measure(uint64_t (*round)(unsigned), unsigned iterations) {
  for (unsigned i = 0; i < kWarmup; ++i) round(i);
  for (unsigned i = 0; i < iterations; ++i) g_samples[i] = round(kWarmup + i);
  for (unsigned i = 1; i < iterations; ++i) {  // insertion sort
    uint64_t v = g_samples[i];
    unsigned j = i;
    for (; j > 0 && g_samples[j - 1] > v; --j) g_samples[j] = g_samples[j - 1];
    g_samples[j] = v;
  }
  uint64_t median = iterations % 2 != 0
                        ? g_samples[iterations / 2]
                        : (g_samples[iterations / 2 - 1] + g_samples[iterations / 2]) / 2;
  return {g_samples[0], median};
}

void show(const char* name, Stats s, const char* remark = "") {
  sayf("%s median %lu ticks (min %lu)%s", name, s.median, s.min, remark);
}

// After the delivering rounds: nothing more may arrive (no duplicate, no
// stray delivery after the EOMs) and the slot stays free.
void expect_quiet(const char* name) {
  const uint32_t c = irq_count(kVecMsg);
  uint32_t now = wait_irq(kVecMsg, c + 1, kSpinQuiet);
  if (now != c || sim_slot(kSintMsg)->message_type != tlfs::kMessageTypeNone) {
    error(
        "%s: after the last iteration: %u more interrupts, SIM slot %u type 0x%x (expected "
        "none, empty)",
        name, now - c, kSintMsg, static_cast<unsigned>(sim_slot(kSintMsg)->message_type));
  }
}

}  // namespace

void run_bench() {
  const unsigned iterations =
      static_cast<unsigned>(option_number("--iterations=", kDefaultIterations, 10, kMaxIterations));
  sayf(
      "microhv round trips: TSC ticks (lfence; rdtsc; lfence), median and min of %u iterations "
      "after %u warm-up",
      iterations, kWarmup);
  char why[160];
  if (!detect_hyperv(why, sizeof(why))) {
    sayf(
        "no Hyper-V interface present (%s): this guest is not running above microhv; nothing "
        "to measure, shutting down",
        why);
    shutdown();
  }
  if (!ensure_hypercall() || !ensure_synic() || !ensure_port(kPortMsg) || !ensure_port(kPortEvt)) {
    error("setup: %s", fixture_error());
  }

  // Each path once, guarded, before the unguarded loops.
  {
    char got[128];
    HvResult r = post_message(kConnMsg, 0, kBenchPayload, 7);
    if (!is_status(r, Status::kInvalidParameter)) {
      error("setup: PostMessage with type 0: %s, expected INVALID_PARAMETER",
            describe(r, got, sizeof(got)));
    }
    uint32_t c0 = irq_count(kVecMsg);
    r = post_message(kConnMsg, kTypeBench, kBenchPayload, 7);
    if (!is_status(r, Status::kSuccess)) {
      error("setup: PostMessage to 0x%x: %s, expected SUCCESS", kConnMsg,
            describe(r, got, sizeof(got)));
    }
    if (wait_irq(kVecMsg, c0 + 1, kSpinExpect) != c0 + 1) {
      error("setup: no interrupt on vector 0x%x after a PostMessage", kVecMsg);
    }
    clear_slot_and_eom(kSintMsg, false);
    Fault f = wrmsr(tlfs::msr::kEom, 0);
    if (f.faulted) error("setup: wrmsr EOM raised %s", vector_name(f.vector));
    expect_quiet("setup");
  }

  const Stats empty = measure(round_empty, iterations);
  show("empty", empty, " (the timing itself; not subtracted)");
  const Stats cpu = measure(round_cpuid, iterations);
  show("cpuid", cpu);
  prepare_post(0);
  show("hypercall-unknown", measure(round_unknown_code, iterations),
       " (call code 0xFFFF -> INVALID_HYPERCALL_CODE; information only)");
  const Stats invalid = measure(round_post_invalid, iterations);
  show("post-invalid", invalid);
  prepare_post(kTypeBench);
  g_irq_before_return = 0;
  const Stats deliver_eom = measure(round_post_deliver<true>, iterations);
  expect_quiet("post-deliver-eom");
  show("post-deliver-eom", deliver_eom);
  {
    char rest[64] = "";
    if (g_irq_before_return != iterations + kWarmup) {
      microhv::format(rest, sizeof(rest), " (the others within %lu pause spins)", g_max_spins);
    }
    sayf(
        "post-deliver-eom: 1 interrupt per iteration, taken by the time the hypercall returned in "
        "%u of %u iterations%s",
        g_irq_before_return, iterations + kWarmup, rest);
  }
  const Stats deliver = measure(round_post_deliver<false>, iterations);
  expect_quiet("post-deliver");
  show("post-deliver", deliver, " (no EOM: MessagePending was clear; information only)");

  show("signal-event", measure(round_signal_event, iterations),
       " (fast SignalEvent + its interrupt; information only)");

  uint64_t hundredths =
      cpu.median != 0 ? (deliver_eom.median * 100 + cpu.median / 2) / cpu.median : 0;
  sayf("ratio post-deliver-eom / cpuid = %lu.%02lu (target <= 2.5)", hundredths / 100,
       hundredths % 100);
  sayf("done");
  shutdown();
}

}  // namespace guest
