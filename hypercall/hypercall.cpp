// microhv's hypercall table and the adapters that give each call its typed
// input. The ABI engine that runs it, with the check order, is
// hypercall/abi.cpp.
#include "hypercall/hypercall.hpp"

#include <stddef.h>

#include <type_traits>

#include "hypercall/abi.hpp"
#include "hypercall/calls.hpp"
#include "hypercall/processor_calls.hpp"
#include "hypercall/tlfs/processor_calls.hpp"
#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

using tlfs::Status;

// Reads a call's fixed input block out of guest memory once: the guest
// cannot change it under the checks afterwards.
template <typename Input>
bool read_input(const CallInput& source, Input* in) {
  return source.read(0, in, sizeof(*in));
}

// PostMessage reads its header, then only the PayloadSize bytes that will be
// sent ("only the first n bytes are transferred"), not the whole 240.
template <>
bool read_input(const CallInput& source, tlfs::PostMessageInput* in) {
  constexpr uint32_t kHeader = offsetof(tlfs::PostMessageInput, payload);
  if (!source.read(0, in, kHeader)) return false;
  uint32_t n = in->payload_size <= tlfs::kMaxPayload ? in->payload_size : 0;
  return n == 0 || source.read(kHeader, in->payload, n);
}

template <typename Handler>
struct InputOf;
template <typename Input>
struct InputOf<Status (*)(Vp&, Input&)> {
  using type = std::remove_const_t<Input>;
};

// A simple call with a fixed input block: reads it straight into its typed
// block, once, then runs the call under the hypervisor lock.
template <auto Fn>
CallResult simple(Vp& vp, const CallInput& source, CallOutput&, RepWindow) {
  typename InputOf<decltype(Fn)>::type in;
  if (!read_input(source, &in)) return {Status::kInvalidAlignment, 0};
  LockGuard guard(vp.partition().hypervisor().lock);
  return {Fn(vp, in), 0};
}

template <typename Input>
constexpr CallShape fixed() {
  return {sizeof(Input), false, 0, 0};
}

namespace cpuid = tlfs::cpuid;
using tlfs::CallCode;
constexpr uint32_t kIpi = cpuid::kHintClusterIpi;
constexpr uint32_t kFlush = cpuid::kHintRemoteTlbFlush;
constexpr uint32_t kEx = cpuid::kHintExProcessorMasks;
constexpr uint32_t kGvaRange = sizeof(uint64_t);

constexpr CallSpec kCalls[] = {
    {CallCode::kDeletePort, fixed<tlfs::DeletePortInput>(), cpuid::kCreatePort, 0,
     simple<hv_delete_port>},
    {CallCode::kDisconnectPort, fixed<tlfs::DisconnectPortInput>(), cpuid::kConnectPort, 0,
     simple<hv_disconnect_port>},
    {CallCode::kPostMessage, fixed<tlfs::PostMessageInput>(), cpuid::kPostMessages, 0,
     simple<hv_post_message>},
    {CallCode::kSignalEvent, fixed<tlfs::SignalEventInput>(), cpuid::kSignalEvents, 0,
     simple<hv_signal_event>},
    {CallCode::kCreatePort, fixed<tlfs::CreatePortInput>(), cpuid::kCreatePort, 0,
     simple<hv_create_port>},
    {CallCode::kConnectPort, fixed<tlfs::ConnectPortInput>(), cpuid::kConnectPort, 0,
     simple<hv_connect_port>},
    // No privilege bit guards these; the partition offers them with its
    // CPUID 0x40000004 recommendations (TLFS: the Ex forms with
    // ExProcessorMasks).
    {CallCode::kSendSyntheticClusterIpi, fixed<tlfs::SendIpiInput>(), 0, kIpi, hv_send_ipi},
    {CallCode::kSendSyntheticClusterIpiEx,
     {sizeof(tlfs::SendIpiExHeader), true, 0, 0},
     0,
     kIpi | kEx,
     hv_send_ipi_ex},
    {CallCode::kFlushVirtualAddressSpace, fixed<tlfs::FlushSpaceInput>(), 0, kFlush,
     hv_flush_space},
    {CallCode::kFlushVirtualAddressList,
     {sizeof(tlfs::FlushSpaceInput), false, kGvaRange, 0},
     0,
     kFlush,
     hv_flush_list},
    {CallCode::kFlushVirtualAddressSpaceEx,
     {sizeof(tlfs::FlushSpaceExHeader), true, 0, 0},
     0,
     kFlush | kEx,
     hv_flush_space_ex},
    {CallCode::kFlushVirtualAddressListEx,
     {sizeof(tlfs::FlushSpaceExHeader), true, kGvaRange, 0},
     0,
     kFlush | kEx,
     hv_flush_list_ex},
};

}  // namespace

HypercallOutcome handle_hypercall(Vp& caller, const HypercallRegs& regs) {
  return dispatch_hypercall(caller, regs, kCalls, sizeof(kCalls) / sizeof(kCalls[0]));
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

void store_hypercall_control(const HypercallRegs& in, uint64_t control, uint64_t* rcx,
                             uint64_t* rax, uint64_t* rdx) {
  if (in.mode == CpuMode::kLong64) {
    *rcx = control;
    return;
  }
  *rax = control & 0xFFFFFFFF;  // 32-bit convention: EDX:EAX
  *rdx = control >> 32;
}

}  // namespace microhv
