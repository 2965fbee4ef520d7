// "Stop the guest" with one guest partition over all CPUs (vmx/smp.hpp):
// the partition stops, every one of its VPs parks at its next entry, its
// ports refuse messages, and the rest of the hypervisor -- another
// partition, microhv's services -- goes on.
#include "tests/unit/harness.hpp"
#include "vmx/smp.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

TEST_CASE("guest stop: every VP of the stopped partition parks; other partitions go on") {
  Hypervisor hv;
  Guest stopped(3, kFullFeatures, 1, &hv);
  Guest other(2, kFullFeatures, 3, &hv);
  for (uint32_t i = 0; i < 3; ++i) CHECK_FALSE(vmx::vp_must_park(&stopped.vp(i)));
  CHECK_FALSE(vmx::vp_must_park(nullptr));  // a CPU that is no VP yet
  // A port of the partition that will stop, reachable from the other one.
  stopped.enable_synic(1, 3);
  tlfs::CreatePortInput in{};
  in.port_partition = tlfs::kPartitionSelf;
  in.port_id = 0x10;
  in.connection_partition = 0;  // anyone may connect
  in.port_info.port_type = static_cast<uint32_t>(tlfs::PortType::kMessage);
  in.port_info.target_sint = 3;
  in.port_info.target_vp = 1;
  REQUIRE(stopped.status(uint64_t(tlfs::CallCode::kCreatePort), &in, sizeof(in)) ==
          Status::kSuccess);
  tlfs::ConnectPortInput c{};
  c.connection_partition = tlfs::kPartitionSelf;
  c.connection_id = 0x20;
  c.port_partition = 1;
  c.port_id = 0x10;
  c.connection_info.port_type = static_cast<uint32_t>(tlfs::PortType::kMessage);
  REQUIRE(other.status(uint64_t(tlfs::CallCode::kConnectPort), &c, sizeof(c)) == Status::kSuccess);
  REQUIRE(other.post(0x20, 1, 8) == Status::kSuccess);

  // VP 2 hits an EPT violation microhv cannot explain: the partition stops.
  vmx::stop_partition(*stopped.partition);
  for (uint32_t i = 0; i < 3; ++i) CHECK(vmx::vp_must_park(&stopped.vp(i)));
  for (uint32_t i = 0; i < 2; ++i) CHECK_FALSE(vmx::vp_must_park(&other.vp(i)));
  // Nothing more is queued for it; the poster is told (no lost SUCCESS).
  CHECK(other.post(0x20, 1, 8) == Status::kInvalidPortId);
  // The other partition's own messaging still works.
  other.enable_synic(0, 3);
  REQUIRE(other.create_port(0x30, 3, 0) == Status::kSuccess);
  REQUIRE(other.connect(0x40, 0x30) == Status::kSuccess);
  CHECK(other.post(0x40, 7, 8) == Status::kSuccess);
  CHECK(other.slot(0, 3).message_type == 7);
}
