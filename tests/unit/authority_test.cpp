// Partition authority in the port calls. The TLFS pages of HvCallCreatePort,
// HvCallDeletePort, HvCallConnectPort and HvCallDisconnectPort: the
// partition a call acts on (PortPartition, resp. ConnectionPartition) must
// be the caller itself -- HV_PARTITION_ID_SELF or its own id -- or a
// partition the caller is the parent of, else HV_STATUS_ACCESS_DENIED; an id
// that names no partition is HV_STATUS_INVALID_PARTITION_ID; a partition
// that is not active is HV_STATUS_INVALID_PARTITION_STATE. microhv's service
// partitions have no parent, so no guest can act on them.
//
// The layout: partition 1 (the caller, 2 VPs), 2 its child, 3 a sibling
// guest, 4 a service partition. Every call is tried against each.
#include "kernel/hypervisor.hpp"
#include "synic/messaging.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {

constexpr uint64_t kSelfId = 1, kChildId = 2, kSiblingId = 3, kServiceId = 4, kUnknownId = 77;

struct NullService final : MessageService {
  Status on_message(Port&, const OutgoingMessage&) override { return Status::kSuccess; }
};

// Partitions 1..4 sharing one hypervisor; the quota is split four ways.
struct World {
  Guest self{PartitionConfig{PartitionId(kSelfId), 2, kFullFeatures}};
  Guest child{
      PartitionConfig{PartitionId(kChildId), 1, kFullFeatures, kDefaultQuota, PartitionId(kSelfId)},
      self.hv};
  Guest sibling{PartitionConfig{PartitionId(kSiblingId), 1, kFullFeatures}, self.hv};
  NullService service_impl;
  Partition* service = nullptr;

  World() {
    LockGuard guard(self.hv->lock);
    service =
        self.hv->create_service_partition(PartitionId(kServiceId), service_impl, kDefaultQuota);
    REQUIRE(service != nullptr);
  }

  // A message port with id `port` in partition `in`, made by that partition
  // itself (or, for the service, directly in the core).
  void make_port(Partition& in, uint32_t port, Partition* connector = nullptr) {
    LockGuard guard(self.hv->lock);
    REQUIRE(create_port(in, {PortId(port), tlfs::PortType::kMessage, 2, VpIndex(0), 0, 0},
                        connector) == Status::kSuccess);
  }
  void make_connection(Partition& in, uint32_t conn, Partition& owner, uint32_t port) {
    LockGuard guard(self.hv->lock);
    REQUIRE(connect_port(in, ConnectionId(conn), owner, PortId(port), tlfs::PortType::kMessage) ==
            Status::kSuccess);
  }
  bool port_exists(Partition& in, uint32_t port) {
    return self.hv->ports.find_port(&in, PortId(port)) != nullptr;
  }
  bool connection_exists(Partition& in, uint32_t conn) {
    return self.hv->ports.find_connection(&in, ConnectionId(conn)) != nullptr;
  }

  Status create_in(uint64_t partition, uint32_t port) {
    tlfs::CreatePortInput in{};
    in.port_partition = partition;
    in.port_id = port;
    in.port_info = {1, 0, 2, 0, 0, 0, 0};
    return self.status(kCreate, &in, sizeof(in));
  }
  Status delete_in(uint64_t partition, uint32_t port) {
    tlfs::DeletePortInput in{partition, port, 0};
    return self.status(kDelete, &in, sizeof(in));
  }
  Status connect_as(uint64_t connection_partition, uint32_t conn, uint64_t port_partition,
                    uint32_t port) {
    tlfs::ConnectPortInput in{};
    in.connection_partition = connection_partition;
    in.connection_id = conn;
    in.port_partition = port_partition;
    in.port_id = port;
    in.connection_info.port_type = 1;
    return self.status(kConnect, &in, sizeof(in));
  }
  Status disconnect_as(uint64_t connection_partition, uint32_t conn) {
    tlfs::DisconnectPortInput in{connection_partition, conn, 0};
    return self.status(kDisconnect, &in, sizeof(in));
  }
};

}  // namespace

