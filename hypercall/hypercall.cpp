// Hypercall ABI decoding and the table-driven dispatcher (TLFS "Hypercall
// Interface").
//
// THE CHECK ORDER (the one place it is written down; README.md points here).
// The TLFS leaves the order open except that it prefers ACCESS_DENIED when
// several statuses apply. Each step ends the call with one status:
//   1. real or virtual-8086 mode, or CPL > 0: #UD, no status (handle_hypercall);
//   2. reserved control bits or IsNested: INVALID_HYPERCALL_INPUT;
//   3. unknown call code: INVALID_HYPERCALL_CODE;
//   4. the partition lacks the call's privilege (CPUID 0x40000003.EBX bit in
//      kCalls): ACCESS_DENIED, before any input is read. This is the only
//      privilege check: the handlers below never repeat it;
//   5. rep count, rep start or variable header on a simple call, or the fast
//      form of a call with more than 16 bytes of input: INVALID_HYPERCALL_INPUT;
//   6. input GPA misaligned (8 bytes), crossing a page or outside guest RAM:
//      INVALID_ALIGNMENT;
//   7. the call's own checks (hypercall/calls.cpp, then synic/messaging.cpp
//      and synic/delivery.cpp), each status at the first failing step:
//      PostMessage: RsvdZ, MessageType, PayloadSize (INVALID_PARAMETER);
//        the connection (INVALID_CONNECTION_ID); the port behind it
//        (INVALID_PORT_ID); the target VP (INVALID_VP_INDEX); its SynIC
//        (INVALID_SYNIC_STATE); last the port's buffers (INSUFFICIENT_BUFFERS).
//      SignalEvent: RsvdZ; connection; port; the flag number against the
//        port's flag count (INVALID_PARAMETER); target VP; its SynIC.
//      Create/Delete/Connect/DisconnectPort: RsvdZ and VTL fields
//        (INVALID_PARAMETER); the partition the call acts on, which must be
//        the caller or its child (no such id: INVALID_PARTITION_ID; another
//        partition, microhv's services always: ACCESS_DENIED; not active:
//        INVALID_PARTITION_STATE), and the other partition it names
//        (INVALID_PARTITION_ID); then the port's type, SINT, flags
//        (INVALID_PARAMETER), its id (INVALID_PORT_ID; DeletePort of a port a
//        service pinned, and ConnectPort to a port reserved for another
//        partition: ACCESS_DENIED), the connection id (INVALID_CONNECTION_ID)
//        and the partition's quota (INSUFFICIENT_MEMORY).
#include "hypercall/hypercall.hpp"

#include <stddef.h>

#include <type_traits>

#include "hypercall/calls.hpp"
#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

using tlfs::Status;
namespace control = tlfs::control;

// Where a call's input block comes from: guest memory at a GPA that has
// passed the alignment checks, or the two registers of a fast call.
struct InputSource {
  GuestMemory* memory;  // nullptr: fast call
  Gpa gpa;
  uint64_t fast[2];

  // Copies `size` bytes at `offset` within the input block.
  bool copy(uint32_t offset, void* dst, uint32_t size) const {
    if (memory != nullptr) return memory->read(gpa + offset, dst, size);
    __builtin_memcpy(dst, reinterpret_cast<const uint8_t*>(fast) + offset, size);  // <= 16 bytes
    return true;
  }
};

// Reads a call's input block out of guest memory once: the guest cannot
// change it under the checks afterwards.
template <typename Input>
bool read_input(const InputSource& source, Input* in) {
  return source.copy(0, in, sizeof(*in));
}

// PostMessage reads its header, then only the PayloadSize bytes that will be
// sent ("only the first n bytes are transferred"), not the whole 240.
template <>
bool read_input(const InputSource& source, tlfs::PostMessageInput* in) {
  constexpr uint32_t kHeader = offsetof(tlfs::PostMessageInput, payload);
  if (!source.copy(0, in, kHeader)) return false;
  uint32_t n = in->payload_size <= tlfs::kMaxPayload ? in->payload_size : 0;
  return n == 0 || source.copy(kHeader, in->payload, n);
}

struct CallSpec {
  tlfs::CallCode code;
  uint32_t input_size;
  uint32_t privilege;  // CPUID 0x40000003.EBX bit the caller needs
  Status (*handler)(Vp&, const InputSource&);
};

template <typename Handler>
struct InputOf;
template <typename Input>
struct InputOf<Status (*)(Vp&, Input&)> {
  using type = std::remove_const_t<Input>;
};

