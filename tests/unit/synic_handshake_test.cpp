// The SIM slot handshake: busy slot, MessagePending, EOM, FIFO order, masked
// SINTs, disabled SIM/SynIC, non-AutoEOI SINTs (TLFS 11.9).
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {
struct Channel : Guest {
  explicit Channel(bool auto_eoi = true) : Guest(1) {
    enable_synic(0, 2, auto_eoi);
    REQUIRE(create_port(1, 2, 0) == Status::kSuccess);
    REQUIRE(connect(5, 1) == Status::kSuccess);
  }
};
}  // namespace

TEST_CASE("Handshake: a busy slot queues the message, sets MessagePending, returns SUCCESS") {
  Channel g;
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  tlfs::Message m = g.slot(0, 2);
  CHECK(m.message_type == 1);  // the first message stays
  CHECK((m.message_flags & tlfs::kMessageFlagPending) != 0);
  CHECK(g.irqs.raised.size() == 1);  // no interrupt for a queued message
}

TEST_CASE("Handshake: EOM after freeing the slot delivers the next message and interrupts") {
  Channel g;
  for (uint32_t t = 1; t <= 3; ++t) REQUIRE(g.post(5, t, 4) == Status::kSuccess);
  REQUIRE(g.consume(0, 2));
  CHECK(g.slot(0, 2).message_type == 2);
  CHECK((g.slot(0, 2).message_flags & tlfs::kMessageFlagPending) != 0);  // 3 still waits
  CHECK(g.irqs.raised.size() == 2);
  REQUIRE(g.consume(0, 2));
  CHECK(g.slot(0, 2).message_type == 3);
  CHECK(g.slot(0, 2).message_flags == 0);  // nothing more queued
  CHECK_FALSE(g.consume(0, 2));            // so no EOM is needed
  CHECK(g.slot(0, 2).message_type == 0);
  CHECK(g.irqs.raised.size() == 3);
}

TEST_CASE("Handshake: FIFO order is kept across the full 16-buffer queue") {
  Channel g;
  for (uint32_t t = 1; t <= 17; ++t)
    REQUIRE(g.post(5, t, 1, static_cast<uint8_t>(t)) == Status::kSuccess);
  for (uint32_t t = 1; t <= 17; ++t) {
    tlfs::Message m = g.slot(0, 2);
    REQUIRE(m.message_type == t);
    CHECK(m.payload[0] == t);
    g.consume(0, 2);
  }
  CHECK(g.slot(0, 2).message_type == 0);
}

TEST_CASE("Handshake: EOM while the slot is still busy delivers nothing and keeps Pending") {
  Channel g;
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  REQUIRE(g.wrmsr(0, tlfs::msr::kEom, 0) == MsrResult::kOk);
  CHECK(g.slot(0, 2).message_type == 1);
  CHECK((g.slot(0, 2).message_flags & tlfs::kMessageFlagPending) != 0);
}

TEST_CASE("Handshake: a slot freed without EOM is refilled by the next post, in order") {
  Channel g;
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  g.memory.store<uint32_t>(slot_of(0, 2), 0);  // guest frees it but skips EOM
  REQUIRE(g.post(5, 3, 4) == Status::kSuccess);
  CHECK(g.slot(0, 2).message_type == 2);  // the queued one first
  g.consume(0, 2);
  CHECK(g.slot(0, 2).message_type == 3);
}

TEST_CASE("Handshake: a masked SINT receives the message but raises no interrupt") {
  Channel g;
  REQUIRE(g.wrmsr(0, tlfs::msr::kSint0 + 2, kVector | tlfs::sint_bits::kMasked) == MsrResult::kOk);
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  CHECK(g.slot(0, 2).message_type == 1);
  CHECK(g.irqs.raised.empty());
  // Unmasking does not replay the lost edge.
  REQUIRE(g.wrmsr(0, tlfs::msr::kSint0 + 2, kVector) == MsrResult::kOk);
  CHECK(g.irqs.raised.empty());
}

TEST_CASE("Handshake: queued messages survive SIMP disable and arrive on re-enable") {
  Channel g;
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  REQUIRE(g.wrmsr(0, tlfs::msr::kSimp, sim_of(0)) == MsrResult::kOk);
  g.memory.store<uint32_t>(slot_of(0, 2), 0);
  REQUIRE(g.wrmsr(0, tlfs::msr::kEom, 0) == MsrResult::kOk);
  CHECK(g.slot(0, 2).message_type == 0);  // SIM disabled: nothing written
  CHECK(g.post(5, 3, 4) == Status::kInvalidSynicState);
  REQUIRE(g.wrmsr(0, tlfs::msr::kSimp, sim_of(0) | 1) == MsrResult::kOk);
  CHECK(g.slot(0, 2).message_type == 2);
}

TEST_CASE("Handshake: queued messages survive SCONTROL disable and arrive on re-enable") {
  Channel g;
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  REQUIRE(g.wrmsr(0, tlfs::msr::kScontrol, 0) == MsrResult::kOk);
  g.memory.store<uint32_t>(slot_of(0, 2), 0);
  REQUIRE(g.wrmsr(0, tlfs::msr::kEom, 0) == MsrResult::kOk);
  CHECK(g.slot(0, 2).message_type == 0);
  REQUIRE(g.wrmsr(0, tlfs::msr::kScontrol, 1) == MsrResult::kOk);
  CHECK(g.slot(0, 2).message_type == 2);
}

TEST_CASE("Handshake: a non-AutoEOI SINT gets its next message on EOM, as an AutoEOI one does") {
  // TLFS 11.9.3: the guest frees the slot and, when MessagePending was set,
  // writes EOM; that is the delivery point whatever the SINT's AutoEOI bit.
  // Its EOI of the vector (a local-APIC matter) delivers nothing.
  Channel g(false);
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  REQUIRE(g.irqs.raised.size() == 1);
  CHECK_FALSE(g.irqs.raised[0].auto_eoi);
  g.memory.store<uint32_t>(slot_of(0, 2), 0);  // freed, no EOM yet
  CHECK(g.slot(0, 2).message_type == 0);
  CHECK(g.irqs.raised.size() == 1);
  REQUIRE(g.wrmsr(0, tlfs::msr::kEom, 0) == MsrResult::kOk);
  CHECK(g.slot(0, 2).message_type == 2);
  REQUIRE(g.irqs.raised.size() == 2);
  CHECK(g.irqs.raised[1].vector == kVector);
  CHECK_FALSE(g.irqs.raised[1].auto_eoi);
}

TEST_CASE("Handshake: messages of a deleted port that were already accepted are delivered") {
  Channel g;
  for (uint32_t t = 1; t <= 4; ++t) REQUIRE(g.post(5, t, 4) == Status::kSuccess);
  REQUIRE(g.delete_port(1) == Status::kSuccess);
  CHECK(g.post(5, 9, 4) == Status::kInvalidPortId);
  for (uint32_t t = 1; t <= 4; ++t) {
    CHECK(g.slot(0, 2).message_type == t);
    g.consume(0, 2);
  }
  // The draining port's slot is reusable once empty.
  CHECK(g.create_port(1, 2, 0) == Status::kSuccess);
}

TEST_CASE("Handshake: writes go only to the target SIM slot") {
  Channel g;
  g.memory.writes.clear();
  REQUIRE(g.post(5, 1, 4) == Status::kSuccess);
  REQUIRE(g.post(5, 2, 4) == Status::kSuccess);
  for (auto& w : g.memory.writes) {
    CHECK(w.gpa >= slot_of(0, 2));
    CHECK(w.gpa + w.len <= slot_of(0, 2) + 256);
  }
}
