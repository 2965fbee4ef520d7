// Guest suite: hypercall wrappers, SIM/SIEF helpers and the fixtures that put
// the partition into the state a check group needs.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {

Env env;

namespace {

char g_fixture_error[160];

void set_fixture_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void set_fixture_error(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  microhv::format(g_fixture_error, sizeof(g_fixture_error), fmt, args);
  va_end(args);
}

struct CallCtx {
  uint64_t control, in, out;
  const uint8_t* page;
  uint64_t rax;
};

// The hypercall page is called like a function: RCX control, RDX input GPA,
// R8 output GPA, result in RAX. The TLFS lets the call clobber the volatile
// registers (RSI/RDI are listed too, to depend on nothing beyond RAX).
void call_page(void* p) {
  auto* c = static_cast<CallCtx*>(p);
  register uint64_t r8 asm("r8") = c->out;
  uint64_t rax = reinterpret_cast<uint64_t>(c->page);
  uint64_t rcx = c->control;
  uint64_t rdx = c->in;
  asm volatile("call *%%rax"
               : "+a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8)
               :
               : "rsi", "rdi", "r9", "r10", "r11", "memory", "cc");
  c->rax = rax;
}

void call_vmcall(void* p) {
  auto* c = static_cast<CallCtx*>(p);
  register uint64_t r8 asm("r8") = c->out;
  uint64_t rax;
  uint64_t rcx = c->control;
  uint64_t rdx = c->in;
  asm volatile("vmcall"
               : "=a"(rax), "+c"(rcx), "+d"(rdx), "+r"(r8)
               :
               : "rsi", "rdi", "r9", "r10", "r11", "memory", "cc");
  c->rax = rax;
}

uint64_t code(tlfs::CallCode c) {
  return static_cast<uint64_t>(c);
}

}  // namespace

const char* fixture_error() {
  return g_fixture_error;
}

// ------------------------------------------------------------------ hypercalls
HvResult hypercall(uint64_t control, uint64_t in_gpa, uint64_t out_gpa, Via via) {
  HvResult r{};
  if (via == Via::kPage && !env.hypercall_ready) {
    r.why = "no hypercall page (HYPERCALL MSR not enabled: prerequisite failed)";
    return r;
  }
  CallCtx ctx{control, in_gpa, out_gpa, env.hypercall_page, ~0ull};
  run_guarded(via == Via::kPage ? call_page : call_vmcall, &ctx, &r.fault);
  r.ran = true;
  r.rax = ctx.rax;
  return r;
}

HvResult hypercall_in(tlfs::CallCode c, const void* input, size_t size, Via via) {
  memset(env.in, 0, 4096);
  memcpy(env.in, input, size);
  return hypercall(code(c), reinterpret_cast<uint64_t>(env.in), reinterpret_cast<uint64_t>(env.out),
                   via);
}

HvResult create_port(uint32_t port_id, tlfs::PortType type, uint8_t sint, uint32_t vp,
                     uint16_t base_flag, uint16_t flag_count) {
  tlfs::CreatePortInput in{};
  in.port_partition = tlfs::kPartitionSelf;
  in.port_id = port_id;
  in.connection_partition = tlfs::kPartitionSelf;
  in.port_info.port_type = static_cast<uint32_t>(type);
  in.port_info.target_sint = sint;
  in.port_info.target_vp = vp;
  in.port_info.base_flag_number = base_flag;
  in.port_info.flag_count = flag_count;
  return hypercall_in(tlfs::CallCode::kCreatePort, &in, sizeof(in));
}

HvResult connect_port(uint32_t connection_id, uint32_t port_id, tlfs::PortType type) {
  tlfs::ConnectPortInput in{};
  in.connection_partition = tlfs::kPartitionSelf;
  in.connection_id = connection_id;
  in.port_partition = tlfs::kPartitionSelf;
  in.port_id = port_id;
  in.connection_info.port_type = static_cast<uint32_t>(type);
  return hypercall_in(tlfs::CallCode::kConnectPort, &in, sizeof(in));
}

