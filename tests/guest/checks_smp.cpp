// Group "smp": delivery across virtual processors. Needs >= 2 CPUs (MP
// services); with one CPU every check prints a SKIP line.
//
// VP index = MP-services processor number: the BSP is VP 0, AP 1 is VP 1.
// The BSP starts AP 1 once (StartupThisAP without waiting) in a command loop
// on our IDT; the BSP sends it commands through a mailbox (program its
// SynIC, read VP_INDEX, wait for a SINT interrupt spinning with IF=1 or in
// `sti; hlt`, free its SIM slot + EOM, exit) and bounds every wait in TSC
// ticks (tsc_hz(): a wait for a delivery ends early, at most 2 s; "nothing
// more" windows are 100 ms): a timeout is a FAIL line, never a hang. A
// halted VP 1 whose wait runs over is woken with an IPI (vector 0x56). The AP never prints; the BSP
// reads the AP's SIM and SIEF pages and its per-CPU interrupt counts directly.
//
// Ports (PortPartition = ConnectionPartition = SELF):
//   0x1011 message, SINT3, VP 1        connection 0x2011
//   0x1012 event,   SINT4, VP 1, flags 0..15   connection 0x2012
//   0x1013 message, SINT3, HV_ANY_VP   connection 0x2013
// VP 1 programs SINT3 = 0x50 and SINT4 = 0x51 (AutoEOI), like VP 0.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr unsigned kAp = 1;
constexpr uint8_t kVecWake = kIrqBase + 6;  // IPI that ends a halted wait on timeout
constexpr uint32_t kPortVp1 = 0x1011, kConnVp1 = 0x2011;
constexpr uint32_t kPortEvtVp1 = 0x1012, kConnEvtVp1 = 0x2012;
constexpr uint32_t kPortAny = 0x1013, kConnAny = 0x2013;
constexpr uint16_t kEvtFlag = 5;  // of flags 0..15
constexpr uint32_t kTypeSmp = 0x4D560500;

constexpr const char* kStarted = "smp-ap-runs-suite-code";
constexpr const char* kVpIndex = "smp-vp-index-per-cpu";
constexpr const char* kApSynic = "smp-ap-synic-setup";
constexpr const char* kPorts = "smp-ports-target-vp1";
constexpr const char* kSpinOk = "smp-post-to-spinning-vp1-success";
constexpr const char* kSpinSlot = "smp-post-to-spinning-vp1-lands-in-vp1-slot";
constexpr const char* kSpinIrq = "smp-post-to-spinning-vp1-interrupts-vp1-once";
constexpr const char* kHaltWake = "smp-post-to-halted-vp1-wakes-it";
constexpr const char* kHaltIrq = "smp-post-to-halted-vp1-interrupts-vp1-once";
constexpr const char* kEvtFlagSet = "smp-signal-event-vp1-flag-in-vp1-sief";
constexpr const char* kEvtIrq = "smp-signal-event-vp1-interrupts-vp1-once";
constexpr const char* kBusyPending = "smp-busy-slot-vp1-message-pending";
constexpr const char* kBusyEom = "smp-busy-slot-vp1-eom-on-vp1-delivers-next";
constexpr const char* kAnyOk = "smp-any-vp-post-with-vp0-synic-disabled-success";
constexpr const char* kAnyVp1 = "smp-any-vp-post-with-vp0-synic-disabled-goes-to-vp1";
const char* const kAll[] = {kStarted,  kVpIndex,     kApSynic,  kPorts,   kSpinOk,
                            kSpinSlot, kSpinIrq,     kHaltWake, kHaltIrq, kEvtFlagSet,
                            kEvtIrq,   kBusyPending, kBusyEom,  kAnyOk,   kAnyVp1};

// ------------------------------------------------------------------ mailbox
enum Cmd : uint32_t { kCmdSetup = 1, kCmdVpIndex, kCmdWait, kCmdClearEomWait, kCmdExit };