// Reads the input straight into its typed block, once (the guest cannot
// change it under us afterwards), then runs the call under the hypervisor lock.
template <auto Fn>
Status call_with(Vp& vp, const InputSource& source) {
  typename InputOf<decltype(Fn)>::type in;
  if (!read_input(source, &in)) return Status::kInvalidAlignment;
  LockGuard guard(vp.partition().hypervisor().lock);
  return Fn(vp, in);
}

constexpr CallSpec kCalls[] = {
    {tlfs::CallCode::kDeletePort, sizeof(tlfs::DeletePortInput), tlfs::cpuid::kCreatePort,
     call_with<hv_delete_port>},
    {tlfs::CallCode::kDisconnectPort, sizeof(tlfs::DisconnectPortInput), tlfs::cpuid::kConnectPort,
     call_with<hv_disconnect_port>},
    {tlfs::CallCode::kPostMessage, sizeof(tlfs::PostMessageInput), tlfs::cpuid::kPostMessages,
     call_with<hv_post_message>},
    {tlfs::CallCode::kSignalEvent, sizeof(tlfs::SignalEventInput), tlfs::cpuid::kSignalEvents,
     call_with<hv_signal_event>},
    {tlfs::CallCode::kCreatePort, sizeof(tlfs::CreatePortInput), tlfs::cpuid::kCreatePort,
     call_with<hv_create_port>},
    {tlfs::CallCode::kConnectPort, sizeof(tlfs::ConnectPortInput), tlfs::cpuid::kConnectPort,
     call_with<hv_connect_port>},
};

const CallSpec* find_call(uint16_t code) {
  for (const CallSpec& spec : kCalls) {
    if (static_cast<uint16_t>(spec.code) == code) return &spec;
  }
  return nullptr;
}

// The fast form carries up to 16 bytes of input in two registers.
constexpr uint32_t kFastInputBytes = 16;

struct Decoded {
  uint64_t control;
  uint64_t input;   // GPA, or first fast input qword
  uint64_t output;  // GPA, or second fast input qword
};

Decoded decode(const HypercallRegs& r) {
  if (r.mode == CpuMode::kLong64) return {r.rcx, r.rdx, r.r8};
  auto pair = [](uint64_t hi, uint64_t lo) { return (hi & 0xFFFFFFFF) << 32 | (lo & 0xFFFFFFFF); };
  return {pair(r.rdx, r.rax), pair(r.rbx, r.rcx), pair(r.rdi, r.rsi)};
}

Status run(Vp& vp, const Decoded& d) {
  uint64_t c = d.control;
  if ((c & (control::kReservedMask | control::kNestedBit)) != 0) {
    return Status::kInvalidHypercallInput;
  }
  const CallSpec* spec = find_call(static_cast<uint16_t>(c & control::kCallCodeMask));
  if (spec == nullptr) return Status::kInvalidHypercallCode;
  Partition& partition = vp.partition();
  if (!partition.has_privilege(spec->privilege)) return Status::kAccessDenied;  // the only one
  // Every call microhv implements is a simple call without variable header.
  if ((c & (control::kRepCountMask | control::kRepStartMask | control::kVarHeaderMask)) != 0) {
    return Status::kInvalidHypercallInput;
  }

  if ((c & control::kFastBit) != 0) {
    if (spec->input_size > kFastInputBytes) return Status::kInvalidHypercallInput;
    return spec->handler(vp, InputSource{nullptr, Gpa(0), {d.input, d.output}});
  }
  Gpa gpa(d.input);
  if ((d.input & 7) != 0 || gpa.page_offset() + spec->input_size > kPageSize ||
      !partition.memory().is_ram(gpa, spec->input_size)) {
    return Status::kInvalidAlignment;
  }
  return spec->handler(vp, InputSource{&partition.memory(), gpa, {0, 0}});
}

}  // namespace

HypercallOutcome handle_hypercall(Vp& caller, const HypercallRegs& regs) {
  // TLFS: VMCALL is a hypercall only from CPL 0 in protected or long mode.
  if (regs.mode == CpuMode::kReal || regs.mode == CpuMode::kVirtual8086 || regs.cpl != 0) {
    return {true, 0};
  }
  return {false, tlfs::make_result(run(caller, decode(regs)))};
}

void store_hypercall_result(const HypercallRegs& in, uint64_t result, uint64_t* rax,
                            uint64_t* rdx) {
  if (in.mode == CpuMode::kLong64) {
    *rax = result;
    return;
  }
  *rax = result & 0xFFFFFFFF;  // 32-bit convention: EDX:EAX
  *rdx = result >> 32;
}

}  // namespace microhv