HvResult delete_port(uint32_t port_id) {
  tlfs::DeletePortInput in{};
  in.port_partition = tlfs::kPartitionSelf;
  in.port_id = port_id;
  return hypercall_in(tlfs::CallCode::kDeletePort, &in, sizeof(in));
}

HvResult disconnect_port(uint32_t connection_id) {
  tlfs::DisconnectPortInput in{};
  in.connection_partition = tlfs::kPartitionSelf;
  in.connection_id = connection_id;
  return hypercall_in(tlfs::CallCode::kDisconnectPort, &in, sizeof(in));
}

HvResult post_message(uint32_t connection_id, uint32_t type, uint32_t size, uint8_t seed, Via via) {
  tlfs::PostMessageInput in{};
  in.connection_id = connection_id;
  in.message_type = type;
  in.payload_size = size;
  fill_payload(in.payload, size < tlfs::kMaxPayload ? size : tlfs::kMaxPayload, seed);
  return hypercall_in(tlfs::CallCode::kPostMessage, &in, sizeof(in), via);
}

HvResult signal_event(uint32_t connection_id, uint16_t flag, bool fast) {
  tlfs::SignalEventInput in{};
  in.connection_id = connection_id;
  in.flag_number = flag;
  if (!fast) return hypercall_in(tlfs::CallCode::kSignalEvent, &in, sizeof(in));
  uint64_t rdx = static_cast<uint64_t>(connection_id) | (static_cast<uint64_t>(flag) << 32);
  return hypercall(code(tlfs::CallCode::kSignalEvent) | tlfs::control::kFastBit, rdx, 0);
}

const char* status_text(uint16_t s) {
  return tlfs::status_name(static_cast<Status>(s));  // hypercall/tlfs/status.cpp, linked in
}

const char* describe(const HvResult& r, char* buf, size_t cap) {
  if (!r.ran) {
    microhv::format(buf, cap, "%s", r.why);
  } else if (r.fault.faulted) {
    microhv::format(buf, cap, "the hypercall raised %s (error 0x%lx) at rip 0x%lx",
                    vector_name(r.fault.vector), r.fault.error, r.fault.rip);
  } else if ((r.rax >> 16) != 0) {
    microhv::format(buf, cap, "0x%04lx %s (result 0x%016lx)", r.rax & 0xFFFF,
                    status_text(static_cast<uint16_t>(r.rax)), r.rax);
  } else {
    microhv::format(buf, cap, "0x%04lx %s", r.rax, status_text(static_cast<uint16_t>(r.rax)));
  }
  return buf;
}

bool is_status(const HvResult& r, Status s) {
  return r.ran && !r.fault.faulted && r.rax == static_cast<uint64_t>(s);
}

bool check_status(const char* name, const HvResult& r, Status expected, const char* what) {
  char got[128];
  return check(name, is_status(r, expected), "%s%sexpected 0x%04x %s, got %s",
               what != nullptr ? what : "", what != nullptr ? ": " : "",
               static_cast<unsigned>(expected), status_text(static_cast<uint16_t>(expected)),
               describe(r, got, sizeof(got)));
}

// ------------------------------------------------------------------ SynIC helpers
volatile tlfs::Message* sim_slot(uint8_t sint) {
  return reinterpret_cast<volatile tlfs::Message*>(env.sim + sint * tlfs::kMessageSize);
}

volatile uint8_t* sief_flags(uint8_t sint) {
  return env.sief + sint * (tlfs::kFlagsPerSint / 8);
}

