// HvCallSignalEvent (0x5D): statuses, atomic flag setting, 0 -> 1 interrupts.
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {
constexpr uint32_t kPort = 4, kConn = 0x40;
struct Events : Guest {
  explicit Events(uint32_t vps = 1, PartitionFeatures f = kFullFeatures, uint16_t base = 100,
                  uint16_t count = 32)
      : Guest(vps, f) {
    enable_synic(0, 3);
    REQUIRE(create_port(kPort, 3, 0, tlfs::PortType::kEvent, base, count) == Status::kSuccess);
    REQUIRE(connect(kConn, kPort, tlfs::PortType::kEvent) == Status::kSuccess);
  }
  bool flag(uint32_t sint, uint32_t n) {
    return (memory.load<uint64_t>(sief_of(0) + sint * 256 + (n / 64) * 8) >> (n % 64)) & 1;
  }
};
}  // namespace

TEST_CASE("SignalEvent: SUCCESS sets SIEF flag base+n of the port's SINT and interrupts once") {
  Events g;
  REQUIRE(g.signal(kConn, 5) == Status::kSuccess);
  CHECK(g.flag(3, 105));
  CHECK_FALSE(g.flag(3, 104));
  CHECK_FALSE(g.flag(2, 105));
  CHECK(g.irqs.count(0, kVector) == 1);
}

TEST_CASE("SignalEvent: a flag already set raises no second interrupt") {
  Events g;
  REQUIRE(g.signal(kConn, 5) == Status::kSuccess);
  REQUIRE(g.signal(kConn, 5) == Status::kSuccess);
  CHECK(g.irqs.count(0, kVector) == 1);
  // The guest clears it: the next signal is a new 0 -> 1 edge.
  g.memory.store<uint64_t>(sief_of(0) + 3 * 256 + 8, 0);
  REQUIRE(g.signal(kConn, 5) == Status::kSuccess);
  CHECK(g.irqs.count(0, kVector) == 2);
}

TEST_CASE("SignalEvent: other flags in the same qword are preserved") {
  Events g;
  g.memory.store<uint64_t>(sief_of(0) + 3 * 256 + 8, 0x8000000000000001ull);
  REQUIRE(g.signal(kConn, 5) == Status::kSuccess);
  CHECK(g.memory.load<uint64_t>(sief_of(0) + 3 * 256 + 8) ==
        (0x8000000000000001ull | (1ull << 41)));
}

TEST_CASE("SignalEvent: INVALID_PARAMETER when the flag number is not below the flag count") {
  Events g;
  CHECK(g.signal(kConn, 31) == Status::kSuccess);
  CHECK(g.signal(kConn, 32) == Status::kInvalidParameter);
  CHECK(g.signal(kConn, 0xFFFF) == Status::kInvalidParameter);
}

TEST_CASE("SignalEvent: the last of 2048 flags is reachable and 2048 is not") {
  Guest g(1);
  g.enable_synic(0, 3);
  REQUIRE(g.create_port(1, 3, 0, tlfs::PortType::kEvent, 0, 2048) == Status::kSuccess);
  REQUIRE(g.create_port(2, 3, 0, tlfs::PortType::kEvent, 1, 2048) == Status::kInvalidParameter);
  REQUIRE(g.connect(1, 1, tlfs::PortType::kEvent) == Status::kSuccess);
  CHECK(g.signal(1, 2047) == Status::kSuccess);
  CHECK((g.memory.load<uint64_t>(sief_of(0) + 3 * 256 + 248) >> 63) == 1);
  CHECK(g.signal(1, 2048) == Status::kInvalidParameter);
}

TEST_CASE("SignalEvent: ACCESS_DENIED without the SignalEvents privilege") {
  PartitionFeatures f = kFullFeatures;
  f.privileges &= ~tlfs::cpuid::kSignalEvents;
  Events g(1, f);
  CHECK(g.signal(kConn, 0) == Status::kAccessDenied);
  CHECK(g.signal(0xBAD, 9999) == Status::kAccessDenied);
}

TEST_CASE("SignalEvent: INVALID_CONNECTION_ID and INVALID_PORT_ID") {
  Events g;
  CHECK(g.signal(kConn + 1, 0) == Status::kInvalidConnectionId);
  REQUIRE(g.create_port(8, 2, 0) == Status::kSuccess);  // a message port
  REQUIRE(g.connect(0x80, 8) == Status::kSuccess);
  CHECK(g.signal(0x80, 0) == Status::kInvalidPortId);
  REQUIRE(g.delete_port(kPort) == Status::kSuccess);
  CHECK(g.signal(kConn, 0) == Status::kInvalidPortId);
}

TEST_CASE("SignalEvent: INVALID_SYNIC_STATE when SIEFP or SCONTROL is disabled") {
  Events g;
  REQUIRE(g.wrmsr(0, tlfs::msr::kSiefp, sief_of(0)) == MsrResult::kOk);
  CHECK(g.signal(kConn, 0) == Status::kInvalidSynicState);
  REQUIRE(g.wrmsr(0, tlfs::msr::kSiefp, sief_of(0) | 1) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, tlfs::msr::kScontrol, 0) == MsrResult::kOk);
  CHECK(g.signal(kConn, 0) == Status::kInvalidSynicState);
  CHECK(g.irqs.raised.empty());
}

TEST_CASE("SignalEvent: a masked SINT gets the flag but no interrupt") {
  Events g;
  REQUIRE(g.wrmsr(0, tlfs::msr::kSint0 + 3, kVector | tlfs::sint_bits::kMasked) == MsrResult::kOk);
  REQUIRE(g.signal(kConn, 1) == Status::kSuccess);
  CHECK(g.flag(3, 101));
  CHECK(g.irqs.raised.empty());
}
