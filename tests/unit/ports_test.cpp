// Ports and connections through CreatePort, DeletePort, ConnectPort and
// DisconnectPort, and the privileges that guard them.
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {

tlfs::CreatePortInput message_port(uint32_t id, uint32_t sint = 2, uint32_t vp = 0) {
  tlfs::CreatePortInput in{};
  in.port_partition = tlfs::kPartitionSelf;
  in.port_id = id;
  in.port_info = {1, 0, sint, vp, 0, 0, 0};
  return in;
}
}  // namespace

TEST_CASE("Ports: a duplicate port id in the same partition is INVALID_PORT_ID") {
  Guest g(1);
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  CHECK(g.create_port(1, 3, 0) == Status::kInvalidPortId);
}

TEST_CASE("Ports: invalid port info is INVALID_PARAMETER") {
  Guest g(1);
  CHECK(g.create_port(1, 0, 0) == Status::kInvalidParameter);   // SINT 0 is reserved
  CHECK(g.create_port(1, 16, 0) == Status::kInvalidParameter);  // no SINT 16
  CHECK(g.create_port(1, 2, 0, tlfs::PortType::kMonitor) == Status::kInvalidParameter);
  CHECK(g.create_port(1, 2, 0, static_cast<tlfs::PortType>(0)) == Status::kInvalidParameter);
  CHECK(g.create_port(1, 2, 0, tlfs::PortType::kEvent, 0, 0) == Status::kInvalidParameter);
  CHECK(g.create_port(1, 2, 0, tlfs::PortType::kEvent, 2000, 49) == Status::kInvalidParameter);
  CHECK(g.create_port(1, 2, 0, tlfs::PortType::kMessage, 0, 5) == Status::kInvalidParameter);
  tlfs::CreatePortInput in = message_port(1);
  in.port_vtl = 1;
  CHECK(g.status(kCreate, &in, sizeof(in)) == Status::kInvalidParameter);
  in = message_port(1);
  in.rsvdz0 = 1;
  CHECK(g.status(kCreate, &in, sizeof(in)) == Status::kInvalidParameter);
  CHECK(g.create_port(1, 2, 0) == Status::kSuccess);
}

TEST_CASE("Ports: an unknown partition id is INVALID_PARTITION_ID") {
  Guest g(1);
  tlfs::CreatePortInput in = message_port(1);
  in.port_partition = 77;
  CHECK(g.status(kCreate, &in, sizeof(in)) == Status::kInvalidPartitionId);
  in = message_port(1);
  in.port_partition = 1;  // our own id, spelled out
  CHECK(g.status(kCreate, &in, sizeof(in)) == Status::kSuccess);
}

TEST_CASE("Ports: CreatePort and DeletePort need the CreatePort privilege") {
  PartitionFeatures f = kFullFeatures;
  f.privileges &= ~tlfs::cpuid::kCreatePort;
  Guest g(1, f);
  CHECK(g.create_port(1, 2, 0) == Status::kAccessDenied);
  CHECK(g.delete_port(1) == Status::kAccessDenied);
}

TEST_CASE("Ports: ConnectPort and DisconnectPort need the ConnectPort privilege") {
  PartitionFeatures f = kFullFeatures;
  f.privileges &= ~tlfs::cpuid::kConnectPort;
  Guest g(1, f);
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  CHECK(g.connect(5, 1) == Status::kAccessDenied);
  CHECK(g.disconnect(5) == Status::kAccessDenied);
}

TEST_CASE(
    "Ports: connecting to a missing port is INVALID_PORT_ID, a type mismatch INVALID_PARAMETER") {
  Guest g(1);
  CHECK(g.connect(5, 1) == Status::kInvalidPortId);
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  CHECK(g.connect(5, 1, tlfs::PortType::kEvent) == Status::kInvalidParameter);
}

TEST_CASE("Ports: duplicate or malformed connection ids are INVALID_CONNECTION_ID") {
  Guest g(1);
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  REQUIRE(g.connect(5, 1) == Status::kSuccess);
  CHECK(g.connect(5, 1) == Status::kInvalidConnectionId);
  CHECK(g.connect(0x01000006, 1) == Status::kInvalidConnectionId);
  CHECK(g.disconnect(6) == Status::kInvalidConnectionId);
}

TEST_CASE("Ports: deleting a missing port is INVALID_PORT_ID") {
  Guest g(1);
  CHECK(g.delete_port(1) == Status::kInvalidPortId);
  REQUIRE(g.create_port(1, 2, 0) == Status::kSuccess);
  REQUIRE(g.delete_port(1) == Status::kSuccess);
  CHECK(g.delete_port(1) == Status::kInvalidPortId);
}

TEST_CASE("Ports: a port naming its connection partition refuses other partitions") {
  Guest a(1, kFullFeatures, 1);
  // Partition 1 makes the port in partition 2 as 2's parent (TLFS
  // HvCallCreatePort: the caller is the partition or its parent).
  Guest b(PartitionConfig{PartitionId(2), 1, kFullFeatures, kDefaultQuota, PartitionId(1)}, a.hv);
  Guest c(1, kFullFeatures, 3, a.hv);
  b.enable_synic(0);
  tlfs::CreatePortInput in = message_port(1);
  in.port_partition = 2;
  in.connection_partition = 3;  // only partition 3 may connect
  REQUIRE(a.status(kCreate, &in, sizeof(in)) == Status::kSuccess);
  tlfs::ConnectPortInput conn{};
  conn.connection_partition = tlfs::kPartitionSelf;
  conn.connection_id = 9;
  conn.port_partition = 2;
  conn.port_id = 1;
  conn.connection_info.port_type = 1;
  CHECK(a.status(kConnect, &conn, sizeof(conn)) == Status::kAccessDenied);
  REQUIRE(c.status(kConnect, &conn, sizeof(conn)) == Status::kSuccess);
  // Partition 3 now posts to partition 2's VP 0; partition 1 has no such connection.
  CHECK(c.post(9, 1, 4) == Status::kSuccess);
  CHECK(b.slot(0, 2).message_type == 1);
  CHECK(a.post(9, 1, 4) == Status::kInvalidConnectionId);
}

TEST_CASE("Ports: a partition holds at most its quota of ports; then INSUFFICIENT_MEMORY") {
  Guest g(1);
  const uint32_t quota = g.partition->quota().ports;
  REQUIRE(quota == kDefaultQuota.ports);
  for (uint32_t i = 0; i < quota; ++i) REQUIRE(g.create_port(i + 1, 2, 0) == Status::kSuccess);
  CHECK(g.create_port(1000, 2, 0) == Status::kInsufficientMemory);
  REQUIRE(g.delete_port(1) == Status::kSuccess);
  CHECK(g.create_port(1000, 2, 0) == Status::kSuccess);
}
