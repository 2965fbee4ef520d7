// Demo mode (load option --demo): what `make run` shows when the host has no
// VT-x. The guest sets up its SynIC, creates two message ports ("ping" on
// SINT3, AutoEOI; "pong" on SINT5, EOI through the local APIC) and an event
// port ("bell" on SINT4), and exchanges a few messages with itself through
// microhv, printing one line per step on COM1:
//
//   demo: post   #1 conn 0x2001 (ping) type 0x4d560101, 6 bytes "ping 1" -> SUCCESS
//   demo: irq    #1 vector 0x50 (SINT3, AutoEOI) -> handler count 1
//   demo: arrive #1 SINT3 slot: type 0x4d560101, 6 bytes "ping 1", MessagePending 0
//   demo: eom    #1 SINT3 slot freed, EOM written
//
// then a busy-slot round (a second ping while the first is still in the slot:
// queued, MessagePending, delivered on EOM) and one SignalEvent, and ends
// with "demo: done (N messages, M interrupts)" and a shutdown. Any step that
// does not behave ends with "demo: FAILED: ..." instead. Without a Hyper-V
// interface (no microhv below) it says so and shuts down.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr uint32_t kTypePing = 0x4D560101;  // guest message types: nonzero, MSB clear
constexpr uint32_t kTypePong = 0x4D560102;
constexpr uint16_t kBellFlag = 3;
constexpr unsigned kRounds = 3;  // ping-pong rounds (--rounds=N, 1..20)

unsigned g_messages;  // messages that arrived in a slot

void sayf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void sayf(const char* fmt, ...) {
  char text[320];
  va_list args;
  va_start(args, fmt);
  microhv::format(text, sizeof(text), fmt, args);
  va_end(args);
  char out[340];
  microhv::format(out, sizeof(out), "demo: %s", text);
  say(out);
}

[[noreturn]] void failed(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void failed(const char* fmt, ...) {
  char text[320];
  va_list args;
  va_start(args, fmt);
  microhv::format(text, sizeof(text), fmt, args);
  va_end(args);
  sayf("FAILED: %s", text);
  shutdown();
}

size_t length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// Payload bytes as a quoted string; bytes outside printable ASCII as \xNN.
const char* quoted(const volatile uint8_t* p, size_t n, char* buf, size_t cap) {
  size_t o = 0;
  auto put = [&](char c) {
    if (o + 1 < cap) buf[o++] = c;
  };
  put('"');
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = p[i];
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      put(static_cast<char>(c));
    } else {
      static const char kHex[] = "0123456789abcdef";
      put('\\');
      put('x');
      put(kHex[c >> 4]);
      put(kHex[c & 15]);
    }
  }
  put('"');
  buf[o] = '\0';
  return buf;
}

const char* result_text(const HvResult& r, char* buf, size_t cap) {
  if (r.ran && !r.fault.faulted && (r.rax >> 16) == 0) {
    return status_text(static_cast<uint16_t>(r.rax));
  }
  return describe(r, buf, cap);
}

struct Sint {
  uint8_t sint, vector;
  bool auto_eoi;
};
constexpr Sint kPingSint{kSintMsg, kVecMsg, true};
constexpr Sint kPongSint{kSintNoAuto, kVecNoAuto, false};

struct Port {
  const char* name;
  uint32_t port, conn;
  Sint target;
};
constexpr Port kPing{"ping", kPortMsg, kConnMsg, kPingSint};
constexpr Port kPong{"pong", kPortNoAuto, kConnNoAuto, kPongSint};

uint32_t total_interrupts() {
  return irq_count(kVecMsg) + irq_count(kVecEvt) + irq_count(kVecNoAuto);
}

// ------------------------------------------------------------------ steps
HvResult post_text(const Port& to, uint32_t type, const char* text, unsigned seq,
                   const char* remark = "") {
  tlfs::PostMessageInput in{};
  in.connection_id = to.conn;
  in.message_type = type;
  size_t n = length(text);
  in.payload_size = static_cast<uint32_t>(n);
  memcpy(in.payload, text, n);
  HvResult r = hypercall_in(tlfs::CallCode::kPostMessage, &in, sizeof(in));
  char q[64], st[128];
  sayf("post   #%u conn 0x%x (%s) type 0x%x, %u bytes %s -> %s%s", seq, to.conn, to.name, type,
       static_cast<unsigned>(n), quoted(in.payload, n, q, sizeof(q)),
       result_text(r, st, sizeof(st)), remark);
  if (!is_status(r, Status::kSuccess)) failed("PostMessage to 0x%x did not succeed", to.conn);
  return r;
}