TEST_CASE("Authority: CreatePort acts on the caller or its child, nowhere else") {
  World w;
  CHECK(w.create_in(tlfs::kPartitionSelf, 10) == Status::kSuccess);
  CHECK(w.create_in(kSelfId, 11) == Status::kSuccess);
  CHECK(w.create_in(kChildId, 12) == Status::kSuccess);
  CHECK(w.port_exists(*w.child.partition, 12));
  CHECK(w.create_in(kSiblingId, 13) == Status::kAccessDenied);
  CHECK(w.create_in(kServiceId, 14) == Status::kAccessDenied);
  CHECK(w.create_in(kUnknownId, 15) == Status::kInvalidPartitionId);
  CHECK(w.create_in(0, 16) == Status::kInvalidPartitionId);  // 0 names no partition
  CHECK_FALSE(w.port_exists(*w.sibling.partition, 13));
  CHECK_FALSE(w.port_exists(*w.service, 14));
  // A child does not act on its parent.
  tlfs::CreatePortInput up{};
  up.port_partition = kSelfId;
  up.port_id = 17;
  up.port_info = {1, 0, 2, 0, 0, 0, 0};
  CHECK(w.child.status(kCreate, &up, sizeof(up)) == Status::kAccessDenied);
}

TEST_CASE("Authority: CreatePort's ConnectionPartition must exist") {
  World w;
  tlfs::CreatePortInput in{};
  in.port_partition = tlfs::kPartitionSelf;
  in.port_id = 10;
  in.port_info = {1, 0, 2, 0, 0, 0, 0};
  in.connection_partition = kUnknownId;
  CHECK(w.self.status(kCreate, &in, sizeof(in)) == Status::kInvalidPartitionId);
  in.connection_partition = kSiblingId;  // naming who may connect is no act on it
  CHECK(w.self.status(kCreate, &in, sizeof(in)) == Status::kSuccess);
}

TEST_CASE("Authority: DeletePort acts on the caller or its child, nowhere else") {
  World w;
  for (Partition* p : {w.self.partition, w.child.partition, w.sibling.partition, w.service}) {
    w.make_port(*p, 20);
  }
  CHECK(w.delete_in(kSiblingId, 20) == Status::kAccessDenied);
  CHECK(w.delete_in(kServiceId, 20) == Status::kAccessDenied);
  CHECK(w.delete_in(kUnknownId, 20) == Status::kInvalidPartitionId);
  CHECK(w.port_exists(*w.sibling.partition, 20));
  CHECK(w.port_exists(*w.service, 20));
  CHECK(w.delete_in(kChildId, 20) == Status::kSuccess);
  CHECK_FALSE(w.port_exists(*w.child.partition, 20));
  CHECK(w.delete_in(kSelfId, 20) == Status::kSuccess);
  CHECK_FALSE(w.port_exists(*w.self.partition, 20));
}

TEST_CASE("Authority: ACCESS_DENIED comes before the port id is looked at") {
  World w;
  // The sibling has no port 999: naming it must not tell the caller so.
  CHECK(w.delete_in(kSiblingId, 999) == Status::kAccessDenied);
  CHECK(w.delete_in(kServiceId, 999) == Status::kAccessDenied);
}

