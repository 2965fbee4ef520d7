// ACPI encoding: EISA ids, name paths, package lengths, bounds, and the
// VMBus device's AML read back by an independent reader (ACPI 6.3 chapter 20).
#include "tests/unit/acpi_reader.hpp"

using namespace microhv::acpi;
using namespace microhv::acpi_test;

// ------------------------------------------------------------ encoding basics

TEST_CASE("ACPI: EISA ids compress to their 32-bit AML values", "[acpi]") {
  uint32_t v = 0;
  REQUIRE(eisa_id("PNP0A03", &v));
  CHECK(v == 0x030AD041u);  // the PCI root bridge id every DSDT uses
  REQUIRE(eisa_id("PNP0A08", &v));
  CHECK(v == 0x080AD041u);
  REQUIRE(eisa_id("PNP0C0F", &v));
  CHECK(v == 0x0F0CD041u);
  CHECK_FALSE(eisa_id("pnp0a03", &v));
  CHECK_FALSE(eisa_id("PNP0A0", &v));
  CHECK_FALSE(eisa_id("PNP0A0G", &v));
}

TEST_CASE("ACPI: name paths encode root, parent, dual and multi-segment prefixes", "[acpi]") {
  auto encode = [](const char* path, bool* ok) {
    uint8_t buf[64];
    Writer w(buf, sizeof buf);
    Aml aml(w);
    aml.name_integer(path, 0);
    *ok = aml.ok();
    return std::vector<uint8_t>(buf + 1, buf + w.size() - 1);  // drop NameOp and the value
  };
  bool ok = false;
  CHECK(encode("_S5", &ok) == std::vector<uint8_t>{'_', 'S', '5', '_'});
  CHECK(ok);
  CHECK(encode("\\_SB.MHVM", &ok) ==
        std::vector<uint8_t>{0x5C, 0x2E, '_', 'S', 'B', '_', 'M', 'H', 'V', 'M'});
  CHECK(ok);
  CHECK(encode("^^A.B.C", &ok) == std::vector<uint8_t>{0x5E, 0x5E, 0x2F, 3, 'A', '_', '_', '_', 'B',
                                                       '_', '_', '_', 'C', '_', '_', '_'});
  CHECK(ok);
  for (const char* bad : {"", "1ABC", "ABCDE", "a", "A..B", "A.", "^", "\\A!"}) {
    INFO(bad);
    encode(bad, &ok);
    CHECK_FALSE(ok);
  }
}

TEST_CASE("ACPI: PkgLength uses 1, 2 and 3 bytes as a package grows", "[acpi]") {
  for (size_t payload : {0u, 40u, 60u, 61u, 62u, 100u, 4000u, 4090u, 4100u, 70000u}) {
    INFO("payload " << payload);
    std::vector<uint8_t> data(payload, 0x42);
    std::vector<uint8_t> buf(payload + 64);
    Writer w(buf.data(), buf.size());
    Aml aml(w);
    aml.device("DEV0");
    aml.name_buffer("BUF0", data.data(), data.size());
    aml.end();
    REQUIRE(aml.ok());
    AmlReader r(buf.data(), w.size());
    REQUIRE(r.read());
    REQUIRE(r.names.count("\\DEV0.BUF0") == 1);
    CHECK(r.names["\\DEV0.BUF0"].buffer == data);
    uint8_t lead = buf[2];  // after DeviceOp
    size_t bytes = 1 + (lead >> 6);
    size_t value = w.size() - 2;  // PkgLength counts itself and the rest
    size_t expected = value <= 0x3F ? 1 : value <= 0xFFF ? 2 : value <= 0xFFFFF ? 3 : 4;
    CHECK(bytes == expected);
  }
}

TEST_CASE("ACPI: unbalanced packages and overflows are refused", "[acpi]") {
  uint8_t buf[64];
  {
    Writer w(buf, sizeof buf);
    Aml aml(w);
    aml.device("DEV0");
    CHECK_FALSE(aml.ok());  // still open
    aml.end();
    CHECK(aml.ok());
    aml.end();  // one end too many
    CHECK_FALSE(aml.ok());
  }
  {
    Writer w(buf, 8);
    Aml aml(w);
    aml.name_string("_HID", "A long string that does not fit");
    CHECK_FALSE(aml.ok());
    CHECK(w.size() <= 8);
  }
}

