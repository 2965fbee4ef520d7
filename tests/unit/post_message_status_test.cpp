// One TEST_CASE per row of the seed's status table (HvCallPostMessage.ko.md),
// named after the status and the condition.
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {
constexpr uint32_t kPort = 7, kConn = 0x100;

// One VP with SINT2 enabled, a message port on it, and a connection.
struct Posting : Guest {
  explicit Posting(uint32_t vps = 1, PartitionFeatures f = kFullFeatures) : Guest(vps, f) {
    enable_synic(0);
    REQUIRE(create_port(kPort, 2, 0) == Status::kSuccess);
    REQUIRE(connect(kConn, kPort) == Status::kSuccess);
  }
};
}  // namespace

TEST_CASE("SUCCESS: message lands in the SIM slot of the target SINT and raises its vector") {
  Posting g;
  REQUIRE(g.post(kConn, 0x1234, 3, 0x10) == Status::kSuccess);
  tlfs::Message m = g.slot(0, 2);
  CHECK(m.message_type == 0x1234);
  CHECK(m.payload_size == 3);
  CHECK(m.message_flags == 0);
  CHECK(m.origin == kPort);
  CHECK(m.payload[0] == 0x10);
  CHECK(m.payload[2] == 0x12);
  REQUIRE(g.irqs.raised.size() == 1);
  CHECK(g.irqs.raised[0].vector == kVector);
  CHECK(g.irqs.raised[0].auto_eoi);
}

TEST_CASE("SUCCESS: only PayloadSize bytes are transferred; the rest of the slot is untouched") {
  // TLFS HvCallPostMessage: "only the first PayloadSize bytes are sent".
  // The slot is prefilled so that bytes the core wrote (zeros or the
  // input's bytes past PayloadSize) would show.
  Posting g;
  const uint64_t slot = slot_of(0, 2);
  for (uint32_t i = 16; i < 256; ++i) g.memory.store<uint8_t>(slot + i, 0xEE);
  REQUIRE(g.post(kConn, 0x1234, 3, 0x10) == Status::kSuccess);  // input payload is 0x10, 0x11...
  tlfs::Message m = g.slot(0, 2);
  CHECK(m.payload_size == 3);
  CHECK(m.payload[2] == 0x12);
  for (uint32_t i = 3; i < tlfs::kMaxPayload; ++i) {
    INFO("payload byte " << i);
    REQUIRE(m.payload[i] == 0xEE);
  }
  // The same for a message that waited in a buffer: first a full one, then
  // (behind it) a short one; the short one lands on top of the full one.
  REQUIRE(g.consume(0, 2) == false);
  REQUIRE(g.post(kConn, 1, 240, 0x40) == Status::kSuccess);
  REQUIRE(g.post(kConn, 2, 5, 0x80) == Status::kSuccess);  // queued: the slot is busy
  REQUIRE(g.consume(0, 2));
  m = g.slot(0, 2);
  REQUIRE(m.message_type == 2);
  CHECK(m.payload_size == 5);
  CHECK(m.payload[4] == 0x84);
  for (uint32_t i = 5; i < tlfs::kMaxPayload; ++i) {
    INFO("payload byte " << i);
    REQUIRE(m.payload[i] == static_cast<uint8_t>(0x40 + i));  // still the first message's
  }
}

TEST_CASE("ACCESS_DENIED: caller's partition lacks the PostMessages privilege") {
  PartitionFeatures f = kFullFeatures;
  f.privileges &= ~tlfs::cpuid::kPostMessages;
  Posting g(1, f);
  CHECK(g.post(kConn, 1, 8) == Status::kAccessDenied);
  CHECK(g.slot(0, 2).message_type == 0);
}

TEST_CASE("ACCESS_DENIED: reported first when other errors also apply") {
  PartitionFeatures f = kFullFeatures;
  f.privileges &= ~tlfs::cpuid::kPostMessages;
  Posting g(1, f);
  CHECK(g.post(0xBAD, 0, 999) == Status::kAccessDenied);  // bad id, type and size too
  // Even a misaligned input page does not hide it.
  CHECK((g.hypercall_raw(kPost, kInputPage + 4, 0) & 0xFFFF) == uint64_t(Status::kAccessDenied));
}

TEST_CASE("INVALID_CONNECTION_ID: the connection id is not known") {
  Posting g;
  CHECK(g.post(kConn + 1, 1, 8) == Status::kInvalidConnectionId);
}

TEST_CASE("INVALID_CONNECTION_ID: reserved bits 31:24 of the connection id are set") {
  Posting g;
  CHECK(g.post(kConn | 0x01000000, 1, 8) == Status::kInvalidConnectionId);
}

TEST_CASE("INVALID_CONNECTION_ID: the connection was disconnected") {
  Posting g;
  REQUIRE(g.disconnect(kConn) == Status::kSuccess);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidConnectionId);
}

TEST_CASE("INVALID_PORT_ID: the port bound to the connection was deleted") {
  Posting g;
  REQUIRE(g.delete_port(kPort) == Status::kSuccess);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidPortId);
}

TEST_CASE("INVALID_PORT_ID: a new port with the deleted one's id does not revive the connection") {
  Posting g;
  REQUIRE(g.delete_port(kPort) == Status::kSuccess);
  REQUIRE(g.create_port(kPort, 2, 0) == Status::kSuccess);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidPortId);
}

TEST_CASE("INVALID_PORT_ID: the port belongs to a partition that is not active") {
  Posting g;
  g.partition->set_active(false);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidPortId);
}