struct Box {
  // Request (written by the BSP before it bumps seq).
  uint32_t cmd;
  uint8_t vector;
  uint32_t target;  // wait until irq_count(vector) >= target ...
  uint64_t ticks;   // ... at most this many TSC ticks (spinning; a halted
                    // wait ends on the target or the BSP's abort) ...
  uint64_t quiet;   // ... then this many more, to catch a duplicate
  bool halt;        // wait in `sti; hlt` instead of spinning
  // Control.
  uint32_t seq;      // BSP: request number
  uint32_t done;     // AP: number of the last finished request
  uint32_t waiting;  // AP: number of the request whose wait loop has begun
  uint32_t abort;    // BSP: stop waiting now
  uint32_t running;  // AP: in the loop
  // Results (valid once done == seq).
  bool ok;
  uint64_t value;
  uint32_t count;    // irq_count(vector) at the end of the wait
  uint32_t wakeups;  // returns from hlt
  uint64_t halt_tsc;
  char why[200];
};
Box g_box;
uint32_t g_seq;
bool g_ap_lost;  // a request was never answered: later ones fail at once
char g_lost_why[240];

template <typename T>
T ld(const T& x) {
  return __atomic_load_n(&x, __ATOMIC_SEQ_CST);
}
template <typename T>
void st(T& x, T v) {
  __atomic_store_n(&x, v, __ATOMIC_SEQ_CST);
}

