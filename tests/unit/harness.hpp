// Host-side stand-ins for the hardware interfaces, and a harness that drives
// the core only through its public entry points (handle_hypercall and the
// synthetic MSRs), exactly as the VT-x back end does.
#pragma once

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <vector>

#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/hypervisor.hpp"
#include "tests/unit/fakes.hpp"

namespace microhv::test {

// Guest-physical layout used by the harness.
inline constexpr uint64_t kInputPage = 0x1000;
inline constexpr uint64_t kSimBase = 0x10000;   // VP n: kSimBase + n * 0x2000
inline constexpr uint64_t kSiefBase = 0x11000;  // VP n: kSiefBase + n * 0x2000
inline constexpr uint64_t kRamPages = 256;      // 1 MiB
inline constexpr uint8_t kVector = 0x50;
inline constexpr uint64_t kApicHz = 100'000'000;  // the harness' APIC timer clock

inline uint64_t sim_of(uint32_t vp) {
  return kSimBase + vp * 0x2000;
}
inline uint64_t sief_of(uint32_t vp) {
  return kSiefBase + vp * 0x2000;
}
inline uint64_t slot_of(uint32_t vp, uint32_t sint) {
  return sim_of(vp) + sint * 256;
}

struct Guest {
  explicit Guest(uint32_t vps, PartitionFeatures features = kFullFeatures, uint64_t id = 1,
                 Hypervisor* shared = nullptr)
      : Guest(PartitionConfig{PartitionId(id), vps, features}, shared) {}
  explicit Guest(const PartitionConfig& config, Hypervisor* shared = nullptr) : memory(kRamPages) {
    if (shared == nullptr) {
      owned = std::make_unique<Hypervisor>();
      shared = owned.get();
    }
    hv = shared;
    // The time base the fake clock runs at, unless the test chose one.
    memory.overlays_at = overlays.at;  // overlay pages are not RAM for the core
    PartitionConfig with_time = config;
    if (with_time.time.tsc_hz == 0) with_time.time = TimeBase{FakeClock::kTscHz, kApicHz};
    partition = hv->create_partition(with_time, memory, irqs, clock, overlays, tlb);
    REQUIRE(partition != nullptr);
  }

  Vp& vp(uint32_t i) { return *partition->vp(VpIndex(i)); }

  uint64_t hypercall(uint64_t control, const void* input, size_t size, uint32_t caller = 0) {
    if (size > 0) std::memcpy(&memory.bytes[kInputPage], input, size);
    return hypercall_raw(control, kInputPage, 0, caller);
  }
  // One VMCALL as the CPU runs it: a continued rep call executes again with
  // the RCX microhv wrote (TLFS "Hypercall Continuation"), as often as it is
  // continued; `continuations` counts them, `last_rcx` is RCX at the end.
  uint64_t hypercall_raw(uint64_t control, uint64_t rdx, uint64_t r8, uint32_t caller = 0) {
    continuations = 0;
    for (;;) {
      HypercallRegs regs{CpuMode::kLong64, 0, 0, 0, control, rdx, 0, 0, r8};
      HypercallOutcome out = handle_hypercall(vp(caller), regs);
      REQUIRE(out.end != HypercallEnd::kUndefinedOpcode);
      last_rcx = control;
      if (out.end == HypercallEnd::kResult) return out.value;
      REQUIRE(continuations < 4096);  // each one makes progress; never endless
      ++continuations;
      control = out.value;
    }
  }
  tlfs::Status status(uint64_t control, const void* input, size_t size, uint32_t caller = 0) {
    return static_cast<tlfs::Status>(hypercall(control, input, size, caller) & 0xFFFF);
  }

  MsrResult wrmsr(uint32_t vp_index, uint32_t msr, uint64_t value) {
    return write_synthetic_msr(vp(vp_index), msr, value);
  }
  uint64_t rdmsr(uint32_t vp_index, uint32_t msr) {
    uint64_t v = 0;
    REQUIRE(read_synthetic_msr(vp(vp_index), msr, &v) == MsrResult::kOk);
    return v;
  }

  // SCONTROL, SIMP, SIEFP on and SINT `sint` unmasked with kVector.
  void enable_synic(uint32_t vp_index, uint32_t sint = 2, bool auto_eoi = true) {
    REQUIRE(wrmsr(vp_index, tlfs::msr::kSimp, sim_of(vp_index) | 1) == MsrResult::kOk);
    REQUIRE(wrmsr(vp_index, tlfs::msr::kSiefp, sief_of(vp_index) | 1) == MsrResult::kOk);
    uint64_t sint_value = kVector | (auto_eoi ? tlfs::sint_bits::kAutoEoi : 0);
    REQUIRE(wrmsr(vp_index, tlfs::msr::kSint0 + sint, sint_value) == MsrResult::kOk);
    REQUIRE(wrmsr(vp_index, tlfs::msr::kScontrol, 1) == MsrResult::kOk);
  }

