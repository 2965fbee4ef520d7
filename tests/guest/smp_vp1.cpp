// The smp group's harness: VP 1's command loop and the BSP's side of the
// mailbox (see smp_vp1.hpp and checks_smp.cpp).
#include "tests/guest/smp_vp1.hpp"

namespace guest::smp {

Box g_box;
uint32_t g_seq;
bool g_ap_lost;  // a request was never answered: later ones fail at once
char g_lost_why[240];

uint64_t g_expect, g_quiet, g_answer;

// ------------------------------------------------------------------ AP side
void ap_setup_synic(Box& b) {
  char why[160];
  b.ok = program_synic(env.cpu[kAp].sim, env.cpu[kAp].sief, kReceiverSints,
                       sizeof(kReceiverSints) / sizeof(kReceiverSints[0]), why, sizeof(why));
  if (!b.ok) microhv::format(b.why, sizeof(b.why), "on VP 1: %s", why);
}

void ap_wait(Box& b, uint32_t seq) {
  const uint8_t v = b.vector;
  b.wakeups = 0;
  b.halt_tsc = 0;
  st(b.waiting, seq);
  if (b.halt) {
    b.halt_tsc = rdtsc();
    for (;;) {
      cli();
      if (irq_count(v) >= b.target || ld(b.abort) != 0) break;
      asm volatile("sti; hlt" ::: "memory");  // an interrupt is taken right after hlt
      ++b.wakeups;
    }
  } else {
    sti();
    const uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < b.ticks && irq_count(v) < b.target && ld(b.abort) == 0) cpu_pause();
  }
  sti();
  const uint64_t t1 = rdtsc();
  while (rdtsc() - t1 < b.quiet && irq_count(v) <= b.target && ld(b.abort) == 0) cpu_pause();
  cli();
  b.count = irq_count(v);
  b.ok = b.count >= b.target;
}

void ap_main(void*) {
  cli();
  ap_enter();
  Box& b = g_box;
  uint32_t last = ld(b.seq);
  st(b.running, 1u);
  for (;;) {
    uint32_t seq;
    while ((seq = ld(b.seq)) == last) cpu_pause();
    last = seq;
    b.why[0] = '\0';
    b.ok = false;
    const uint32_t cmd = b.cmd;
    switch (cmd) {
      case kCmdSetup:
        ap_setup_synic(b);
        break;
      case kCmdVpIndex: {
        MsrResult r = rdmsr(tlfs::msr::kVpIndex);
        b.value = r.value;
        b.ok = !r.fault.faulted;
        if (r.fault.faulted) {
          microhv::format(b.why, sizeof(b.why), "rdmsr VP_INDEX on VP 1 raised %s",
                          vector_name(r.fault.vector));
        }
        break;
      }
      case kCmdClearEomWait: {
        auto* m = reinterpret_cast<volatile tlfs::Message*>(env.cpu[kAp].sim +
                                                            kSintMsg * tlfs::kMessageSize);
        m->message_type = tlfs::kMessageTypeNone;
        asm volatile("mfence" ::: "memory");
        Fault f = wrmsr(tlfs::msr::kEom, 0);
        if (f.faulted) {
          microhv::format(b.why, sizeof(b.why), "wrmsr EOM on VP 1 raised %s",
                          vector_name(f.vector));
          break;
        }
        ap_wait(b, seq);
        break;
      }
      case kCmdWait:
        ap_wait(b, seq);
        break;
      case kCmdTimeSample:
      case kCmdStimerHalt:
        ap_time_command(b, seq);
        break;
      case kCmdCall:
        st(b.waiting, seq);
        b.call(b.call_arg);
        cli();
        b.ok = true;
        break;
      case kCmdExit:
        // Back to the firmware's IDT: nothing may reach our vectors there.
        wrmsr(tlfs::msr::kScontrol, 0);
        wrmsr(tlfs::msr::kSint0 + kSintMsg, tlfs::sint_bits::kReset);
        wrmsr(tlfs::msr::kSint0 + kSintEvt, tlfs::sint_bits::kReset);
        wrmsr(tlfs::msr::kSimp, 0);
        wrmsr(tlfs::msr::kSiefp, 0);
        b.ok = true;
        break;
      default:
        break;
    }
    st(b.done, seq);
    if (cmd == kCmdExit) break;
  }
  cli();
  ap_leave();
}

// ------------------------------------------------------------------ BSP side
// Wait lengths in TSC ticks, set from tsc_hz() when the group starts.

