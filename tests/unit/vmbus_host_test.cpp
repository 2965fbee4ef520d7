// The built-in VMBus host, driven the way Linux's hv_vmbus drives it: SynIC
// with SINT2 on vector 0xF3 and AutoEOI, then INITIATE_CONTACT,
// REQUESTOFFERS and UNLOAD posted with HvCallPostMessage.
#include "synic/services/vmbus_host.hpp"

#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {

struct Linux : Guest {
  VmbusHost host;
  Linux() : Guest(2) {
    REQUIRE(host.attach(*hv, *partition, PartitionId(0x100)));
    for (uint32_t vp = 0; vp < 2; ++vp) {
      REQUIRE(wrmsr(vp, tlfs::msr::kSimp, sim_of(vp) | 1) == MsrResult::kOk);
      REQUIRE(wrmsr(vp, tlfs::msr::kSint0 + 2, 0xF3 | tlfs::sint_bits::kAutoEoi) == MsrResult::kOk);
      REQUIRE(wrmsr(vp, tlfs::msr::kScontrol, 1) == MsrResult::kOk);
    }
  }
  Status initiate_contact(uint32_t conn, uint32_t version, uint32_t vcpu, uint8_t sint) {
    uint8_t m[40] = {};
    uint32_t type = vmbus::kInitiateContact;
    std::memcpy(m, &type, 4);
    std::memcpy(m + 8, &version, 4);
    std::memcpy(m + 12, &vcpu, 4);
    m[16] = sint;
    return send(conn, m, sizeof(m));
  }
  Status send(uint32_t conn, const void* body, uint32_t size) {
    tlfs::PostMessageInput in{};
    in.connection_id = conn;
    in.message_type = vmbus::kMessageType;
    in.payload_size = size;
    std::memcpy(in.payload, body, size);
    return status(kPost, &in, sizeof(in));
  }
  uint32_t reply_type(uint32_t vp, uint32_t sint = 2) {
    tlfs::Message m = slot(vp, sint);
    if (m.message_type != vmbus::kMessageType) return 0;
    uint32_t t;
    std::memcpy(&t, m.payload, 4);
    return t;
  }
};

}  // namespace

TEST_CASE(
    "VMBus: INITIATE_CONTACT 5.3 on connection 4 gets VERSION_RESPONSE on the named VP and SINT") {
  Linux g;
  REQUIRE(g.initiate_contact(4, vmbus::version(5, 3), 1, 2) == Status::kSuccess);
  tlfs::Message m = g.slot(1, 2);
  REQUIRE(m.message_type == 1);
  CHECK(m.payload_size == 16);
  CHECK(g.reply_type(1) == vmbus::kVersionResponse);
  CHECK(m.payload[8] == 1);  // version_supported
  uint32_t conn_id;
  std::memcpy(&conn_id, m.payload + 12, 4);
  CHECK(conn_id == 4);
  CHECK(g.irqs.count(1, 0xF3) == 1);
  CHECK(g.irqs.raised[0].auto_eoi);
  CHECK(g.host.connected());
  CHECK(g.host.negotiated_version() == vmbus::version(5, 3));
  CHECK(g.slot(0, 2).message_type == 0);  // nothing to the other VP
}

TEST_CASE("VMBus: an unsupported version is refused and the guest's next try succeeds") {
  Linux g;
  REQUIRE(g.initiate_contact(4, vmbus::version(6, 0), 0, 2) == Status::kSuccess);
  CHECK(g.slot(0, 2).payload[8] == 0);
  CHECK_FALSE(g.host.connected());
  g.consume(0, 2);
  REQUIRE(g.initiate_contact(4, vmbus::version(5, 2), 0, 2) == Status::kSuccess);
  CHECK(g.slot(0, 2).payload[8] == 1);
  CHECK(g.host.negotiated_version() == vmbus::version(5, 2));
}

TEST_CASE("VMBus: versions below 5.0 use connection 1 and SINT 2 whatever the message says") {
  Linux g;
  REQUIRE(g.initiate_contact(1, vmbus::version(4, 0), 0, 7) == Status::kSuccess);
  CHECK(g.reply_type(0, 2) == vmbus::kVersionResponse);
  CHECK(g.slot(0, 2).payload[8] == 1);
}

TEST_CASE("VMBus: REQUESTOFFERS is answered by ALLOFFERS_DELIVERED, UNLOAD by UNLOAD_RESPONSE") {
  Linux g;
  REQUIRE(g.initiate_contact(4, vmbus::version(5, 3), 0, 2) == Status::kSuccess);
  g.consume(0, 2);
  uint32_t request[2] = {vmbus::kRequestOffers, 0};
  REQUIRE(g.send(4, request, sizeof(request)) == Status::kSuccess);
  CHECK(g.reply_type(0) == vmbus::kAllOffersDelivered);
  g.consume(0, 2);
  uint32_t unload[2] = {vmbus::kUnload, 0};
  REQUIRE(g.send(4, unload, sizeof(unload)) == Status::kSuccess);
  CHECK(g.reply_type(0) == vmbus::kUnloadResponse);
  CHECK_FALSE(g.host.connected());
  CHECK(g.host.messages_received() == 3);
  CHECK(g.host.replies_delivered() == 3);
}

TEST_CASE("VMBus: a reply to a busy slot waits with MessagePending until EOM") {
  Linux g;
  REQUIRE(g.initiate_contact(4, vmbus::version(5, 3), 0, 2) == Status::kSuccess);
  uint32_t request[2] = {vmbus::kRequestOffers, 0};
  REQUIRE(g.send(4, request, sizeof(request)) == Status::kSuccess);  // slot still busy
  CHECK(g.reply_type(0) == vmbus::kVersionResponse);
  CHECK((g.slot(0, 2).message_flags & tlfs::kMessageFlagPending) != 0);
  REQUIRE(g.consume(0, 2));
  CHECK(g.reply_type(0) == vmbus::kAllOffersDelivered);
}

TEST_CASE("VMBus: the host's partition is microhv's own: guests cannot add or delete its ports") {
  Linux g;
  tlfs::CreatePortInput in{};
  in.port_partition = 0x100;
  in.port_id = 2;
  in.port_info = {1, 0, 2, 0, 0, 0, 0};
  CHECK(g.status(uint64_t(tlfs::CallCode::kCreatePort), &in, sizeof(in)) == Status::kAccessDenied);
  tlfs::DeletePortInput del{0x100, 1, 0};
  CHECK(g.status(uint64_t(tlfs::CallCode::kDeletePort), &del, sizeof(del)) ==
        Status::kAccessDenied);
}

TEST_CASE("VMBus: malformed messages are accepted and ignored, never crash the host") {
  Linux g;
  uint8_t tiny[4] = {14, 0, 0, 0};
  CHECK(g.send(4, tiny, sizeof(tiny)) == Status::kSuccess);
  uint32_t odd[2] = {0xFFFFFFFF, 0};
  CHECK(g.send(4, odd, sizeof(odd)) == Status::kSuccess);
  CHECK(g.slot(0, 2).message_type == 0);
  // INITIATE_CONTACT naming a VP that does not exist: the reply cannot be sent.
  CHECK(g.initiate_contact(4, vmbus::version(5, 3), 9, 2) == Status::kSuccess);
  CHECK(g.host.replies_delivered() == 0);
}