  tlfs::Status create_port(uint32_t port_id, uint32_t sint, uint32_t target_vp,
                           tlfs::PortType type = tlfs::PortType::kMessage, uint16_t base_flag = 0,
                           uint16_t flag_count = 0) {
    tlfs::CreatePortInput in{};
    in.port_partition = tlfs::kPartitionSelf;
    in.port_id = port_id;
    in.port_info.port_type = static_cast<uint32_t>(type);
    in.port_info.target_sint = sint;
    in.port_info.target_vp = target_vp;
    in.port_info.base_flag_number = base_flag;
    in.port_info.flag_count = flag_count;
    return status(uint64_t(tlfs::CallCode::kCreatePort), &in, sizeof(in));
  }
  tlfs::Status connect(uint32_t connection_id, uint32_t port_id,
                       tlfs::PortType type = tlfs::PortType::kMessage) {
    tlfs::ConnectPortInput in{};
    in.connection_partition = tlfs::kPartitionSelf;
    in.connection_id = connection_id;
    in.port_partition = tlfs::kPartitionSelf;
    in.port_id = port_id;
    in.connection_info.port_type = static_cast<uint32_t>(type);
    return status(uint64_t(tlfs::CallCode::kConnectPort), &in, sizeof(in));
  }
  tlfs::Status delete_port(uint32_t port_id) {
    tlfs::DeletePortInput in{tlfs::kPartitionSelf, port_id, 0};
    return status(uint64_t(tlfs::CallCode::kDeletePort), &in, sizeof(in));
  }
  tlfs::Status disconnect(uint32_t connection_id) {
    tlfs::DisconnectPortInput in{tlfs::kPartitionSelf, connection_id, 0};
    return status(uint64_t(tlfs::CallCode::kDisconnectPort), &in, sizeof(in));
  }
  tlfs::Status post(uint32_t connection_id, uint32_t type, uint32_t size, uint8_t fill = 0xAB,
                    uint32_t caller = 0) {
    tlfs::PostMessageInput in{};
    in.connection_id = connection_id;
    in.message_type = type;
    in.payload_size = size;
    for (uint32_t i = 0; i < tlfs::kMaxPayload; ++i) in.payload[i] = static_cast<uint8_t>(fill + i);
    return status(uint64_t(tlfs::CallCode::kPostMessage), &in, sizeof(in), caller);
  }
  tlfs::Status signal(uint32_t connection_id, uint16_t flag, uint32_t caller = 0) {
    tlfs::SignalEventInput in{connection_id, flag, 0};
    return status(uint64_t(tlfs::CallCode::kSignalEvent), &in, sizeof(in), caller);
  }

  tlfs::Message slot(uint32_t vp_index, uint32_t sint) {
    return memory.load<tlfs::Message>(slot_of(vp_index, sint));
  }
  // What a guest does after handling a message: free the slot, then EOM if
  // MessagePending was set (TLFS 11.9.3).
  bool consume(uint32_t vp_index, uint32_t sint) {
    uint64_t at = slot_of(vp_index, sint);
    memory.store<uint32_t>(at, 0);
    bool pending = (memory.load<uint8_t>(at + 5) & tlfs::kMessageFlagPending) != 0;
    if (pending) REQUIRE(wrmsr(vp_index, tlfs::msr::kEom, 0) == MsrResult::kOk);
    return pending;
  }

  std::unique_ptr<Hypervisor> owned;
  Hypervisor* hv;
  FakeMemory memory;
  FakeInterrupts irqs;
  FakeClock clock;
  FakeOverlays overlays;
  FakeTlb tlb;
  Partition* partition;
  uint32_t continuations = 0;
  uint64_t last_rcx = 0;
};

inline constexpr uint64_t kPost = uint64_t(tlfs::CallCode::kPostMessage);
inline constexpr uint64_t kSignal = uint64_t(tlfs::CallCode::kSignalEvent);
inline constexpr uint64_t kCreate = uint64_t(tlfs::CallCode::kCreatePort);
inline constexpr uint64_t kDelete = uint64_t(tlfs::CallCode::kDeletePort);
inline constexpr uint64_t kConnect = uint64_t(tlfs::CallCode::kConnectPort);
inline constexpr uint64_t kDisconnect = uint64_t(tlfs::CallCode::kDisconnectPort);

}  // namespace microhv::test
