// The core fuzz target's world: partition 1 (2 VPs, 32 pages of RAM with a
// 4-page hole of "hypervisor memory"), the VMBus host (2) attached to it,
// partition 3 (a child of 1) and partition 4 (a sibling), 1 VP and 8 pages
// each, and the oracle's shadow of the same. It is built once; each input
// starts from a copy of that state (the core's tables, the VMBus host, the
// oracle) with the guests' RAM cleared.
#pragma once

#include <memory>
#include <new>
#include <type_traits>

#include "kernel/hypervisor.hpp"
#include "synic/services/vmbus_host.hpp"
#include "tests/fuzz/core_oracle.hpp"

namespace microhv::fuzz {

static_assert(std::is_trivially_copyable_v<Hypervisor>, "the world is reset by copying it");

struct GuestSide {
  uint64_t id;
  uint32_t vps;
  uint64_t pages;
  uint64_t parent;
  test::FakeMemory memory;
  test::FakeInterrupts irqs;
  test::FakeTlb tlb;
  test::FakeOverlays overlays;
  Partition* partition = nullptr;
  uint32_t privileges = kFullFeatures.privileges;  // what the world gave it
  GuestSide(uint64_t i, uint32_t v, uint64_t p, uint64_t par)
      : id(i), vps(v), pages(p), parent(par), memory(p) {}
  // SIM and SIEF page of a VP when the fuzzer sets its SynIC up.
  uint64_t sim_page(uint32_t vp) const { return pages == 32 ? 8 + 2 * vp : 2; }
};

// What every partition of this world offers: everything but the IPI and
// remote-flush hints, whose calls raise interrupts and flushes this oracle
// does not model (rep_fuzz.cpp covers them). build() and reset() both use it.
inline PartitionFeatures world_features() {
  PartitionFeatures f = kFullFeatures;
  f.hints = tlfs::cpuid::kHintRelaxedTiming;
  return f;
}

struct World {
  alignas(Hypervisor) unsigned char hv_storage[sizeof(Hypervisor)];
  alignas(VmbusHost) unsigned char vmbus_storage[sizeof(VmbusHost)];
  Hypervisor* hv = nullptr;
  VmbusHost* vmbus = nullptr;
  test::FakeClock clock;
  GuestSide sides[3] = {{kGuestA, 2, 32, 0}, {kChild, 1, 8, kGuestA}, {kSibling, 1, 8, 0}};
  Oracle oracle;

  World() {
    sides[0].memory.hole_start = 24 * kPageSize;  // "hypervisor memory" inside the range
    sides[0].memory.hole_end = 28 * kPageSize;
  }

  // Builds the world once; every later input starts from a copy of it.
  void build() {
    hv = new (hv_storage) Hypervisor;
    for (GuestSide& s : sides) {
      const PartitionFeatures features = world_features();
      s.partition = hv->create_partition(
          {PartitionId(s.id), s.vps, features, kDefaultQuota, PartitionId(s.parent),
           TimeBase{test::FakeClock::kTscHz, 100'000'000}},
          s.memory, s.irqs, clock, s.overlays, s.tlb);
      expect(s.partition != nullptr, "world: partition not created");
      ShadowPartition shadow;
      shadow.id = s.id;
      shadow.parent = s.parent;
      shadow.quota = kDefaultQuota;
      shadow.vps.resize(s.vps);
      shadow.memory = &s.memory;
      shadow.irqs = &s.irqs;
      oracle.partitions.push_back(std::move(shadow));
      if (s.id == kGuestA) attach_vmbus(s);
    }
    pristine_hv = std::make_unique<Hypervisor>(*hv);
    pristine_vmbus = std::make_unique<VmbusHost>(*vmbus);
    pristine_oracle = oracle;
  }

  // Back to the state build() made: the core's tables and the VMBus host by
  // copy (the partitions point at the same memories and sinks), the guests'
  // RAM cleared.
  void reset(uint32_t privileges_a) {
    if (pristine_hv == nullptr) build();
    *hv = *pristine_hv;
    *vmbus = *pristine_vmbus;
    oracle = pristine_oracle;
    for (GuestSide& s : sides) {
      std::memset(s.memory.bytes.data(), 0, s.memory.bytes.size());
      s.memory.writes.clear();
      s.irqs.raised.clear();
      s.overlays.calls.clear();
    }
    PartitionFeatures f = world_features();
    f.privileges &= privileges_a;
    sides[0].partition->set_features(f);
    sides[0].privileges = f.privileges;
  }

  std::unique_ptr<Hypervisor> pristine_hv;
  std::unique_ptr<VmbusHost> pristine_vmbus;
  Oracle pristine_oracle;

  // The VMBus host and its wiring as the guest is told it (vmbus_host.hpp).
  void attach_vmbus(GuestSide& a) {
    vmbus = new (vmbus_storage) VmbusHost;
    expect(vmbus->attach(*hv, *a.partition, PartitionId(kHost)), "world: VMBus host not attached");
    ShadowPartition host;
    host.id = kHost;
    host.service = true;
    host.quota = vmbus::kHostQuota;
    oracle.partitions.push_back(host);
    using namespace vmbus_wire;
    oracle.ports.push_back({kHost, kHostPort, true, 2, 0, 0, 0, kGuestA, false});
    oracle.connections.push_back({kGuestA, 4, 0});
    oracle.connections.push_back({kGuestA, 1, 0});
    oracle.ports.push_back({kGuestA, kReplyPort, true, 2, 0, 0, 0, kHost, true});
    oracle.reply_port = 1;
    oracle.connections.push_back({kHost, kReplyConnection, 1});
  }

  GuestSide& side(uint64_t id) {
    for (GuestSide& s : sides) {
      if (s.id == id) return s;
    }
    bug("world: no such side");
  }
};

inline World& world() {
  static World* w = new World;  // one instance for every input
  return *w;
}

}  // namespace microhv::fuzz