void lost(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void lost(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  microhv::format(g_lost_why, sizeof(g_lost_why), fmt, args);
  va_end(args);
  g_ap_lost = true;
}

// Describes why VP 1 did not answer.
const char* ap_silence(const char* what) {
  static char buf[240];
  const ApFault& f = ap_fault(kAp);
  if (f.faulted) {
    microhv::format(buf, sizeof(buf),
                    "%s: VP 1 took %s (vector %lu, error 0x%lx) at rip 0x%lx cr2 0x%lx and parked",
                    what, vector_name(static_cast<uint8_t>(f.vector)), f.vector, f.error, f.rip,
                    f.cr2);
  } else {
    microhv::format(buf, sizeof(buf), "%s: VP 1 did not answer within the time limit", what);
  }
  return buf;
}

// Sends a request; does not wait. Returns its number.
namespace {
bool g_vp1_tried;    // StartupThisAP was called (once per boot)
bool g_vp1_started;  // ... and the loop answered
}  // namespace

bool start_vp1(char* why, size_t cap) {
  if (g_answer == 0) {
    g_expect = 2 * tsc_hz();
    g_quiet = tsc_hz() / 10;
    g_answer = tsc_hz();
  }
  if (g_vp1_tried) {
    if (!g_vp1_started || g_ap_lost) {
      microhv::format(why, cap, "%s", g_ap_lost ? g_lost_why : "AP 1 did not start");
    }
    return g_vp1_started && !g_ap_lost;
  }
  g_vp1_tried = true;
  g_box = Box{};
  bool started = mp_start_ap(kAp, ap_main, nullptr, why, cap);
  cli();  // the boot service may have enabled interrupts
  if (started && !wait_for(g_box.running, 1u, 5 * g_answer)) {
    microhv::format(why, cap, "%s", ap_silence("StartupThisAP returned"));
    started = false;
  }
  g_vp1_started = started;
  if (!started) lost("AP 1 does not run suite code: %s", why);
  return started;
}

bool begin_call(uint32_t* seq, void (*fn)(void*), void* arg) {
  if (g_ap_lost) return false;
  g_box.call = fn;
  g_box.call_arg = arg;
  *seq = send(kCmdCall);
  if (wait_for(g_box.waiting, *seq, g_answer)) return true;
  lost("%s", ap_silence("waiting for VP 1 to start a call"));
  return false;
}

bool end_call(uint32_t seq) {
  st(g_box.abort, 1u);
  if (wait_for(g_box.done, seq, g_answer)) return true;
  lost("%s", ap_silence("waiting for VP 1's call to return"));
  return false;
}

uint32_t send(Cmd cmd, uint8_t vector, uint32_t target, uint64_t ticks, uint64_t quiet, bool halt) {
  Box& b = g_box;
  b.cmd = cmd;
  b.vector = vector;
  b.target = target;
  b.ticks = ticks;
  b.quiet = quiet;
  b.halt = halt;
  st(b.abort, 0u);
  const uint32_t seq = ++g_seq;
  st(b.seq, seq);
  return seq;
}

bool wait_for(const uint32_t& field, uint32_t seq, uint64_t ticks) {
  const uint64_t t0 = rdtsc();
  while (rdtsc() - t0 < ticks) {
    if (ld(field) == seq) return true;
    cpu_pause();
  }
  return ld(field) == seq;
}

// Waits for request `seq` to finish; a halted or spinning wait that runs
// over is aborted (with a wake-up IPI) before VP 1 is given up.
bool finish(uint32_t seq, uint64_t ticks, const char* what) {
  if (wait_for(g_box.done, seq, ticks)) return true;
  st(g_box.abort, 1u);
  send_ipi(kAp, kVecWake);
  if (wait_for(g_box.done, seq, g_answer)) return true;
  lost("%s", ap_silence(what));
  return false;
}

bool run(Cmd cmd, const char* what) {
  if (g_ap_lost) return false;
  return finish(send(cmd), g_answer, what);
}

// Starts a wait on VP 1 for one more interrupt on `vector` and returns once
// VP 1 is in its wait loop (false if it never got there).
bool begin_wait(uint32_t* seq, uint8_t vector, uint32_t target, uint64_t ticks, uint64_t quiet,
                bool halt, Cmd cmd) {
  if (g_ap_lost) return false;
  *seq = send(cmd, vector, target, ticks, quiet, halt);
  if (wait_for(g_box.waiting, *seq, g_answer)) return true;
  if (ld(g_box.done) == *seq) return true;  // finished already (e.g. EOM failed)
  lost("%s", ap_silence("waiting for VP 1 to enter its wait loop"));
  return false;
}

// A spinning wait ends by itself after ticks + quiet; a halted one is ended
// by finish() after as long.
bool end_wait(uint32_t seq, uint64_t ticks, uint64_t quiet) {
  return finish(seq, ticks + quiet + g_answer, "waiting for VP 1's wait to end");
}

volatile tlfs::Message* ap_slot(uint8_t sint) {
  return reinterpret_cast<volatile tlfs::Message*>(env.cpu[kAp].sim + sint * tlfs::kMessageSize);
}

bool bsp_slot_empty() {
  return sim_slot(kSintMsg)->message_type == tlfs::kMessageTypeNone;
}

void clear_bsp_slot() {
  for (int i = 0; i < 20 && !bsp_slot_empty(); ++i) clear_slot_and_eom(kSintMsg, true);
}

// Frees VP 1's SINT3 slot (on VP 1: clear + EOM) and absorbs what follows.
void clear_ap_slot() {
  for (int i = 0; i < 20 && !g_ap_lost && ap_slot(kSintMsg)->message_type != tlfs::kMessageTypeNone;
       ++i) {
    uint32_t seq = 0;
    if (!begin_wait(&seq, kVecMsg, irq_count_on(kAp, kVecMsg) + 1, g_quiet, 0, false,
                    kCmdClearEomWait)) {
      return;
    }
    end_wait(seq, g_quiet, 0);
  }
}

void fail_rest(const char* const* names, size_t n, const char* why) {
  for (size_t i = 0; i < n; ++i) fail(names[i], "%s", why);
}

// "N ticks after VP 0's call began (M after it returned)" for a NOTE.
const char* latency(uint64_t began, uint64_t returned, uint64_t irq, char* buf, size_t cap) {
  if (irq < began) {
    microhv::format(buf, cap, "without an interrupt after the call");
  } else if (irq < returned) {
    microhv::format(buf, cap, "%lu ticks after VP 0's call began (before it returned)",
                    irq - began);
  } else {
    microhv::format(buf, cap, "%lu ticks after VP 0's call began, %lu after it returned",
                    irq - began, irq - returned);
  }
  return buf;
}

Delivery post_to_vp1(uint32_t conn, uint32_t seq_no, bool halt) {
  Delivery d{};
  const uint32_t ap0 = irq_count_on(kAp, kVecMsg);
  const uint32_t bsp0 = irq_count(kVecMsg);
  uint32_t seq = 0;
  d.ap_ready = begin_wait(&seq, kVecMsg, ap0 + 1, g_expect, g_quiet, halt);
  if (!d.ap_ready) return d;
  // Let a halting VP 1 reach hlt before the post (10 ms).
  if (halt) {
    const uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < g_quiet / 10) cpu_pause();
  }
  d.post_tsc = rdtsc();
  d.post = post_message(conn, kTypeSmp + seq_no, 24, static_cast<uint8_t>(0x70 + seq_no));
  d.posted_tsc = rdtsc();
  d.finished = end_wait(seq, g_expect, g_quiet);
  d.irq_tsc = irq_tsc_on(kAp, kVecMsg);
  // A stray delivery to VP 0 would show here (interrupts enabled briefly).
  d.bsp_irqs = wait_irq(kVecMsg, bsp0 + 1, kSpinQuiet) - bsp0;
  d.ap_irqs = irq_count_on(kAp, kVecMsg) - ap0;
  d.wakeups = g_box.wakeups;
  d.halt_tsc = g_box.halt_tsc;
  d.in_ap_slot = slot_matches_in(env.cpu[kAp].sim, kSintMsg, kTypeSmp + seq_no, 24,
                                 static_cast<uint8_t>(0x70 + seq_no), d.why, sizeof(d.why));
  d.in_bsp_slot = !bsp_slot_empty();
  return d;
}

bool make_port(uint32_t port, uint32_t conn, tlfs::PortType type, uint8_t sint, uint32_t vp,
               uint16_t base, uint16_t count, char* why, size_t cap) {
  char got[128];
  HvResult r = create_port(port, type, sint, vp, base, count);
  if (!is_status(r, Status::kSuccess)) {
    microhv::format(why, cap, "CreatePort 0x%x (VP 0x%x): %s", port, vp,
                    describe(r, got, sizeof(got)));
    return false;
  }
  r = connect_port(conn, port, type);
  if (!is_status(r, Status::kSuccess)) {
    microhv::format(why, cap, "ConnectPort 0x%x -> 0x%x: %s", conn, port,
                    describe(r, got, sizeof(got)));
    return false;
  }
  return true;
}

}  // namespace guest::smp

namespace guest {

void stop_vp1() {
  using namespace smp;
  if (g_vp1_started && !g_ap_lost) run(kCmdExit, "exit");
  g_vp1_started = false;
}

}  // namespace guest