void fill_payload(uint8_t* p, uint32_t size, uint8_t seed) {
  for (uint32_t i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(seed * 31u + i * 7u + 1u);
}

bool slot_matches(uint8_t sint, uint32_t type, uint32_t size, uint8_t seed, char* why, size_t cap) {
  return slot_matches_in(env.sim, sint, type, size, seed, why, cap);
}

bool slot_matches_in(uint8_t* sim_page, uint8_t sint, uint32_t type, uint32_t size, uint8_t seed,
                     char* why, size_t cap) {
  auto* m = reinterpret_cast<volatile tlfs::Message*>(sim_page + sint * tlfs::kMessageSize);
  uint32_t got_type = m->message_type;
  uint32_t got_size = m->payload_size;
  if (got_type != type || got_size != size) {
    microhv::format(why, cap, "SIM slot %u: expected type 0x%x size %u, got type 0x%x size %u",
                    sint, type, size, got_type, got_size);
    return false;
  }
  uint8_t expect[tlfs::kMaxPayload];
  fill_payload(expect, size, seed);
  for (uint32_t i = 0; i < size && i < tlfs::kMaxPayload; ++i) {
    if (m->payload[i] != expect[i]) {
      microhv::format(why, cap, "SIM slot %u: payload byte %u expected 0x%02x got 0x%02x", sint, i,
                      expect[i], m->payload[i]);
      return false;
    }
  }
  why[0] = '\0';
  return true;
}

void clear_slot_and_eom(uint8_t sint, bool eom) {
  sim_slot(sint)->message_type = tlfs::kMessageTypeNone;
  asm volatile("mfence" ::: "memory");
  if (eom) wrmsr(tlfs::msr::kEom, 0);
}

// ------------------------------------------------------------------ fixtures
bool ensure_hypercall() {
  if (env.hypercall_ready) return true;
  MsrResult os = rdmsr(tlfs::msr::kGuestOsId);
  if (os.fault.faulted) {
    set_fixture_error("rdmsr GUEST_OS_ID raised %s", vector_name(os.fault.vector));
    return false;
  }
  if (os.value == 0) {
    Fault f = wrmsr(tlfs::msr::kGuestOsId, kGuestOsId);
    if (f.faulted) {
      set_fixture_error("wrmsr GUEST_OS_ID raised %s", vector_name(f.vector));
      return false;
    }
  }
  const uint64_t want = reinterpret_cast<uint64_t>(env.hypercall_page) | 1;
  MsrResult hc = rdmsr(tlfs::msr::kHypercall);
  if (hc.fault.faulted) {
    set_fixture_error("rdmsr HYPERCALL raised %s", vector_name(hc.fault.vector));
    return false;
  }
  if ((hc.value & ~0xFFEull) != want) {
    memset(env.hypercall_page, kPageFill, 4096);
    Fault f = wrmsr(tlfs::msr::kHypercall, want);
    if (f.faulted) {
      set_fixture_error("wrmsr HYPERCALL raised %s", vector_name(f.vector));
      return false;
    }
    hc = rdmsr(tlfs::msr::kHypercall);
    if (hc.fault.faulted || (hc.value & ~0xFFEull) != want) {
      set_fixture_error("HYPERCALL reads 0x%lx after writing 0x%lx", hc.value, want);
      return false;
    }
  }
  if (env.hypercall_page[0] == kPageFill) {
    set_fixture_error("hypercall page still holds the guest's fill 0x%02x (no overlay)", kPageFill);
    return false;
  }
  env.hypercall_ready = true;
  return true;
}

bool program_synic(uint8_t* sim, uint8_t* sief, const SintSetting* sints, size_t count, char* why,
                   size_t cap) {
  struct W {
    uint32_t msr;
    uint64_t value;
  };
  W writes[2 + tlfs::kSintCount + 1];
  size_t n = 0;
  writes[n++] = {tlfs::msr::kSimp, reinterpret_cast<uint64_t>(sim) | 1};
  writes[n++] = {tlfs::msr::kSiefp, reinterpret_cast<uint64_t>(sief) | 1};
  for (size_t i = 0; i < count && i < tlfs::kSintCount; ++i) {
    writes[n++] = {tlfs::msr::kSint0 + sints[i].sint, sints[i].value};
  }
  writes[n++] = {tlfs::msr::kScontrol, 1};
  for (size_t i = 0; i < n; ++i) {
    const W& w = writes[i];
    const Fault f = wrmsr(w.msr, w.value);
    const MsrResult r = rdmsr(w.msr);
    if (f.faulted || r.fault.faulted || r.value != w.value) {
      microhv::format(why, cap, "wrmsr 0x%x=0x%lx %s, reads 0x%lx%s", w.msr, w.value,
                      f.faulted ? vector_name(f.vector) : "ok", r.value,
                      r.fault.faulted ? " (rdmsr faulted)" : "");
      return false;
    }
  }
  // Whatever the SIM/SIEF pages show now, start empty.
  for (uint8_t sint = 0; sint < tlfs::kSintCount; ++sint) {
    reinterpret_cast<volatile tlfs::Message*>(sim + sint * tlfs::kMessageSize)->message_type =
        tlfs::kMessageTypeNone;
  }
  memset(sief, 0, 4096);
  return true;
}

bool ensure_synic() {
  if (env.synic_ready) return true;
  memset(env.sim, 0, 4096);
  memset(env.sief, 0, 4096);
  const SintSetting sints[] = {
      kReceiverSints[0],
      kReceiverSints[1],
      {kSintNoAuto, kVecNoAuto},
      {kSintMasked, kVecMasked | tlfs::sint_bits::kAutoEoi | tlfs::sint_bits::kMasked},
  };
  set_non_auto_eoi(kVecNoAuto, true);
  char why[160];
  if (!program_synic(env.sim, env.sief, sints, sizeof(sints) / sizeof(sints[0]), why,
                     sizeof(why))) {
    set_fixture_error("SynIC setup: %s", why);
    return false;
  }
  env.synic_ready = true;
  return true;
}

namespace {

struct PortSpec {
  uint32_t port, conn;
  tlfs::PortType type;
  uint8_t sint;
  uint16_t base_flag, flag_count;
  bool created, connected;
};

PortSpec g_ports[] = {
    {kPortMsg, kConnMsg, tlfs::PortType::kMessage, kSintMsg, 0, 0, false, false},
    {kPortEvt, kConnEvt, tlfs::PortType::kEvent, kSintEvt, kEvtBaseFlag, kEvtFlagCount, false,
     false},
    {kPortDel, kConnDel, tlfs::PortType::kMessage, kSintMsg, 0, 0, false, false},
    {kPortBuf, kConnBuf, tlfs::PortType::kMessage, kSintMsg, 0, 0, false, false},
    {kPortNoAuto, kConnNoAuto, tlfs::PortType::kMessage, kSintNoAuto, 0, 0, false, false},
    {kPortMasked, kConnMasked, tlfs::PortType::kMessage, kSintMasked, 0, 0, false, false},
};

PortSpec* find_port(uint32_t port) {
  for (PortSpec& p : g_ports) {
    if (p.port == port) return &p;
  }
  return nullptr;
}

}  // namespace

void mark_port(uint32_t port_id, bool created, bool connected) {
  if (PortSpec* p = find_port(port_id)) {
    p->created = created;
    p->connected = connected;
  }
}

bool ensure_port(uint32_t port_id) {
  PortSpec* p = find_port(port_id);
  if (p == nullptr) {
    set_fixture_error("internal: unknown port 0x%x", port_id);
    return false;
  }
  if (!ensure_hypercall()) return false;
  char got[128];
  if (!p->created) {
    HvResult r = create_port(p->port, p->type, p->sint, 0, p->base_flag, p->flag_count);
    if (!is_status(r, Status::kSuccess)) {
      set_fixture_error("CreatePort 0x%x: %s", p->port, describe(r, got, sizeof(got)));
      return false;
    }
    p->created = true;
  }
  if (!p->connected) {
    HvResult r = connect_port(p->conn, p->port, p->type);
    if (!is_status(r, Status::kSuccess)) {
      set_fixture_error("ConnectPort 0x%x->0x%x: %s", p->conn, p->port,
                        describe(r, got, sizeof(got)));
      return false;
    }
    p->connected = true;
  }
  return true;
}

}  // namespace guest
