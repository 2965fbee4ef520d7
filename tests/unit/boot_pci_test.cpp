// The PCI configuration-space walk (boot/pci/scan.hpp) over a fake
// configuration space: which functions count as present (PCI Local Bus 3.0,
// 6.1: vendor id 0xFFFF means none; 6.2.1: function 0 is required and its
// header type bit 7 announces functions 1-7) and the bus ranges of
// PCI-to-PCI bridges (Bridge spec 1.2, 3.2.5.3).
#include <catch2/catch.hpp>

#include "boot/pci/scan.hpp"
#include "tests/unit/fake_pci.hpp"

using namespace microhv;
using namespace microhv::boot;

using FakeConfig = microhv::test::FakePciConfig;

TEST_CASE("PCI scan: functions, multi-function devices and bridges") {
  FakeConfig c;
  c.add(0, 0, 0, 0x29c08086);                     // host bridge
  c.add(0, 2, 0, 0x11e81234);                     // single-function: fn 1 is not looked at
  c.add(0, 2, 1, 0x12345678);                     //   ... so this one is not found
  c.add(0, 0x1f, 0, 0x29188086, 0x80);            // multi-function LPC
  c.add(0, 0x1f, 2, 0x29228086);                  //   SATA
  c.add(0, 0x1f, 3, 0x29308086);                  //   SMBus
  c.add(0, 0x1c, 0, 0x24488086, 0x81, 0x030100);  // bridge: primary 0, buses 1..3
  c.add(1, 0, 0, 0x10008086);                     // behind it
  c.add(0, 3, 1, 0x11111111);                     // function 1 without function 0: absent
  vtd::PciFunctionInfo out[16];
  const uint32_t n = scan_pci(c, 0, out, 16);
  REQUIRE(n == 7);
  CHECK(out[0].source_id == 0x0000);
  CHECK(out[1].source_id == 0x0010);  // 00:02.0
  CHECK(out[2].source_id == 0x00e0);  // 00:1c.0, the bridge
  CHECK(out[2].bridge);
  CHECK(out[2].secondary_bus == 1);
  CHECK(out[2].subordinate_bus == 3);
  CHECK(out[3].source_id == 0x00f8);  // 00:1f.0
  CHECK_FALSE(out[3].bridge);
  CHECK(out[4].source_id == 0x00fa);  // 00:1f.2
  CHECK(out[5].source_id == 0x00fb);  // 00:1f.3
  CHECK(out[6].source_id == 0x0100);  // 01:00.0
  for (uint32_t i = 0; i < n; ++i) CHECK(out[i].segment == 0);
}

TEST_CASE("PCI scan: a list cut short says how many there are") {
  FakeConfig c;
  for (uint8_t d = 0; d < 10; ++d) c.add(0, d, 0, 0x00018086);
  vtd::PciFunctionInfo out[4] = {};
  CHECK(scan_pci(c, 2, out, 4) == 10);
  CHECK(out[3].source_id == 0x0018);
  CHECK(out[3].segment == 2);
  CHECK(scan_pci(c, 0, nullptr, 0) == 10);
}

TEST_CASE("PCI scan: an empty segment reads each device's id once") {
  FakeConfig c;
  vtd::PciFunctionInfo out[1];
  CHECK(scan_pci(c, 0, out, 1) == 0);
  CHECK(c.reads == 256 * 32);
}

TEST_CASE("PCI scan: find a function by vendor and device id") {
  FakeConfig c;
  c.add(0, 0, 0, 0x29c08086);
  c.add(0, 4, 0, 0x00018086, 0x80);
  c.add(0, 4, 5, 0x11e81234);
  c.add(0, 6, 0, 0x11e81234);
  PciAddress f{};
  REQUIRE(find_pci_function(c, 0x1234, 0x11e8, &f));
  CHECK(f.source_id() == 0x0025);  // the first one: 00:04.5
  CHECK_FALSE(find_pci_function(c, 0x1234, 0x11e9, &f));
}