// ------------------------------------------------------------------ AP side
void ap_setup_synic(Box& b) {
  const CpuPages& p = env.cpu[kAp];
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
  b.ok = true;
  for (const W& w : writes) {
    Fault f = wrmsr(w.msr, w.value);
    MsrResult r = rdmsr(w.msr);
    if (f.faulted || r.fault.faulted || r.value != w.value) {
      microhv::format(b.why, sizeof(b.why), "on VP 1: wrmsr %s=0x%lx %s, reads 0x%lx%s", w.name,
                      w.value, f.faulted ? vector_name(f.vector) : "ok", r.value,
                      r.fault.faulted ? " (rdmsr faulted)" : "");
      b.ok = false;
      return;
    }
  }
  for (uint8_t s = 0; s < 16; ++s) {
    reinterpret_cast<volatile tlfs::Message*>(p.sim + s * tlfs::kMessageSize)->message_type =
        tlfs::kMessageTypeNone;
  }
  memset(p.sief, 0, 4096);
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
uint64_t g_expect;  // a wait for something that should happen: 2 s, ends early
uint64_t g_quiet;   // a window in which nothing more may happen: 100 ms
uint64_t g_answer;  // VP 1 answering a request: 1 s

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
uint32_t send(Cmd cmd, uint8_t vector = 0, uint32_t target = 0, uint64_t ticks = 0,
              uint64_t quiet = 0, bool halt = false) {
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
                bool halt, Cmd cmd = kCmdWait) {
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

// Posts to connection `conn` while VP 1 waits (spinning or halted) for one
// more SINT3 interrupt. Fills the results for the checks.
struct Delivery {
  HvResult post;
  bool ap_ready;  // VP 1 entered its wait
  bool finished;  // VP 1 answered
  uint32_t ap_irqs, bsp_irqs;
  uint32_t wakeups;
  uint64_t halt_tsc, post_tsc, posted_tsc, irq_tsc;
  bool in_ap_slot, in_bsp_slot;
  char why[160];
};

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

}  // namespace

void group_smp() {
  constexpr size_t kCount = sizeof(kAll) / sizeof(kAll[0]);
  if (mp_cpu_count() < 2) {
    char why[200];
    microhv::format(why, sizeof(why), "needs 2 CPUs (%s)", mp_note());
    for (const char* n : kAll) skip(n, why);
    return;
  }
  note("smp: %s", mp_note());
  if (!ensure_hypercall() || !ensure_synic()) {
    char why[200];
    microhv::format(why, sizeof(why), "prerequisite: %s", fixture_error());
    fail_rest(kAll, kCount, why);
    return;
  }
  char got[128], why[200] = "";
  set_non_auto_eoi(kVecWake, true);  // a real IPI: the handler EOIs the local APIC
  g_expect = 2 * tsc_hz();
  g_quiet = tsc_hz() / 10;
  g_answer = tsc_hz();

  // Start VP 1 in the command loop.
  {
    g_box = Box{};
    bool started = mp_start_ap(kAp, ap_main, nullptr, why, sizeof(why));
    cli();  // the boot service may have enabled interrupts
    if (started && !wait_for(g_box.running, 1u, 5 * g_answer)) {
      microhv::format(why, sizeof(why), "%s", ap_silence("StartupThisAP returned"));
      started = false;
    }
    if (!check(kStarted, started, "%s", why)) {
      microhv::format(why, sizeof(why), "prerequisite: AP 1 does not run suite code");
      fail_rest(kAll + 1, kCount - 1, why);
      return;
    }
  }

  // VP_INDEX per CPU.
  {
    MsrResult bsp = rdmsr(tlfs::msr::kVpIndex);
    bool ran = run(kCmdVpIndex, "rdmsr VP_INDEX on VP 1");
    char ap[220];
    if (!ran) {
      microhv::format(ap, sizeof(ap), "no answer (%s)", g_lost_why);
    } else if (!g_box.ok) {
      microhv::format(ap, sizeof(ap), "%s", g_box.why);
    } else {
      microhv::format(ap, sizeof(ap), "0x%lx", g_box.value);
    }
    check(kVpIndex, ran && g_box.ok && !bsp.fault.faulted && bsp.value == 0 && g_box.value == kAp,
          "VP_INDEX: on the BSP (processor 0) %s0x%lx (expected 0), on AP 1 %s (expected 1)",
          bsp.fault.faulted ? "faulted, " : "", bsp.value, ap);
  }

  // VP 1's SynIC and the ports.
  bool setup = run(kCmdSetup, "programming VP 1's SynIC");
  check(kApSynic, setup && g_box.ok, "%s", setup ? g_box.why : g_lost_why);
  bool ports = make_port(kPortVp1, kConnVp1, tlfs::PortType::kMessage, kSintMsg, kAp, 0, 0, why,
                         sizeof(why)) &&
               make_port(kPortEvtVp1, kConnEvtVp1, tlfs::PortType::kEvent, kSintEvt, kAp, 0, 16,
                         why, sizeof(why));
  check(kPorts, ports, "%s", why);
  if (!setup || !g_box.ok || !ports) {
    microhv::format(why, sizeof(why), "prerequisite: %s",
                    !setup || !g_box.ok ? "VP 1's SynIC setup failed" : "ports targeting VP 1");
    fail_rest(kAll + 4, kCount - 4, why);
    if (!g_ap_lost) run(kCmdExit, "exit");
    return;
  }
  clear_bsp_slot();

  // A post from VP 0 to a port on VP 1 while VP 1 spins with IF=1.
  {
    Delivery d = post_to_vp1(kConnVp1, 1, false);
    if (!d.ap_ready) {
      fail_rest(kAll + 4, 3, g_lost_why);
    } else {
      char lat[120];
      note("%s: VP 1's handler ran %s (TSC)", kSpinIrq,
           latency(d.post_tsc, d.posted_tsc, d.irq_tsc, lat, sizeof(lat)));
      check_status(kSpinOk, d.post, Status::kSuccess, "PostMessage to 0x2011 (port on VP 1)");
      check(kSpinSlot, d.in_ap_slot && !d.in_bsp_slot, "%s%s", d.in_ap_slot ? "" : d.why,
            d.in_bsp_slot ? "; the message (or another) is in VP 0's SIM slot 3" : "");
      check(kSpinIrq, d.finished && d.ap_irqs == 1 && d.bsp_irqs == 0,
            "interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)%s%s", kVecMsg,
            d.ap_irqs, d.bsp_irqs, d.finished ? "" : "; ", d.finished ? "" : g_lost_why);
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  // The same with VP 1 halted (`sti; hlt`): the delivery must wake it.
  {
    Delivery d = post_to_vp1(kConnVp1, 2, true);
    if (!d.ap_ready) {
      fail_rest(kAll + 7, 2, g_lost_why);
    } else {
      char lat[120];
      note(
          "%s: VP 1 entered hlt at TSC %lu, VP 0 posted at TSC %lu; VP 1 returned from hlt %u "
          "time(s); its handler ran %s",
          kHaltWake, d.halt_tsc, d.post_tsc, d.wakeups,
          latency(d.post_tsc, d.posted_tsc, d.irq_tsc, lat, sizeof(lat)));
      char got2[128];
      check(kHaltWake,
            d.finished && is_status(d.post, Status::kSuccess) && d.in_ap_slot && d.ap_irqs >= 1,
            "PostMessage %s; VP 1 %s; message %s%s", describe(d.post, got2, sizeof(got2)),
            d.finished ? (d.ap_irqs >= 1 ? "woke with the interrupt"
                                         : "was not interrupted (its "
                                           "wait was ended by our IPI)")
                       : g_lost_why,
            d.in_ap_slot ? "in VP 1's slot" : "missing: ", d.in_ap_slot ? "" : d.why);
      check(kHaltIrq, d.finished && d.ap_irqs == 1 && d.bsp_irqs == 0,
            "interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)", kVecMsg, d.ap_irqs,
            d.bsp_irqs);
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  // SignalEvent from VP 0 to an event port on VP 1.
  {
    memset(env.cpu[kAp].sief, 0, 4096);
    memset(env.sief, 0, 4096);
    const uint32_t ap0 = irq_count_on(kAp, kVecEvt);
    const uint32_t bsp0 = irq_count(kVecEvt);
    uint32_t seq = 0;
    if (!begin_wait(&seq, kVecEvt, ap0 + 1, g_expect, g_quiet, false)) {
      fail_rest(kAll + 9, 2, g_lost_why);
    } else {
      const uint64_t began = rdtsc();
      HvResult r = signal_event(kConnEvtVp1, kEvtFlag, false);
      const uint64_t returned = rdtsc();
      bool finished = end_wait(seq, g_expect, g_quiet);
      char lat[120];
      note("%s: VP 1's handler ran %s", kEvtIrq,
           latency(began, returned, irq_tsc_on(kAp, kVecEvt), lat, sizeof(lat)));
      uint32_t bsp = wait_irq(kVecEvt, bsp0 + 1, kSpinQuiet) - bsp0;
      uint32_t ap = irq_count_on(kAp, kVecEvt) - ap0;
      // The only set bit of VP 1's SIEF page must be SINT4's flag 5.
      int found = -1, bits = 0;
      for (int i = 0; i < 4096 * 8; ++i) {
        if ((env.cpu[kAp].sief[i / 8] >> (i % 8)) & 1) {
          found = i;
          ++bits;
        }
      }
      bool bsp_clean = true;
      for (int i = 0; i < 4096; ++i) bsp_clean = bsp_clean && env.sief[i] == 0;
      const int want = kSintEvt * 2048 + kEvtFlag;
      check(kEvtFlagSet, is_status(r, Status::kSuccess) && bits == 1 && found == want && bsp_clean,
            "SignalEvent 0x2012 flag %u: %s; VP 1's SIEF: %d bit(s) set, last %d (expected only "
            "bit %d); VP 0's SIEF %s",
            kEvtFlag, describe(r, got, sizeof(got)), bits, found, want,
            bsp_clean ? "clean" : "has a bit set");
      check(kEvtIrq, finished && ap == 1 && bsp == 0,
            "interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)%s", kVecEvt, ap, bsp,
            finished ? "" : g_lost_why);
    }
    memset(env.cpu[kAp].sief, 0, 4096);
    memset(env.sief, 0, 4096);
  }

  // Busy slot on VP 1: message A stays in the slot, B is queued (SUCCESS,
  // MessagePending, no interrupt); VP 1 frees the slot and writes EOM: B
  // arrives with one interrupt.
  {
    Delivery a = post_to_vp1(kConnVp1, 3, false);
    if (!a.ap_ready || !a.finished || !a.in_ap_slot || a.ap_irqs != 1) {
      microhv::format(why, sizeof(why), "prerequisite: message A was not delivered to VP 1 (%s)",
                      g_ap_lost ? g_lost_why : (a.in_ap_slot ? "no interrupt" : a.why));
      fail_rest(kAll + 11, 2, why);
    } else {
      const uint32_t ap0 = irq_count_on(kAp, kVecMsg);
      uint32_t seq = 0;
      // VP 1 watches for an (unwanted) interrupt while B is posted.
      if (!begin_wait(&seq, kVecMsg, ap0 + 1, g_quiet, 0, false)) {
        fail_rest(kAll + 11, 2, g_lost_why);
      } else {
        HvResult rb = post_message(kConnVp1, kTypeSmp + 4, 40, 0x74);
        bool finished = end_wait(seq, g_quiet, 0);
        uint32_t extra = irq_count_on(kAp, kVecMsg) - ap0;
        char wa[160];
        bool keeps_a =
            slot_matches_in(env.cpu[kAp].sim, kSintMsg, kTypeSmp + 3, 24, 0x73, wa, sizeof(wa));
        bool pending = (ap_slot(kSintMsg)->message_flags & tlfs::kMessageFlagPending) != 0;
        check(kBusyPending,
              finished && is_status(rb, Status::kSuccess) && keeps_a && pending && extra == 0,
              "post B to busy VP 1 slot: %s (expected SUCCESS); slot %s; MessagePending %u "
              "(expected 1); interrupts on VP 1 %u (expected 0)",
              describe(rb, got, sizeof(got)), keeps_a ? "keeps A" : wa, pending ? 1u : 0u, extra);
        // VP 1 frees the slot and writes EOM, then waits for B.
        if (!begin_wait(&seq, kVecMsg, ap0 + 1, g_expect, g_quiet, false, kCmdClearEomWait)) {
          fail(kBusyEom, "%s", g_lost_why);
        } else {
          finished = end_wait(seq, g_expect, g_quiet);
          uint32_t irqs = irq_count_on(kAp, kVecMsg) - ap0;
          char wb[160];
          bool has_b =
              slot_matches_in(env.cpu[kAp].sim, kSintMsg, kTypeSmp + 4, 40, 0x74, wb, sizeof(wb));
          bool still_pending = (ap_slot(kSintMsg)->message_flags & tlfs::kMessageFlagPending) != 0;
          check(kBusyEom, finished && has_b && irqs == 1 && !still_pending && bsp_slot_empty(),
                "after VP 1's clear + EOM: %s; interrupts on VP 1 %u (expected 1); "
                "MessagePending %u (expected 0)%s%s",
                has_b ? "B in VP 1's slot" : wb, irqs, still_pending ? 1u : 0u,
                bsp_slot_empty() ? "" : "; VP 0's slot 3 is not empty", finished ? "" : g_lost_why);
        }
      }
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  // HV_ANY_VP: with VP 0's SynIC disabled the message must go to VP 1.
  {
    bool made = make_port(kPortAny, kConnAny, tlfs::PortType::kMessage, kSintMsg, tlfs::kAnyVp, 0,
                          0, why, sizeof(why));
    Fault f = made ? wrmsr(tlfs::msr::kScontrol, 0) : Fault{};
    if (!made || f.faulted) {
      if (f.faulted)
        microhv::format(why, sizeof(why), "wrmsr SCONTROL=0 on VP 0 raised %s",
                        vector_name(f.vector));
      fail(kAnyOk, "setup: %s", why);
      fail(kAnyVp1, "setup: %s", why);
    } else {
      Delivery d = post_to_vp1(kConnAny, 5, false);
      wrmsr(tlfs::msr::kScontrol, 1);
      if (!d.ap_ready) {
        fail_rest(kAll + 13, 2, g_lost_why);
      } else {
        check_status(kAnyOk, d.post, Status::kSuccess,
                     "PostMessage to 0x2013 (HV_ANY_VP port) with SCONTROL=0 on VP 0");
        check(kAnyVp1, d.in_ap_slot && !d.in_bsp_slot && d.ap_irqs == 1 && d.bsp_irqs == 0,
              "%s%s; interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)",
              d.in_ap_slot ? "message in VP 1's slot" : d.why,
              d.in_bsp_slot ? "; VP 0's slot 3 is not empty" : "", kVecMsg, d.ap_irqs, d.bsp_irqs);
      }
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  if (!g_ap_lost) run(kCmdExit, "exit");
}

}  // namespace guest