// Waits for the interrupt that announces the next message (or event) on `s`.
void expect_interrupt(const Sint& s, uint32_t before, const char* tag) {
  uint32_t now = wait_irq(s.vector, before + 1, kSpinExpect);
  if (now == before) {
    failed("no interrupt on vector 0x%x (SINT%u) within %lu spins with IF=1", s.vector, s.sint,
           static_cast<unsigned long>(kSpinExpect));
  }
  sayf("irq    %svector 0x%x (SINT%u, %s) -> handler count %u", tag, s.vector, s.sint,
       s.auto_eoi ? "AutoEOI" : "no AutoEOI: handler wrote the local APIC EOI", now);
}

// "type 0x.., N bytes "text", MessagePending P" of the slot of `s`.
const char* slot_text(const Sint& s, char* buf, size_t cap) {
  volatile tlfs::Message* m = sim_slot(s.sint);
  uint32_t got_size = m->payload_size;
  size_t shown = got_size < tlfs::kMaxPayload ? got_size : tlfs::kMaxPayload;
  char q[200];
  microhv::format(buf, cap, "type 0x%x, %u bytes %s, MessagePending %u",
                  static_cast<unsigned>(m->message_type), got_size,
                  quoted(m->payload, shown, q, sizeof(q)),
                  m->message_flags & tlfs::kMessageFlagPending);
  return buf;
}

// The slot of `s` must hold `type` / `text` with the given MessagePending state.
void check_slot(const Sint& s, uint32_t type, const char* text, bool pending) {
  volatile tlfs::Message* m = sim_slot(s.sint);
  uint32_t got_type = m->message_type;
  uint32_t got_size = m->payload_size;
  uint8_t flags = m->message_flags;
  size_t n = length(text);
  bool same = got_type == type && got_size == n;
  for (size_t i = 0; same && i < n; ++i) same = m->payload[i] == static_cast<uint8_t>(text[i]);
  if (!same) failed("SINT%u slot: expected type 0x%x \"%s\"", s.sint, type, text);
  if (((flags & tlfs::kMessageFlagPending) != 0) != pending) {
    failed("SINT%u slot: MessagePending expected %u", s.sint, pending ? 1u : 0u);
  }
}

void expect_arrival(const Sint& s, uint32_t type, const char* text, bool pending, const char* tag) {
  char slot[280];
  sayf("arrive %sSINT%u slot: %s", tag, s.sint, slot_text(s, slot, sizeof(slot)));
  check_slot(s, type, text, pending);
  ++g_messages;
}

void free_slot(const Sint& s, const char* tag, const char* what) {
  sim_slot(s.sint)->message_type = tlfs::kMessageTypeNone;
  asm volatile("mfence" ::: "memory");
  Fault f = wrmsr(tlfs::msr::kEom, 0);
  if (f.faulted) failed("wrmsr EOM raised %s", vector_name(f.vector));
  sayf("eom    %sSINT%u slot freed, EOM written%s", tag, s.sint, what);
}

// One message from posting to freeing its slot.
void exchange(const Port& to, uint32_t type, const char* text) {
  unsigned seq = g_messages + 1;
  char tag[8];
  microhv::format(tag, sizeof(tag), "#%u ", seq);
  uint32_t before = irq_count(to.target.vector);
  post_text(to, type, text, seq);
  expect_interrupt(to.target, before, tag);
  expect_arrival(to.target, type, text, false, tag);
  free_slot(to.target, tag, "");
}