// ------------------------------------------------------------ the VMBus device

TEST_CASE("ACPI: the VMBus SSDT decodes to \\_SB.MHVM (ACPI0004, MMIO) holding VMBS (VMBus)",
          "[acpi]") {
  VmbusDevice v;
  v.mmio[0] = {0x80000000, 0x400000};
  v.mmio[1] = {0xFC000000, 0x2C00000};
  v.mmio_count = 2;
  uint8_t buf[1024];
  size_t n = build_vmbus_ssdt(buf, sizeof buf, v);
  REQUIRE(n > kHeaderSize);
  check_header(buf, n, "SSDT");
  CHECK(buf[8] == 2);  // revision 2: 64-bit integers

  AmlReader r = read_table(buf);
  CHECK(r.devices == std::vector<std::string>{"\\_SB_.MHVM", "\\_SB_.MHVM.VMBS"});
  CHECK(r.names["\\_SB_.MHVM._HID"].string == "ACPI0004");
  CHECK(r.names["\\_SB_.MHVM.VMBS._HID"].kind == Object::kString);
  CHECK(r.names["\\_SB_.MHVM.VMBS._HID"].string == "VMBus");
  CHECK(r.names["\\_SB_.MHVM.VMBS._UID"].integer == 0);

  // VMBS has a _CRS (Linux fails the device without one), empty.
  REQUIRE(r.names.count("\\_SB_.MHVM.VMBS._CRS") == 1);
  bool end = false;
  CHECK(descriptors(r.names["\\_SB_.MHVM.VMBS._CRS"].buffer, &end).empty());
  CHECK(end);

  // Its parent's _CRS holds the MMIO windows as QWord memory ranges.
  auto windows = descriptors(r.names["\\_SB_.MHVM._CRS"].buffer, &end);
  CHECK(end);
  REQUIRE(windows.size() == 2);
  for (size_t k = 0; k < 2; ++k) {
    const auto& d = windows[k].body;
    CHECK(windows[k].tag == 0x8A);
    REQUIRE(d.size() == 43);
    CHECK(d[0] == 0);                       // memory
    CHECK(le64(&d[11]) == v.mmio[k].base);  // minimum
    CHECK(le64(&d[19]) == v.mmio[k].base + v.mmio[k].length - 1);
    CHECK(le64(&d[35]) == v.mmio[k].length);
  }

  // The device bytes, as derived by hand from the spec.
  const uint8_t* body = buf + kHeaderSize;
  size_t len = n - kHeaderSize;
  bool found = false;
  for (size_t i = 0; i + sizeof(kVmbsDevice) <= len; ++i) {
    if (std::memcmp(body + i, kVmbsDevice, sizeof(kVmbsDevice)) == 0) found = true;
  }
  CHECK(found);
  CHECK(aml_declares_hid(body, len, "VMBus"));
  CHECK_FALSE(aml_declares_hid(body, len, "VMBUS"));
}

TEST_CASE("ACPI: a VMBus device needs a window that ends at or above 1 MiB", "[acpi]") {
  uint8_t buf[1024];
  VmbusDevice none;
  CHECK(build_vmbus_ssdt(buf, sizeof buf, none) == 0);
  CHECK(build_vmbus_ssdt(buf, sizeof buf, one_window(0xA0000, 0x20000)) == 0);
  CHECK(build_vmbus_ssdt(buf, sizeof buf, one_window(0x1000, 0)) == 0);
  CHECK(build_vmbus_ssdt(buf, sizeof buf, one_window(~0ull, 2)) == 0);  // wraps
  CHECK(build_vmbus_ssdt(buf, sizeof buf, one_window(0xF0000, 0x20000)) > 0);
}

TEST_CASE("ACPI: the SSDT builder fails cleanly for every short buffer", "[acpi]") {
  VmbusDevice v = one_window(0xFC000000, 0x2C00000);
  check_bounds([&](uint8_t* b, size_t c) { return build_vmbus_ssdt(b, c, v); });
}