TEST_CASE("INVALID_PORT_ID: the port bound to the connection is not a message port") {
  Guest g(1);
  g.enable_synic(0);
  REQUIRE(g.create_port(9, 2, 0, tlfs::PortType::kEvent, 0, 16) == Status::kSuccess);
  REQUIRE(g.connect(0x200, 9, tlfs::PortType::kEvent) == Status::kSuccess);
  CHECK(g.post(0x200, 1, 8) == Status::kInvalidPortId);
}

TEST_CASE("INVALID_PARAMETER: the most significant bit of the message type is set") {
  Posting g;
  CHECK(g.post(kConn, 0x80000001, 8) == Status::kInvalidParameter);
  CHECK(g.post(kConn, 0x80000000, 8) == Status::kInvalidParameter);
}

TEST_CASE("INVALID_PARAMETER: the message type is 0") {
  Posting g;
  CHECK(g.post(kConn, 0, 8) == Status::kInvalidParameter);
}

TEST_CASE("INVALID_PARAMETER: the payload size exceeds 240 bytes") {
  Posting g;
  CHECK(g.post(kConn, 1, 241) == Status::kInvalidParameter);
  CHECK(g.post(kConn, 1, 0xFFFFFFFF) == Status::kInvalidParameter);
  CHECK(g.post(kConn, 1, 240) == Status::kSuccess);  // the bound itself is fine
  CHECK(g.slot(0, 2).payload_size == 240);
}

TEST_CASE("INVALID_PARAMETER: the RsvdZ field at offset 4 is not zero") {
  Posting g;
  tlfs::PostMessageInput in{};
  in.connection_id = kConn;
  in.rsvdz = 1;
  in.message_type = 1;
  CHECK(g.status(kPost, &in, sizeof(in)) == Status::kInvalidParameter);
}

TEST_CASE("INSUFFICIENT_BUFFERS: the port has no free message buffers") {
  Posting g;
  REQUIRE(g.post(kConn, 1, 4) == Status::kSuccess);  // occupies the slot, no buffer
  for (uint32_t i = 0; i < tlfs::kMessageBuffersPerPort; ++i) {
    REQUIRE(g.post(kConn, 2 + i, 4) == Status::kSuccess);  // queued: one buffer each
  }
  CHECK(g.post(kConn, 99, 4) == Status::kInsufficientBuffers);
  // Freeing one buffer (EOM delivers the next message) makes room again.
  REQUIRE(g.consume(0, 2));
  CHECK(g.post(kConn, 99, 4) == Status::kSuccess);
}

TEST_CASE("INVALID_VP_INDEX: the port's target VP does not exist") {
  Guest g(2);
  g.enable_synic(0);
  REQUIRE(g.create_port(kPort, 2, 5) == Status::kSuccess);
  REQUIRE(g.connect(kConn, kPort) == Status::kSuccess);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidVpIndex);
  // When the VP comes online (an AP starts), the same port works.
  REQUIRE(g.partition->set_vp_count(6));
  g.enable_synic(5);
  CHECK(g.post(kConn, 1, 8) == Status::kSuccess);
  CHECK(g.slot(5, 2).message_type == 1);
}

TEST_CASE("INVALID_VP_INDEX: HV_ANY_VP and no VP is available to receive the message") {
  Guest sender(1, kFullFeatures, 1);
  // The port's partition has no VPs; the sender makes the port there as its parent.
  Guest owner(PartitionConfig{PartitionId(2), 0, kFullFeatures, kDefaultQuota, PartitionId(1)},
              sender.hv);
  tlfs::CreatePortInput in{};
  in.port_partition = 2;
  in.port_id = kPort;
  in.port_info = {1, 0, 2, tlfs::kAnyVp, 0, 0, 0};
  REQUIRE(sender.status(uint64_t(tlfs::CallCode::kCreatePort), &in, sizeof(in)) ==
          Status::kSuccess);
  tlfs::ConnectPortInput c{};
  c.connection_partition = tlfs::kPartitionSelf;
  c.connection_id = kConn;
  c.port_partition = 2;
  c.port_id = kPort;
  c.connection_info.port_type = 1;
  REQUIRE(sender.status(uint64_t(tlfs::CallCode::kConnectPort), &c, sizeof(c)) == Status::kSuccess);
  CHECK(sender.post(kConn, 1, 8) == Status::kInvalidVpIndex);
}

TEST_CASE("INVALID_SYNIC_STATE: the target VP's SynIC is disabled (SCONTROL)") {
  Posting g;
  REQUIRE(g.wrmsr(0, tlfs::msr::kScontrol, 0) == MsrResult::kOk);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidSynicState);
  CHECK(g.slot(0, 2).message_type == 0);
}

TEST_CASE("INVALID_SYNIC_STATE: the target VP's SIM page is disabled (SIMP)") {
  Posting g;
  REQUIRE(g.wrmsr(0, tlfs::msr::kSimp, sim_of(0)) == MsrResult::kOk);  // enable bit clear
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidSynicState);
}

TEST_CASE("INVALID_SYNIC_STATE: the target VP's SIM page is not guest RAM") {
  Posting g;
  REQUIRE(g.wrmsr(0, tlfs::msr::kSimp, (kRamPages * kPageSize) | 1) == MsrResult::kOk);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidSynicState);
}

TEST_CASE("INVALID_SYNIC_STATE: HV_ANY_VP and no VP's SynIC can take the message") {
  Guest g(2);
  REQUIRE(g.create_port(kPort, 2, tlfs::kAnyVp) == Status::kSuccess);
  REQUIRE(g.connect(kConn, kPort) == Status::kSuccess);
  CHECK(g.post(kConn, 1, 8) == Status::kInvalidSynicState);
  g.enable_synic(1);  // VP 1 can; VP 0 still cannot
  CHECK(g.post(kConn, 1, 8) == Status::kSuccess);
  CHECK(g.slot(1, 2).message_type == 1);
}
