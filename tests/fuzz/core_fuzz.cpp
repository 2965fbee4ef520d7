// libFuzzer target over the core's guest-facing entry points: hypercalls
// (every messaging call, raw and well-formed, slow and fast, 64- and 32-bit
// conventions), the synthetic MSRs, the SIM slot handshake (free, then EOM
// when MessagePending was set), and the VMBus host's channel messages, from
// three guest partitions that name each other, the VMBus host and ids that
// do not exist.
// The world they act in: core_world.hpp.
//
// The oracle (core_oracle.hpp, core_shadow.hpp) predicts every status,
// every SynIC MSR result and value, every byte the core writes in the SIM
// and SIEF pages and every interrupt, from its own shadow. At the end of an
// input every VP's SynIC is switched on and every slot consumed: every
// message that was accepted must have been delivered exactly once.
#include <memory>
#include <new>
#include <type_traits>

#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/services/vmbus_host.hpp"
#include "tests/fuzz/core_world.hpp"

using namespace microhv;
using namespace microhv::fuzz;

namespace {

// ---- hypercalls: the oracle's prediction from the registers alone

struct CallSpec {
  tlfs::CallCode code;
  uint32_t size;
  uint32_t privilege;
};
constexpr CallSpec kCalls[] = {
    {tlfs::CallCode::kPostMessage, sizeof(tlfs::PostMessageInput), tlfs::cpuid::kPostMessages},
    {tlfs::CallCode::kSignalEvent, sizeof(tlfs::SignalEventInput), tlfs::cpuid::kSignalEvents},
    {tlfs::CallCode::kCreatePort, sizeof(tlfs::CreatePortInput), tlfs::cpuid::kCreatePort},
    {tlfs::CallCode::kDeletePort, sizeof(tlfs::DeletePortInput), tlfs::cpuid::kCreatePort},
    {tlfs::CallCode::kConnectPort, sizeof(tlfs::ConnectPortInput), tlfs::cpuid::kConnectPort},
    {tlfs::CallCode::kDisconnectPort, sizeof(tlfs::DisconnectPortInput), tlfs::cpuid::kConnectPort},
};

template <typename Input>
Input input_from(const uint8_t* bytes) {
  Input in;
  std::memcpy(&in, bytes, sizeof(in));
  return in;
}

// The status the call must return; false when the oracle does not model the
// call code (only the absence of faults is checked then).
bool predict(World& w, GuestSide& side, const HypercallRegs& r, bool* ud, Status* status) {
  *ud = r.mode == CpuMode::kReal || r.mode == CpuMode::kVirtual8086 || r.cpl != 0;
  if (*ud) return true;
  auto pair = [](uint64_t hi, uint64_t lo) { return (hi & 0xFFFFFFFF) << 32 | (lo & 0xFFFFFFFF); };
  const bool long64 = r.mode == CpuMode::kLong64;
  const uint64_t c = long64 ? r.rcx : pair(r.rdx, r.rax);
  const uint64_t input = long64 ? r.rdx : pair(r.rbx, r.rcx);
  const uint64_t output = long64 ? r.r8 : pair(r.rdi, r.rsi);
  *status = Status::kInvalidHypercallInput;
  if ((c & (tlfs::control::kReservedMask | tlfs::control::kNestedBit)) != 0) return true;
  const CallSpec* spec = nullptr;
  for (const CallSpec& s : kCalls) {
    if (static_cast<uint16_t>(s.code) == (c & 0xFFFF)) spec = &s;
  }
  if (spec == nullptr) return false;
  if ((side.privileges & spec->privilege) == 0) {
    *status = Status::kAccessDenied;
    return true;
  }
  if ((c & (tlfs::control::kRepCountMask | tlfs::control::kRepStartMask |
            tlfs::control::kVarHeaderMask)) != 0) {
    return true;
  }
  uint8_t bytes[sizeof(tlfs::PostMessageInput)] = {};
  if ((c & tlfs::control::kFastBit) != 0) {
    if (spec->size > 16) return true;
    std::memcpy(bytes, &input, 8);
    std::memcpy(bytes + 8, &output, 8);
  } else {
    if ((input & 7) != 0 || (input & 0xFFF) + spec->size > kPageSize ||
        !side.memory.is_ram(Gpa(input), spec->size)) {
      *status = Status::kInvalidAlignment;
      return true;
    }
    std::memcpy(bytes, &side.memory.bytes[input], spec->size);
  }
  Oracle& o = w.oracle;
  switch (spec->code) {
    case tlfs::CallCode::kPostMessage:
      *status = o.post_message(side.id, input_from<tlfs::PostMessageInput>(bytes));
      break;
    case tlfs::CallCode::kSignalEvent:
      *status = o.signal_event(side.id, input_from<tlfs::SignalEventInput>(bytes));
      break;
    case tlfs::CallCode::kCreatePort:
      *status = o.create_port(side.id, input_from<tlfs::CreatePortInput>(bytes));
      break;
    case tlfs::CallCode::kDeletePort:
      *status = o.delete_port(side.id, input_from<tlfs::DeletePortInput>(bytes));
      break;
    case tlfs::CallCode::kConnectPort:
      *status = o.connect_port(side.id, input_from<tlfs::ConnectPortInput>(bytes));
      break;
    case tlfs::CallCode::kDisconnectPort:
      *status = o.disconnect_port(side.id, input_from<tlfs::DisconnectPortInput>(bytes));
      break;
    default:
      return false;
  }
  return true;
}

void checked_hypercall(World& w, GuestSide& side, uint32_t vp, const HypercallRegs& regs) {
  bool ud = false;
  Status status = Status::kSuccess;
  const bool modeled = predict(w, side, regs, &ud, &status);
  const HypercallOutcome out = handle_hypercall(*side.partition->vp(VpIndex(vp)), regs);
  if (!modeled) return;
  expect((out.end == HypercallEnd::kUndefinedOpcode) == ud,
         "#UD differs from the TLFS rule (CPL 0, protected or long mode)");
  if (ud) return;
  expect(out.end == HypercallEnd::kResult && out.value == tlfs::make_result(status),
         "hypercall status differs from the oracle's");
}

// A well-formed call: the input block at GPA 0 of the caller (or fast).
template <typename Input>
void call(World& w, GuestSide& side, uint32_t vp, tlfs::CallCode code, const Input& in,
          bool fast = false) {
  HypercallRegs regs{CpuMode::kLong64, 0, 0, 0, static_cast<uint64_t>(code), 0, 0, 0, 0};
  if (fast && sizeof(in) <= 16) {
    regs.rcx |= tlfs::control::kFastBit;
    uint64_t q[2] = {};
    std::memcpy(q, &in, sizeof(in));
    regs.rdx = q[0];
    regs.r8 = q[1];
  } else {
    side.memory.store(0, in);
  }
  checked_hypercall(w, side, vp, regs);
}

// ---- MSRs

void checked_wrmsr(World& w, GuestSide& side, uint32_t vp, uint32_t msr, uint64_t value) {
  bool gp = false;
  const bool known = w.oracle.synic_write(w.oracle.partition(side.id), vp, msr, value, &gp);
  const MsrResult got = write_synthetic_msr(*side.partition->vp(VpIndex(vp)), msr, value);
  if (known) {
    expect(got == (gp ? MsrResult::kGp : MsrResult::kOk), "SynIC MSR write result differs");
  }
}

void checked_rdmsr(World& w, GuestSide& side, uint32_t vp, uint32_t msr) {
  uint64_t got = 0, want = 0;
  const MsrResult r = read_synthetic_msr(*side.partition->vp(VpIndex(vp)), msr, &got);
  if (w.oracle.synic_read(w.oracle.partition(side.id), vp, msr, &want)) {
    expect(r == MsrResult::kOk && got == want, "SynIC MSR read differs from what was written");
  }
}

// The guest's side of the slot handshake (TLFS 11.9.3): free the slot, then
// EOM if MessagePending was set (or always, when the guest may have cleared
// the bit itself).
void consume(World& w, GuestSide& side, uint32_t vp, uint32_t sint, bool always_eom = false) {
  const ShadowVp& v = w.oracle.partition(side.id).vps[vp];
  if ((v.simp & 1) == 0) return;
  const uint64_t slot = Shadow::slot_gpa(v, sint);
  if (!side.memory.is_ram(Gpa(slot), tlfs::kMessageSize)) return;
  side.memory.store<uint32_t>(slot, 0);
  if (always_eom || (side.memory.load<uint8_t>(slot + 5) & tlfs::kMessageFlagPending) != 0) {
    checked_wrmsr(w, side, vp, tlfs::msr::kEom, 0);
  }
}

void setup_synic(World& w, GuestSide& side, uint32_t vp, uint32_t sint, uint64_t sint_value) {
  const uint64_t page = side.sim_page(vp);
  checked_wrmsr(w, side, vp, tlfs::msr::kSimp, page << 12 | 1);
  checked_wrmsr(w, side, vp, tlfs::msr::kSiefp, (page + 1) << 12 | 1);
  checked_wrmsr(w, side, vp, tlfs::msr::kSint0 + sint, sint_value);
  checked_wrmsr(w, side, vp, tlfs::msr::kScontrol, 1);
}

// ---- operands that reach the interesting cases

uint64_t partition_id(Reader& in) {
  constexpr uint64_t kIds[] = {tlfs::kPartitionSelf, kGuestA, kHost, kChild, kSibling, 0, 77};
  const uint32_t i = in.pick(8);
  return i < 7 ? kIds[i] : in.take<uint64_t>();
}
uint32_t port_id(Reader& in) {
  const uint32_t i = in.pick(10);
  if (i < 6) return i + 1;
  if (i == 6) return vmbus_wire::kReplyPort;
  return in.take<uint32_t>();
}
uint32_t connection_id(Reader& in) {
  const uint32_t i = in.pick(10);
  if (i < 6) return i + 1;
  if (i == 6) return 0x01000001;  // reserved bits set
  return in.take<uint32_t>();
}
uint32_t target_vp(Reader& in) {
  const uint32_t i = in.pick(4);
  return i == 3 ? tlfs::kAnyVp : i;  // VP 2 exists nowhere
}

void structured_post(World& w, GuestSide& side, uint32_t vp, Reader& in) {
  tlfs::PostMessageInput post{};
  post.connection_id = connection_id(in);
  post.message_type = in.pick(8) == 0 ? in.take<uint32_t>() : 1 + in.pick(4);
  post.payload_size = in.pick(16) == 0 ? in.take<uint32_t>() : in.take<uint8_t>() % 241;
  for (uint32_t i = 0; i < tlfs::kMaxPayload; ++i) post.payload[i] = static_cast<uint8_t>(i * 7);
  const uint64_t tag = w.oracle.accepted;  // tells messages apart in the slots
  std::memcpy(post.payload, &tag, sizeof(tag));
  call(w, side, vp, tlfs::CallCode::kPostMessage, post);
}

void structured_signal(World& w, GuestSide& side, uint32_t vp, Reader& in) {
  const tlfs::SignalEventInput signal{connection_id(in),
                                      static_cast<uint16_t>(in.take<uint16_t>() % 80), 0};
  call(w, side, vp, tlfs::CallCode::kSignalEvent, signal, in.flag());
}

// A VMBus control message from partition 1 on connection 4 or 1.
void vmbus_message(World& w, Reader& in) {
  using namespace vmbus_wire;
  uint32_t m[10] = {};
  const uint32_t kind = in.pick(5);
  m[0] = kind == 0   ? kInitiateContact
         : kind == 1 ? kRequestOffers
         : kind == 2 ? kUnload
                     : in.take<uint8_t>();
  if (m[0] == kInitiateContact) {
    constexpr uint32_t kVersions[] = {version(6, 0), version(5, 3), version(5, 0), version(4, 0),
                                      version(3, 0)};
    m[2] = kVersions[in.pick(5)];
    m[3] = target_vp(in);
    m[4] = in.pick(4) == 0 ? in.take<uint8_t>() : 2;  // msg_sint
  }
  tlfs::PostMessageInput post{};
  post.connection_id = in.flag() ? 4 : 1;
  post.message_type = in.pick(8) == 0 ? 2 : 1;
  post.payload_size =
      in.pick(8) == 0 ? in.take<uint8_t>() % 41 : (m[0] == kInitiateContact ? 40 : 8);
  std::memcpy(post.payload, m, sizeof(m));
  call(w, w.sides[0], 0, tlfs::CallCode::kPostMessage, post);
}

// A working channel in one op, so inputs reach deep queue states fast:
// this VP's SynIC on, a message port on SINT `sint` targeting a VP of the
// caller's partition (or any), and a connection to it with the same id.
void channel(World& w, GuestSide& side, uint32_t vp, Reader& in) {
  const uint32_t sint = 1 + in.pick(15);
  setup_synic(w, side, vp, sint, 0x40 + sint + (in.flag() ? tlfs::sint_bits::kAutoEoi : 0));
  tlfs::CreatePortInput c{};
  c.port_partition = tlfs::kPartitionSelf;
  c.port_id = 1 + in.pick(6);
  c.port_info.port_type = 1;
  c.port_info.target_sint = sint;
  c.port_info.target_vp = in.pick(4) == 0 ? tlfs::kAnyVp : vp;
  call(w, side, vp, tlfs::CallCode::kCreatePort, c);
  tlfs::ConnectPortInput k{};
  k.connection_partition = tlfs::kPartitionSelf;
  k.connection_id = c.port_id;
  k.port_partition = tlfs::kPartitionSelf;
  k.port_id = c.port_id;
  k.connection_info.port_type = 1;
  call(w, side, vp, tlfs::CallCode::kConnectPort, k);
}

// Several posts in a row on one connection: the slot fills, the port's
// buffers fill, INSUFFICIENT_BUFFERS.
void burst(World& w, GuestSide& side, uint32_t vp, Reader& in) {
  const uint32_t n = 1 + in.pick(20);
  const uint32_t conn = 1 + in.pick(6);
  for (uint32_t i = 0; i < n; ++i) {
    tlfs::PostMessageInput post{};
    post.connection_id = conn;
    post.message_type = 1;
    post.payload_size = 8 + i;
    const uint64_t tag = w.oracle.accepted;
    std::memcpy(post.payload, &tag, sizeof(tag));
    call(w, side, vp, tlfs::CallCode::kPostMessage, post);
    w.oracle.check_step();
  }
}

void step(World& w, Reader& in) {
  GuestSide& side = w.sides[in.pick(3)];
  const uint32_t vp = in.pick(side.vps);
  switch (in.pick(18)) {
    case 16:
      channel(w, side, vp, in);
      break;
    case 17:
      burst(w, side, vp, in);
      break;
    case 0: {  // a raw hypercall, shaped so that most reach the calls' own checks
      HypercallRegs regs{};
      const uint8_t mode = in.take<uint8_t>();
      regs.mode = (mode & 0x30) == 0 ? static_cast<CpuMode>(mode % 4) : CpuMode::kLong64;
      regs.cpl = (mode & 0xC0) == 0 ? (mode >> 2) % 4 : 0;
      const uint8_t shape = in.take<uint8_t>();
      uint64_t control = in.take<uint64_t>();
      if ((shape & 3) != 0) {
        control = static_cast<uint64_t>(kCalls[shape % 6].code) |
                  ((shape & 8) != 0 ? tlfs::control::kFastBit : 0) |
                  ((shape & 0xF0) == 0x10 ? control & ~0xFFFFull : 0);
      }
      const uint64_t input = in.take<uint16_t>() % (side.pages * kPageSize + 64);
      const uint64_t output = in.take<uint64_t>();
      if (regs.mode == CpuMode::kLong64) {
        regs.rcx = control;
        regs.rdx = input;
        regs.r8 = output;
      } else {  // 32-bit convention: EDX:EAX, EBX:ECX, EDI:ESI
        regs.rdx = control >> 32;
        regs.rax = control & 0xFFFFFFFF;
        regs.rbx = input >> 32;
        regs.rcx = input & 0xFFFFFFFF;
        regs.rdi = output >> 32;
        regs.rsi = output & 0xFFFFFFFF;
      }
      checked_hypercall(w, side, vp, regs);
      break;
    }
    case 1: {  // any synthetic MSR (the whole range: crash MSRs at 0x40000100),
               // values shaped like pages or SINTs now and then
      const uint32_t msr = 0x40000000u + (in.take<uint16_t>() & 0x1FF);
      uint64_t value = in.take<uint64_t>();
      const uint8_t shape = in.take<uint8_t>();
      if (shape & 1) value = (value % side.pages) << 12 | (value & 1);
      if (shape & 2) value &= 0x300FF;
      checked_wrmsr(w, side, vp, msr, value);
      break;
    }
    case 2:
      checked_rdmsr(w, side, vp, 0x40000000u + (in.take<uint16_t>() & 0x1FF));
      break;
    case 3: {  // the guest writes its own RAM: input pages, slots, flags
      const uint64_t at = in.take<uint16_t>() % (side.pages * kPageSize - 8);
      if (side.memory.is_ram(Gpa(at), 8)) side.memory.store(at, in.take<uint64_t>());
      break;
    }
    case 4:
      checked_wrmsr(w, side, vp, tlfs::msr::kEom, 0);
      break;
    case 5:
      consume(w, side, vp, in.pick(16));
      break;
    case 6: {
      tlfs::CreatePortInput c{};
      c.port_partition = partition_id(in);
      c.port_id = port_id(in);
      c.connection_partition = in.pick(3) == 0 ? partition_id(in) : 0;
      const bool event = in.flag();
      c.port_info.port_type = in.pick(16) == 0 ? in.pick(4) : (event ? 2 : 1);
      c.port_info.target_sint = in.pick(17);
      c.port_info.target_vp = target_vp(in);
      if (event) {
        c.port_info.base_flag_number = static_cast<uint16_t>(in.take<uint16_t>() % 2100);
        c.port_info.flag_count = static_cast<uint16_t>(in.take<uint8_t>() % 70);
      }
      if (in.pick(16) == 0) c.rsvdz0 = 1;
      call(w, side, vp, tlfs::CallCode::kCreatePort, c);
      break;
    }
    case 7: {
      tlfs::ConnectPortInput c{};
      c.connection_partition = partition_id(in);
      c.connection_id = connection_id(in);
      c.port_partition = partition_id(in);
      c.port_id = port_id(in);
      c.connection_info.port_type = 1 + in.pick(3);
      if (in.pick(16) == 0) c.rsvdz2 = 1;
      call(w, side, vp, tlfs::CallCode::kConnectPort, c);
      break;
    }
    case 8: {
      const tlfs::DeletePortInput d{partition_id(in), port_id(in), in.pick(16) == 0 ? 1u : 0u};
      call(w, side, vp, tlfs::CallCode::kDeletePort, d, in.flag());
      break;
    }
    case 9: {
      const tlfs::DisconnectPortInput d{partition_id(in), connection_id(in), 0};
      call(w, side, vp, tlfs::CallCode::kDisconnectPort, d, in.flag());
      break;
    }
    case 10:
      structured_post(w, side, vp, in);
      break;
    case 11:
      structured_signal(w, side, vp, in);
      break;
    case 12:
      vmbus_message(w, in);
      break;
    case 13: {  // this VP's SynIC on, with one SINT programmed
      const uint32_t sint = in.pick(16);
      const uint64_t value = (0x20 + in.pick(0xE0)) | (uint64_t{in.take<uint8_t>()} & 3) << 16;
      setup_synic(w, side, vp, sint, value);
      break;
    }
    case 14: {  // an MSR write right before a call that depends on it
      constexpr uint32_t kMsrs[] = {tlfs::msr::kScontrol, tlfs::msr::kSimp, tlfs::msr::kSiefp,
                                    tlfs::msr::kEom, tlfs::msr::kSint0 + 2};
      const uint32_t msr = kMsrs[in.pick(5)];
      uint64_t value = in.take<uint8_t>() & 1;
      if (msr == tlfs::msr::kSimp || msr == tlfs::msr::kSiefp) {
        value |= (side.sim_page(vp) + (msr == tlfs::msr::kSiefp ? 1 : 0)) << 12;
      }
      if (msr == tlfs::msr::kSint0 + 2) value = 0x50 | (uint64_t{in.take<uint8_t>()} & 3) << 16;
      checked_wrmsr(w, side, vp, msr, value);
      if (in.flag()) {
        structured_post(w, side, vp, in);
      } else {
        structured_signal(w, side, vp, in);
      }
      break;
    }
    case 15: {
      CpuidRegs r{};
      hyperv_cpuid(*side.partition, 0x40000000u + in.take<uint8_t>(), &r);
      break;
    }
  }
  w.oracle.check_step();
}

// Every VP's SynIC on and every slot consumed until nothing is queued:
// every message accepted was delivered exactly once, none is left.
void drain_everything(World& w) {
  for (GuestSide& side : w.sides) {
    for (uint32_t vp = 0; vp < side.vps; ++vp) {
      checked_wrmsr(w, side, vp, tlfs::msr::kSimp, side.sim_page(vp) << 12 | 1);
      checked_wrmsr(w, side, vp, tlfs::msr::kScontrol, 1);
      w.oracle.check_step();
    }
  }
  for (uint64_t round = 0; w.oracle.queued() > 0; ++round) {
    expect(round <= w.oracle.accepted, "messages stay queued although every slot is freed");
    for (GuestSide& side : w.sides) {
      for (uint32_t vp = 0; vp < side.vps; ++vp) {
        for (uint32_t sint = 0; sint < 16; ++sint) {
          consume(w, side, vp, sint, true);
          w.oracle.check_step();
        }
      }
    }
  }
  expect(w.oracle.accepted == w.oracle.delivered, "an accepted message was never delivered");
  for (const ShadowPort& p : w.oracle.ports) {
    expect(p.outstanding == 0, "a port still holds buffers after everything was delivered");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  Reader in{data, size};
  w.reset(in.take<uint8_t>() | 0xFFFFFF0Fu);  // now and then without a privilege
  for (int steps = 0; steps < 96 && !in.empty(); ++steps) step(w, in);
  drain_everything(w);
  return 0;
}
