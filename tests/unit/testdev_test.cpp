// The QEMU hyperv-testdev compatible control port, driven as a guest would:
// 32-bit writes of conn << 24 | ctl << 16 | vp << 8 | sint, then hypercalls.
#include "synic/services/testdev.hpp"

#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {
uint32_t cmd(uint8_t conn, TestDevice::Control ctl, uint8_t vp, uint8_t sint) {
  return uint32_t{conn} << 24 | uint32_t(ctl) << 16 | uint32_t{vp} << 8 | sint;
}
using C = TestDevice::Control;
}  // namespace

TEST_CASE("testdev: SINT_ROUTE_SET_SINT raises the SINT's vector on that VP, not when masked") {
  Guest g(2);
  g.enable_synic(1, 3);
  TestDevice dev(*g.partition);
  CHECK_FALSE(dev.write(cmd(0, C::kSintRouteSetSint, 1, 3)));  // no route yet
  REQUIRE(dev.write(cmd(0, C::kSintRouteCreate, 1, 3)));
  REQUIRE(dev.write(cmd(0, C::kSintRouteSetSint, 1, 3)));
  CHECK(g.irqs.count(1, kVector) == 1);
  REQUIRE(g.wrmsr(1, tlfs::msr::kSint0 + 3, kVector | tlfs::sint_bits::kMasked) == MsrResult::kOk);
  REQUIRE(dev.write(cmd(0, C::kSintRouteSetSint, 1, 3)));
  CHECK(g.irqs.count(1, kVector) == 1);
  REQUIRE(dev.write(cmd(0, C::kSintRouteDestroy, 1, 3)));
  CHECK_FALSE(dev.write(cmd(0, C::kSintRouteSetSint, 1, 3)));
}

TEST_CASE("testdev: MSG_CONN_CREATE echoes posted messages to the route's VP and SINT") {
  Guest g(2);
  g.enable_synic(1, 4);
  TestDevice dev(*g.partition);
  REQUIRE(dev.write(cmd(9, C::kMsgConnCreate, 1, 4)));
  REQUIRE(g.post(9, 0x1234, 16, 0x40) == Status::kSuccess);
  tlfs::Message m = g.slot(1, 4);
  CHECK(m.message_type == 0x1234);
  CHECK(m.payload_size == 16);
  CHECK(m.payload[0] == 0x40);
  CHECK(m.payload[15] == 0x4F);
  CHECK(g.irqs.count(1, kVector) == 1);
}

TEST_CASE("testdev: a full echo queue answers INSUFFICIENT_BUFFERS") {
  Guest g(1);
  g.enable_synic(0, 4);
  TestDevice dev(*g.partition);
  REQUIRE(dev.write(cmd(9, C::kMsgConnCreate, 0, 4)));
  for (uint32_t i = 0; i <= tlfs::kMessageBuffersPerPort; ++i)
    REQUIRE(g.post(9, 1, 4) == Status::kSuccess);
  CHECK(g.post(9, 1, 4) == Status::kInsufficientBuffers);
}

TEST_CASE("testdev: MSG_CONN_DESTROY removes the connection") {
  Guest g(1);
  g.enable_synic(0, 4);
  TestDevice dev(*g.partition);
  REQUIRE(dev.write(cmd(9, C::kMsgConnCreate, 0, 4)));
  REQUIRE(dev.write(cmd(9, C::kMsgConnDestroy, 0, 4)));
  CHECK(g.post(9, 1, 4) == Status::kInvalidConnectionId);
  REQUIRE(dev.write(cmd(9, C::kMsgConnCreate, 0, 4)));  // and can be made again
  CHECK(g.post(9, 1, 4) == Status::kSuccess);
}

TEST_CASE("testdev: EVT_CONN_CREATE makes SignalEvent(conn) set flag number conn") {
  Guest g(2);
  g.enable_synic(1, 5);
  TestDevice dev(*g.partition);
  REQUIRE(dev.write(cmd(77, C::kEvtConnCreate, 1, 5)));
  REQUIRE(g.signal(77, 0) == Status::kSuccess);
  uint64_t word = g.memory.load<uint64_t>(sief_of(1) + 5 * 256 + (77 / 64) * 8);
  CHECK(word == (1ull << (77 % 64)));
  CHECK(g.irqs.count(1, kVector) == 1);
  CHECK(g.signal(77, 1) == Status::kInvalidParameter);  // one flag only
  REQUIRE(dev.write(cmd(77, C::kEvtConnDestroy, 1, 5)));
  CHECK(g.signal(77, 0) == Status::kInvalidConnectionId);
}

TEST_CASE("testdev: unknown controls and duplicate connections are refused") {
  Guest g(1);
  TestDevice dev(*g.partition);
  CHECK_FALSE(dev.write(cmd(1, static_cast<C>(0), 0, 2)));
  CHECK_FALSE(dev.write(cmd(1, static_cast<C>(8), 0, 2)));
  REQUIRE(dev.write(cmd(1, C::kMsgConnCreate, 0, 2)));
  CHECK_FALSE(dev.write(cmd(1, C::kMsgConnCreate, 0, 2)));
  CHECK_FALSE(dev.write(cmd(2, C::kMsgConnCreate, 0, 0)));  // SINT 0 is not a port target
}

// Everything the device makes for the guest is bounded: its SINT routes by
// its own table, its ports and connections by the guest partition's quota.
TEST_CASE("testdev: routes and echo connections stop at their bounds") {
  Guest g(1);
  TestDevice dev(*g.partition);
  uint32_t routes = 0;
  for (uint32_t vp = 0; vp < 8; ++vp) {
    for (uint32_t sint = 0; sint < 16; ++sint) {
      routes += dev.write(cmd(0, C::kSintRouteCreate, static_cast<uint8_t>(vp),
                              static_cast<uint8_t>(sint)))
                    ? 1
                    : 0;
    }
  }
  CHECK(routes == 64);
  uint32_t made = 0;
  for (uint32_t conn = 1; conn < 40; ++conn) {
    made += dev.write(cmd(static_cast<uint8_t>(conn), C::kMsgConnCreate, 0, 2)) ? 1 : 0;
  }
  CHECK(made == kDefaultQuota.ports);
  CHECK(g.create_port(0x42, 2, 0) == Status::kInsufficientMemory);
  REQUIRE(dev.write(cmd(1, C::kMsgConnDestroy, 0, 2)));
  CHECK(g.create_port(0x42, 2, 0) == Status::kSuccess);
}