void create_and_connect(const char* name, uint32_t port, uint32_t conn, tlfs::PortType type,
                        uint8_t sint, uint16_t base_flag, uint16_t flag_count) {
  char st1[128], st2[128];
  HvResult c = create_port(port, type, sint, 0, base_flag, flag_count);
  HvResult k = is_status(c, Status::kSuccess) ? connect_port(conn, port, type) : HvResult{};
  char kind[48];
  if (type == tlfs::PortType::kEvent) {
    microhv::format(kind, sizeof(kind), "event, SINT%u, flags %u..%u", sint, base_flag,
                    base_flag + flag_count - 1);
  } else {
    microhv::format(kind, sizeof(kind), "message, SINT%u", sint);
  }
  sayf("port   %s: CreatePort 0x%x (%s, VP 0) -> %s; ConnectPort 0x%x -> 0x%x -> %s", name, port,
       kind, result_text(c, st1, sizeof(st1)), conn, port,
       k.ran ? result_text(k, st2, sizeof(st2)) : "not tried");
  if (!is_status(c, Status::kSuccess) || !is_status(k, Status::kSuccess)) {
    failed("setting up port \"%s\" did not succeed", name);
  }
}

uint64_t read_msr(uint32_t msr, const char* name) {
  MsrResult r = rdmsr(msr);
  if (r.fault.faulted) failed("rdmsr %s raised %s", name, vector_name(r.fault.vector));
  return r.value;
}

}  // namespace

