// Everything a guest can make the core allocate has a bound and a status:
// ports (TLFS HvCallCreatePort: INSUFFICIENT_MEMORY when the receiver's pool
// is used up), connections (HvCallConnectPort: the sender's pool), message
// buffers (HvCallPostMessage: INSUFFICIENT_BUFFERS when the port's 16 are in
// use). Each is tried at its bound, and one partition's use never takes
// another's share.
#include "kernel/hypervisor.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

TEST_CASE("Quota: connections are bounded by the connecting partition's quota") {
  Guest g(1);
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  const uint32_t quota = kDefaultQuota.connections;
  for (uint32_t c = 1; c <= quota; ++c) REQUIRE(g.connect(c, 1) == Status::kSuccess);
  CHECK(g.connect(quota + 1, 1) == Status::kInsufficientMemory);
  REQUIRE(g.disconnect(1) == Status::kSuccess);
  CHECK(g.connect(quota + 1, 1) == Status::kSuccess);
}

TEST_CASE("Quota: a deleted port still holding messages counts until they are delivered") {
  Guest g(1);
  g.enable_synic(0);
  const uint32_t quota = kDefaultQuota.ports;
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  REQUIRE(g.connect(1, 1) == Status::kSuccess);
  REQUIRE(g.post(1, 1, 8) == Status::kSuccess);  // into the slot
  REQUIRE(g.post(1, 1, 8) == Status::kSuccess);  // into a buffer of port 1
  REQUIRE(g.delete_port(1) == Status::kSuccess);
  for (uint32_t i = 2; i <= quota; ++i) REQUIRE(g.create_port(i, 2, 0) == Status::kSuccess);
  // quota - 1 live ports plus the draining one.
  CHECK(g.create_port(100, 2, 0) == Status::kInsufficientMemory);
  REQUIRE(g.consume(0, 2));  // the buffered message reaches the slot: port 1's slot is free
  CHECK(g.create_port(100, 2, 0) == Status::kSuccess);
}

TEST_CASE("Quota: one partition using up its ports leaves another's share alone") {
  Guest a(1, kFullFeatures, 1);
  Guest b(1, kFullFeatures, 2, a.hv);
  for (uint32_t i = 0; i < kDefaultQuota.ports; ++i) {
    REQUIRE(a.create_port(i + 1, 2, 0) == Status::kSuccess);
  }
  REQUIRE(a.create_port(1000, 2, 0) == Status::kInsufficientMemory);
  for (uint32_t i = 0; i < kDefaultQuota.ports; ++i) {
    REQUIRE(b.create_port(i + 1, 2, 0) == Status::kSuccess);
  }
  CHECK(b.create_port(1000, 2, 0) == Status::kInsufficientMemory);
}

TEST_CASE("Quota: partitions cannot reserve more than the tables hold") {
  Hypervisor hv;
  FakeMemory memory(1);
  FakeInterrupts irqs;
  FakeClock clock;
  FakeOverlays overlays;
  FakeTlb tlb;
  const PartitionQuota big{kMaxPorts - 1, kMaxConnections - 1};
  REQUIRE(hv.create_partition({PartitionId(1), 1, kFullFeatures, big}, memory, irqs, clock,
                              overlays, tlb) != nullptr);
  CHECK(hv.create_partition({PartitionId(2), 1, kFullFeatures, PartitionQuota{2, 1}}, memory, irqs,
                            clock, overlays, tlb) == nullptr);
  CHECK(hv.create_partition({PartitionId(2), 1, kFullFeatures, PartitionQuota{1, 2}}, memory, irqs,
                            clock, overlays, tlb) == nullptr);
  CHECK(hv.create_partition({PartitionId(2), 1, kFullFeatures, PartitionQuota{1, 1}}, memory, irqs,
                            clock, overlays, tlb) != nullptr);
  CHECK(hv.reserved().ports == kMaxPorts);
  CHECK(hv.reserved().connections == kMaxConnections);
}

TEST_CASE("Quota: the default share lets every partition slot be used") {
  STATIC_REQUIRE(kDefaultQuota.ports * kMaxPartitions <= kMaxPorts);
  STATIC_REQUIRE(kDefaultQuota.connections * kMaxPartitions <= kMaxConnections);
  Guest a(1, kFullFeatures, 1);
  Guest b(1, kFullFeatures, 2, a.hv);
  Guest c(1, kFullFeatures, 3, a.hv);
  Guest d(1, kFullFeatures, 4, a.hv);
  CHECK(d.partition != nullptr);
}

TEST_CASE("Quota: a parent's ports in its child are charged to the child") {
  Guest parent(1, kFullFeatures, 1);
  Guest child(
      PartitionConfig{PartitionId(2), 1, kFullFeatures, PartitionQuota{1, 1}, PartitionId(1)},
      parent.hv);
  tlfs::CreatePortInput in{};
  in.port_partition = 2;
  in.port_id = 1;
  in.port_info = {1, 0, 2, 0, 0, 0, 0};
  REQUIRE(parent.status(uint64_t(tlfs::CallCode::kCreatePort), &in, sizeof(in)) ==
          Status::kSuccess);
  in.port_id = 2;
  CHECK(parent.status(uint64_t(tlfs::CallCode::kCreatePort), &in, sizeof(in)) ==
        Status::kInsufficientMemory);
  CHECK(parent.create_port(2, 2, 0) == Status::kSuccess);  // the parent's own share is untouched
}