TEST_CASE("Authority: ConnectPort makes connections for the caller or its child only") {
  World w;
  w.make_port(*w.sibling.partition, 30);  // any partition may connect
  CHECK(w.connect_as(tlfs::kPartitionSelf, 1, kSiblingId, 30) == Status::kSuccess);
  CHECK(w.connect_as(kSelfId, 2, kSiblingId, 30) == Status::kSuccess);
  CHECK(w.connect_as(kChildId, 3, kSiblingId, 30) == Status::kSuccess);
  CHECK(w.connection_exists(*w.child.partition, 3));
  CHECK(w.connect_as(kSiblingId, 4, kSiblingId, 30) == Status::kAccessDenied);
  CHECK(w.connect_as(kServiceId, 5, kSiblingId, 30) == Status::kAccessDenied);
  CHECK(w.connect_as(kUnknownId, 6, kSiblingId, 30) == Status::kInvalidPartitionId);
  CHECK(w.connect_as(tlfs::kPartitionSelf, 7, kUnknownId, 30) == Status::kInvalidPartitionId);
  CHECK_FALSE(w.connection_exists(*w.sibling.partition, 4));
  CHECK_FALSE(w.connection_exists(*w.service, 5));
}

TEST_CASE("Authority: DisconnectPort acts on the caller's or its child's connections only") {
  World w;
  w.make_port(*w.self.partition, 40);
  for (Partition* p : {w.self.partition, w.child.partition, w.sibling.partition, w.service}) {
    w.make_connection(*p, 41, *w.self.partition, 40);
  }
  CHECK(w.disconnect_as(kSiblingId, 41) == Status::kAccessDenied);
  CHECK(w.disconnect_as(kServiceId, 41) == Status::kAccessDenied);
  CHECK(w.disconnect_as(kUnknownId, 41) == Status::kInvalidPartitionId);
  CHECK(w.connection_exists(*w.sibling.partition, 41));
  CHECK(w.connection_exists(*w.service, 41));
  CHECK(w.disconnect_as(kChildId, 41) == Status::kSuccess);
  CHECK_FALSE(w.connection_exists(*w.child.partition, 41));
  CHECK(w.disconnect_as(tlfs::kPartitionSelf, 41) == Status::kSuccess);
  CHECK_FALSE(w.connection_exists(*w.self.partition, 41));
}

TEST_CASE("Authority: a partition that is not active is INVALID_PARTITION_STATE") {
  World w;
  w.make_port(*w.child.partition, 50);
  w.child.partition->set_active(false);
  CHECK(w.create_in(kChildId, 51) == Status::kInvalidPartitionState);
  CHECK(w.delete_in(kChildId, 50) == Status::kInvalidPartitionState);
  CHECK(w.connect_as(kChildId, 52, kSelfId, 50) == Status::kInvalidPartitionState);
  CHECK(w.disconnect_as(kChildId, 52) == Status::kInvalidPartitionState);
  // As the port's partition of ConnectPort too.
  CHECK(w.connect_as(tlfs::kPartitionSelf, 53, kChildId, 50) == Status::kInvalidPartitionState);
}

TEST_CASE("Authority: a pinned port of a service cannot be deleted by its partition") {
  World w;
  {
    LockGuard guard(w.self.hv->lock);
    REQUIRE(create_port(*w.self.partition,
                        {PortId(60), tlfs::PortType::kMessage, 2, VpIndex(0), 0, 0, true},
                        w.service) == Status::kSuccess);
  }
  CHECK(w.delete_in(tlfs::kPartitionSelf, 60) == Status::kAccessDenied);
  CHECK(w.port_exists(*w.self.partition, 60));
  // Reserved for the service: the partition cannot connect to it either.
  CHECK(w.connect_as(tlfs::kPartitionSelf, 61, tlfs::kPartitionSelf, 60) == Status::kAccessDenied);
}

TEST_CASE("Authority: a partition's privileges are checked before any partition id") {
  PartitionFeatures f = kFullFeatures;
  f.privileges &= ~(tlfs::cpuid::kCreatePort | tlfs::cpuid::kConnectPort);
  Guest g(1, f);
  tlfs::DeletePortInput del{kUnknownId, 1, 0};
  CHECK(g.status(kDelete, &del, sizeof(del)) == Status::kAccessDenied);
  tlfs::DisconnectPortInput dis{kUnknownId, 1, 0};
  CHECK(g.status(kDisconnect, &dis, sizeof(dis)) == Status::kAccessDenied);
}