void run_demo() {
  const unsigned rounds = static_cast<unsigned>(option_number("--rounds=", kRounds, 1, 20));
  sayf("microhv SynIC demo: messages and an event between ports of this virtual processor");

  char why[160];
  if (!detect_hyperv(why, sizeof(why))) {
    sayf("no Hyper-V interface present (%s)", why);
    sayf(
        "this guest is not running above microhv (or another Hyper-V hypervisor): nothing to "
        "show; shutting down");
    shutdown();
  }
  {
    Cpuid v = cpuid(tlfs::cpuid::kVendorLeaf);
    char vendor[13];
    memcpy(vendor + 0, &v.ebx, 4);
    memcpy(vendor + 4, &v.ecx, 4);
    memcpy(vendor + 8, &v.edx, 4);
    vendor[12] = '\0';
    sayf("cpuid  hypervisor \"%s\", max leaf 0x%x, interface \"Hv#1\"", vendor, v.eax);
  }

  // Hypercall page and SynIC (the suite's fixtures).
  if (!ensure_hypercall()) failed("hypercall page: %s", fixture_error());
  {
    const uint8_t* p = env.hypercall_page;
    sayf("setup  GUEST_OS_ID 0x%lx, HYPERCALL 0x%lx: page holds %02x %02x %02x %02x (vmcall; ret)",
         read_msr(tlfs::msr::kGuestOsId, "GUEST_OS_ID"),
         read_msr(tlfs::msr::kHypercall, "HYPERCALL"), p[0], p[1], p[2], p[3]);
  }
  if (!ensure_synic()) failed("SynIC: %s", fixture_error());
  sayf("setup  SIMP 0x%lx, SIEFP 0x%lx, SCONTROL 0x%lx", read_msr(tlfs::msr::kSimp, "SIMP"),
       read_msr(tlfs::msr::kSiefp, "SIEFP"), read_msr(tlfs::msr::kScontrol, "SCONTROL"));
  sayf("setup  SINT%u = 0x%05lx: vector 0x%x, AutoEOI                   -> ping messages", kSintMsg,
       read_msr(tlfs::msr::kSint0 + kSintMsg, "SINT3"), kVecMsg);
  sayf("setup  SINT%u = 0x%05lx: vector 0x%x, AutoEOI                   -> bell events", kSintEvt,
       read_msr(tlfs::msr::kSint0 + kSintEvt, "SINT4"), kVecEvt);
  sayf("setup  SINT%u = 0x%05lx: vector 0x%x, handler EOIs the local APIC -> pong messages",
       kSintNoAuto, read_msr(tlfs::msr::kSint0 + kSintNoAuto, "SINT5"), kVecNoAuto);

  create_and_connect(kPing.name, kPing.port, kPing.conn, tlfs::PortType::kMessage, kSintMsg, 0, 0);
  create_and_connect(kPong.name, kPong.port, kPong.conn, tlfs::PortType::kMessage, kSintNoAuto, 0,
                     0);
  create_and_connect("bell", kPortEvt, kConnEvt, tlfs::PortType::kEvent, kSintEvt, kEvtBaseFlag,
                     kEvtFlagCount);
  for (uint8_t s = 0; s < 16; ++s) {
    if (sim_slot(s)->message_type != tlfs::kMessageTypeNone) failed("SIM slot %u is not empty", s);
  }

  // Ping-pong: each ping is answered with a pong once it has been read.
  sayf("--- ping-pong: %u rounds", rounds);
  for (unsigned i = 1; i <= rounds; ++i) {
    char text[16];
    microhv::format(text, sizeof(text), "ping %u", i);
    exchange(kPing, kTypePing, text);
    microhv::format(text, sizeof(text), "pong %u", i);
    exchange(kPong, kTypePong, text);
  }

  // Busy slot: a second ping while the first still occupies the slot.
  sayf("--- busy slot: a second ping before the first is freed");
  {
    const Sint& s = kPingSint;
    char a[16], b[16], tag_a[8], tag_b[8], slot[280];
    microhv::format(a, sizeof(a), "ping %u", rounds + 1);
    microhv::format(b, sizeof(b), "ping %u", rounds + 2);
    unsigned seq_a = g_messages + 1, seq_b = g_messages + 2;
    microhv::format(tag_a, sizeof(tag_a), "#%u ", seq_a);
    microhv::format(tag_b, sizeof(tag_b), "#%u ", seq_b);
    uint32_t before = irq_count(s.vector);
    post_text(kPing, kTypePing, a, seq_a);
    expect_interrupt(s, before, tag_a);
    expect_arrival(s, kTypePing, a, false, tag_a);
    post_text(kPing, kTypePing, b, seq_b, " (slot busy: queued)");
    uint32_t now = wait_irq(s.vector, before + 2, kSpinQuiet);
    sayf("wait   %sno interrupt (handler count still %u); SINT%u slot keeps #%u: %s", tag_b, now,
         s.sint, seq_a, slot_text(s, slot, sizeof(slot)));
    if (now != before + 1) failed("an interrupt for a message queued behind a busy slot");
    check_slot(s, kTypePing, a, true);
    free_slot(s, tag_a, " (MessagePending was set: microhv delivers the queued message)");
    expect_interrupt(s, before + 1, tag_b);
    expect_arrival(s, kTypePing, b, false, tag_b);
    free_slot(s, tag_b, "");
  }

  // One event: SignalEvent sets a SIEF flag and interrupts SINT4.
  sayf("--- event: SignalEvent on the bell port");
  {
    volatile uint8_t* flags = sief_flags(kSintEvt);
    const unsigned bit = kEvtBaseFlag + kBellFlag;
    uint32_t before = irq_count(kVecEvt);
    HvResult r = signal_event(kConnEvt, kBellFlag, false);
    char st[128];
    sayf("signal conn 0x%x (bell) flag %u -> %s", kConnEvt, kBellFlag,
         result_text(r, st, sizeof(st)));
    if (!is_status(r, Status::kSuccess)) failed("SignalEvent did not succeed");
    expect_interrupt(Sint{kSintEvt, kVecEvt, true}, before, "");
    bool set = (flags[bit / 8] & (1u << (bit % 8))) != 0;
    unsigned others = 0;
    for (unsigned i = 0; i < tlfs::kFlagsPerSint / 8; ++i) {
      uint8_t byte = flags[i];
      if (i == bit / 8) byte = static_cast<uint8_t>(byte & ~(1u << (bit % 8)));
      others += static_cast<unsigned>(__builtin_popcount(byte));
    }
    sayf(
        "flags  SIEF SINT%u: flag %u %s (port base %u + flag %u), %u other flags; guest clears "
        "it",
        kSintEvt, bit, set ? "set" : "NOT set", kEvtBaseFlag, kBellFlag, others);
    if (!set || others != 0) failed("SIEF flags of SINT%u are not as expected", kSintEvt);
    flags[bit / 8] = static_cast<uint8_t>(flags[bit / 8] & ~(1u << (bit % 8)));
  }

  sayf("done (%u messages, %u interrupts)", g_messages, total_interrupts());
  shutdown();
}

}  // namespace guest
