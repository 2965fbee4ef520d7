// ACPI tables: DSDT, MADT, FADT, FACS, RSDT, XSDT and RSDP layouts and
// checksums, and a complete set walked from its RSDP (ACPI 6.3 chapter 5).
#include <sys/mman.h>

#include "tests/unit/acpi_reader.hpp"

using namespace microhv::acpi;
using namespace microhv::acpi_test;

// ------------------------------------------------------------ DSDT

namespace {

// Builds the DSDT for tp into a buffer of `size` bytes, checks its header,
// requires it to be longer than `at_least` bytes and reads it back.
AmlReader built_dsdt(const TestPlatform& tp, size_t size, size_t at_least) {
  std::vector<uint8_t> buf(size);
  size_t n = build_dsdt(buf.data(), buf.size(), tp.p);
  REQUIRE(n > at_least);
  check_header(buf.data(), n, "DSDT");
  return read_table(buf.data());
}

}  // namespace

TEST_CASE("ACPI: the DSDT has the PCI root, processors, _S5 and the VMBus device", "[acpi]") {
  TestPlatform tp(4);
  AmlReader r = built_dsdt(tp, 16384, 0);

  CHECK(r.names["\\_S5_"].kind == Object::kPackage);
  REQUIRE(r.names["\\_S5_"].elements.size() == 2);
  CHECK(r.names["\\_S5_"].elements[0].integer == 0);

  CHECK(r.names["\\_SB_.PCI0._HID"].integer == 0x030AD041u);  // EisaId("PNP0A03")
  bool end = false;
  auto crs = descriptors(r.names["\\_SB_.PCI0._CRS"].buffer, &end);
  CHECK(end);
  REQUIRE(crs.size() == 6);
  CHECK(crs[0].tag == 0x88);
  CHECK(crs[0].body[0] == 2);  // bus numbers
  CHECK(le16(&crs[0].body[7]) == 0xFF);
  CHECK(crs[1].tag == 0x08);  // small I/O port descriptor: 0xCF8, 8 ports
  CHECK(le16(&crs[1].body[1]) == 0xCF8);
  CHECK(crs[1].body[6] == 8);
  CHECK(crs[5].tag == 0x87);  // 32-bit PCI memory window
  CHECK(le32(&crs[5].body[7]) == tp.p.pci_mmio_first);
  CHECK(le32(&crs[5].body[11]) == tp.p.pci_mmio_last);

  // _PRT: device d pin p -> link (d + p - 1) mod 4, as the PIIX wires them.
  const auto& prt = r.names["\\_SB_.PCI0._PRT"];
  REQUIRE(prt.elements.size() == 128);
  for (const auto& e : prt.elements) {
    REQUIRE(e.elements.size() == 4);
    uint64_t slot = e.elements[0].integer >> 16;
    uint64_t pin = e.elements[1].integer;
    CHECK((e.elements[0].integer & 0xFFFF) == 0xFFFF);
    CHECK(e.elements[2].integer == 0);
    CHECK(e.elements[3].integer == tp.p.pci_link_irqs[(slot + pin + 3) % 4]);
  }

  for (uint32_t i = 0; i < 4; ++i) {
    std::string cpu = "\\_SB_.C00" + std::to_string(i);
    CHECK(r.names[cpu + "._HID"].string == "ACPI0007");
    CHECK(r.names[cpu + "._UID"].integer == i);
  }
  CHECK(r.names["\\_SB_.MHVM.VMBS._HID"].string == "VMBus");
  CHECK(r.names.count("\\_SB_.MHVM.VMBS._CRS") == 1);
}

TEST_CASE("ACPI: a DSDT for 256 CPUs uses long package lengths and still reads back", "[acpi]") {
  TestPlatform tp(256);
  AmlReader r = built_dsdt(tp, 65536, 4096);
  CHECK(r.names["\\_SB_.C0FF._UID"].integer == 255);
  CHECK(r.names["\\_SB_.C0A0._UID"].integer == 0xA0);
}

TEST_CASE("ACPI: the DSDT refuses platforms it cannot describe", "[acpi]") {
  std::vector<uint8_t> buf(65536);
  TestPlatform tp(2);
  tp.p.pm_base = 0;
  CHECK(build_dsdt(buf.data(), buf.size(), tp.p) == 0);
  TestPlatform none(1);
  none.p.cpu_count = 0;
  CHECK(build_dsdt(buf.data(), buf.size(), none.p) == 0);
  TestPlatform many(1);
  many.p.cpu_count = kMaxCpus + 1;
  CHECK(build_dsdt(buf.data(), buf.size(), many.p) == 0);
  TestPlatform novmbus(1);
  novmbus.p.vmbus = VmbusDevice{};
  CHECK(build_dsdt(buf.data(), buf.size(), novmbus.p) == 0);
}

TEST_CASE("ACPI: the DSDT builder fails cleanly for every short buffer", "[acpi]") {
  TestPlatform tp(2);
  check_bounds([&](uint8_t* b, size_t c) { return build_dsdt(b, c, tp.p); });
}

// ------------------------------------------------------------ MADT

TEST_CASE("ACPI: the MADT lists every CPU, the I/O APIC, IRQ0 -> GSI2 and LINT1 NMI", "[acpi]") {
  for (uint32_t cpus : {1u, 2u, 4u}) {
    INFO(cpus << " CPUs");
    TestPlatform tp(cpus);
    uint8_t buf[512];
    size_t n = build_madt(buf, sizeof buf, tp.p);
    REQUIRE(n == 44 + 8 * cpus + 12 + 10 + 6);
    check_header(buf, n, "APIC");
    CHECK(le32(buf + 36) == 0xFEE00000u);
    CHECK(le32(buf + 40) == 1);  // PCAT_COMPAT
    size_t i = 44;
    for (uint32_t c = 0; c < cpus; ++c, i += 8) {
      CHECK(buf[i] == 0);
      CHECK(buf[i + 1] == 8);
      CHECK(buf[i + 2] == c);  // processor UID (the DSDT's _UID)
      CHECK(buf[i + 3] == c);  // APIC id
      CHECK(le32(buf + i + 4) == 1);
    }
    CHECK(buf[i] == 1);
    CHECK(buf[i + 1] == 12);
    CHECK(buf[i + 2] == cpus);  // I/O APIC id
    CHECK(le32(buf + i + 4) == 0xFEC00000u);
    CHECK(le32(buf + i + 8) == 0);
    i += 12;
    CHECK(buf[i] == 2);
    CHECK(buf[i + 1] == 10);
    CHECK(buf[i + 3] == 0);         // IRQ 0
    CHECK(le32(buf + i + 4) == 2);  // GSI 2
    CHECK(le16(buf + i + 8) == 0);  // conforming
    i += 10;
    CHECK(buf[i] == 4);
    CHECK(buf[i + 2] == 0xFF);
    CHECK(buf[i + 5] == 1);  // LINT1
  }
}

TEST_CASE("ACPI: APIC ids from 255 up get x2APIC entries", "[acpi]") {
  uint32_t ids[2] = {0, 300};
  Platform p;
  p.cpu_count = 2;
  p.apic_ids = ids;
  uint8_t buf[512];
  size_t n = build_madt(buf, sizeof buf, p);
  REQUIRE(n == 44 + 8 + 16 + 12 + 10 + 6 + 12);
  CHECK(buf[52] == 9);
  CHECK(buf[53] == 16);
  CHECK(le32(buf + 56) == 300);
  CHECK(le32(buf + 64) == 1);  // UID
  CHECK(buf[n - 12] == 10);    // x2APIC NMI
  CHECK(sum(buf, n) == 0);
}

TEST_CASE("ACPI: the MADT builder fails cleanly for every short buffer", "[acpi]") {
  TestPlatform tp(4);
  check_bounds([&](uint8_t* b, size_t c) { return build_madt(b, c, tp.p); });
}

// ------------------------------------------------------------ FADT, FACS, RSDT, XSDT, RSDP

TEST_CASE("ACPI: the FADT describes PIIX4-style PM hardware, not a hardware-reduced one",
          "[acpi]") {
  TestPlatform tp(1);
  tp.p.sci_irq = 11;
  uint8_t buf[512];
  size_t n = build_fadt(buf, sizeof buf, tp.p, 0x7F000000, 0x7F100000);
  REQUIRE(n == kFadtSize);
  check_header(buf, n, "FACP");
  CHECK(buf[8] == 6);
  CHECK(le32(buf + 36) == 0x7F100000u);  // FIRMWARE_CTRL
  CHECK(le32(buf + 40) == 0x7F000000u);  // DSDT
  CHECK(le16(buf + 46) == 11);           // SCI
  CHECK(le32(buf + 48) == 0);            // SMI_CMD: ACPI mode only
  CHECK(le32(buf + 56) == 0xB000);       // PM1a_EVT
  CHECK(le32(buf + 64) == 0xB004);       // PM1a_CNT
  CHECK(le32(buf + 76) == 0xB008);       // PM_TMR
  CHECK(le32(buf + 80) == 0);            // no GPE0
  CHECK(buf[88] == 4);
  CHECK(buf[89] == 2);
  CHECK(buf[91] == 4);
  CHECK(le16(buf + 109) == 3);  // legacy devices, 8042
  uint32_t flags = le32(buf + 112);
  CHECK((flags & (1u << 20)) == 0);  // not HW_REDUCED_ACPI
  CHECK((flags & (1u << 8)) == 0);   // 24-bit PM timer
  CHECK(buf[131] == 3);
  CHECK(le64(buf + 132) == 0);  // X_FIRMWARE_CTRL
  CHECK(le64(buf + 140) == 0x7F000000u);
  // X_PM1a_EVT, X_PM1a_CNT, X_PM_TMR: system I/O, same ports, widths in bits.
  const size_t gas[] = {148, 172, 208};
  const uint32_t port[] = {0xB000, 0xB004, 0xB008};
  const uint8_t bits[] = {32, 16, 32};
  for (int k = 0; k < 3; ++k) {
    CHECK(buf[gas[k]] == 1);
    CHECK(buf[gas[k] + 1] == bits[k]);
    CHECK(le64(buf + gas[k] + 4) == port[k]);
  }
  CHECK(buf[220] == 0);  // X_GPE0 absent
}

TEST_CASE("ACPI: the FADT refuses what it cannot express", "[acpi]") {
  TestPlatform tp(1);
  uint8_t buf[512];
  CHECK(build_fadt(buf, sizeof buf, tp.p, 0x100000000ull, 0x1000) == 0);  // DSDT above 4 GiB
  CHECK(build_fadt(buf, sizeof buf, tp.p, 0x2000, 0x1010) == 0);          // FACS misaligned
  tp.p.pm_base = 0;
  CHECK(build_fadt(buf, sizeof buf, tp.p, 0x2000, 0x1000) == 0);
  TestPlatform ok(1);
  check_bounds([&](uint8_t* b, size_t c) { return build_fadt(b, c, ok.p, 0x2000, 0x1000); });
}

TEST_CASE("ACPI: FACS, RSDT, XSDT and RSDP layouts and checksums", "[acpi]") {
  uint8_t buf[256];
  REQUIRE(build_facs(buf, sizeof buf) == kFacsSize);
  CHECK(std::memcmp(buf, "FACS", 4) == 0);
  CHECK(le32(buf + 4) == 64);
  CHECK(buf[32] == 2);

  const uint64_t tables[] = {0x1000, 0x2000, 0x3000};
  size_t n = build_xsdt(buf, sizeof buf, tables, 3);
  REQUIRE(n == kHeaderSize + 24);
  check_header(buf, n, "XSDT");
  CHECK(le64(buf + kHeaderSize + 16) == 0x3000);

  n = build_rsdt(buf, sizeof buf, tables, 3);
  REQUIRE(n == kHeaderSize + 12);
  check_header(buf, n, "RSDT");
  CHECK(le32(buf + kHeaderSize + 4) == 0x2000);
  const uint64_t high[] = {0x100000000ull};
  CHECK(build_rsdt(buf, sizeof buf, high, 1) == 0);

  n = build_rsdp(buf, sizeof buf, 0x5000, 0x6000);
  REQUIRE(n == kRsdpSize);
  CHECK(std::memcmp(buf, "RSD PTR ", 8) == 0);
  CHECK(sum(buf, 20) == 0);
  CHECK(sum(buf, 36) == 0);
  CHECK(buf[15] == 2);
  CHECK(le32(buf + 16) == 0x5000);
  CHECK(le32(buf + 20) == 36);
  CHECK(le64(buf + 24) == 0x6000);
  CHECK(rsdp_valid(buf));
  buf[12] ^= 1;
  CHECK_FALSE(rsdp_valid(buf));

  check_bounds([](uint8_t* b, size_t c) { return build_facs(b, c); });
  check_bounds([&](uint8_t* b, size_t c) { return build_xsdt(b, c, tables, 3); });
  check_bounds([&](uint8_t* b, size_t c) { return build_rsdt(b, c, tables, 3); });
  check_bounds([](uint8_t* b, size_t c) { return build_rsdp(b, c, 0x5000, 0x6000); });
}

// ------------------------------------------------------------ a complete set, walked

namespace {

// Memory below 4 GiB, whose host address stands in for the physical one:
// the readers dereference physical addresses, and RSDT and FADT hold 32-bit
// ones. Empty (and the test skipped) when the host has none to give.
struct LowMemory {
  explicit LowMemory(size_t bytes) : size(bytes) {
    void* p =
        mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    base = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
    if (base == nullptr) WARN("no memory below 4 GiB; test skipped");
  }
  ~LowMemory() {
    if (base != nullptr) munmap(base, size);
  }
  uint64_t phys() const { return reinterpret_cast<uintptr_t>(base); }
  size_t size;
  uint8_t* base;
};

}  // namespace

TEST_CASE("ACPI: a full set walked from its RSDP finds FADT, MADT, DSDT and VMBus", "[acpi]") {
  const size_t size = 64 * 1024;
  LowMemory low(size);
  if (low.base == nullptr) return;
  uint8_t* base = low.base;
  const uint64_t phys = low.phys();
  uint8_t* facs = base;  // 64-byte aligned (page start)
  REQUIRE(build_facs(facs, 64) == 64);
  uint8_t* tables = base + 4096;

  TestPlatform tp(2);
  FullSetLayout l = build_full_set(tables, size - 4096, phys + 4096, phys, tp.p);
  REQUIRE(l.size > 0);
  const uint8_t* rsdp = tables + l.rsdp;
  REQUIRE(rsdp_valid(rsdp));
  CHECK(le32(rsdp + 16) == phys + 4096 + l.rsdt);
  CHECK(le64(rsdp + 24) == phys + 4096 + l.xsdt);

  uint64_t entries[8];
  REQUIRE(root_entries(rsdp, entries, 8) == 2);
  CHECK(entries[0] == phys + 4096 + l.fadt);
  CHECK(entries[1] == phys + 4096 + l.madt);
  CHECK(dsdt_address(rsdp) == phys + 4096 + l.dsdt);
  // Tables by signature through the XSDT, with their Length (the DMAR lookup
  // of the VT-d code uses this).
  uint32_t length = 0;
  CHECK(find_table(rsdp, "APIC", &length) == tables + l.madt);
  CHECK(length == le32(tables + l.madt + 4));
  CHECK(find_table(rsdp, "FACP", nullptr) == tables + l.fadt);
  CHECK(find_table(rsdp, "DMAR", &length) == nullptr);
  const size_t offsets[] = {l.dsdt, l.fadt, l.madt, l.xsdt, l.rsdt};
  for (size_t off : offsets) {
    CHECK(off % 16 == 0);
    CHECK(sum(tables + off, le32(tables + off + 4)) == 0);
  }
  CHECK(le32(tables + l.fadt + 36) == phys);  // FACS
  CHECK(tables_declare_hid(rsdp, kVmbusHid));
  CHECK_FALSE(tables_declare_hid(rsdp, "NOPE"));

  // With only RSDT (XSDT address cleared) the same tables are found.
  uint8_t rsdp1[36];
  std::memcpy(rsdp1, rsdp, 36);
  std::memset(rsdp1 + 24, 0, 8);
  fix_checksum(rsdp1, 36, 32);
  CHECK(root_entries(rsdp1, entries, 8) == 2);
  CHECK(tables_declare_hid(rsdp1, kVmbusHid));
  CHECK(find_table(rsdp1, "APIC", nullptr) == tables + l.madt);

  // Too small a buffer: no layout.
  CHECK(build_full_set(tables, 600, phys + 4096, phys, tp.p).size == 0);
}

TEST_CASE("ACPI: an SSDT added to firmware tables is found by the duplicate check", "[acpi]") {
  LowMemory low(16 * 1024);
  if (low.base == nullptr) return;
  uint8_t* base = low.base;
  const uint64_t phys = low.phys();
  // Firmware-like tables without VMBus: an SSDT with some other device.
  uint8_t* other = base + 1024;
  Writer w(other, 512);
  w.padded("SSDT", 4);
  w.u32(0);
  w.u8(2);
  w.u8(0);
  w.padded("OTHER", 6);
  w.padded("OTHER", 8);
  w.u32(1);
  w.padded("TEST", 4);
  w.u32(1);
  Aml aml(w);
  aml.scope("\\_SB");
  aml.device("KBD0");
  aml.name_eisa_id("_HID", "PNP0303");
  aml.end();
  aml.end();
  REQUIRE(aml.ok());
  w.patch_u32(4, uint32_t(w.size()));
  fix_checksum(other, w.size(), 9);
  const uint64_t firmware[] = {phys + 1024};
  REQUIRE(build_xsdt(base + 2048, 512, firmware, 1) > 0);
  REQUIRE(build_rsdp(base, 64, 0, phys + 2048) == kRsdpSize);
  CHECK_FALSE(tables_declare_hid(base, kVmbusHid));

  REQUIRE(build_vmbus_ssdt(base + 4096, 1024, one_window(0xFC000000, 0x2C00000)) > 0);
  const uint64_t with_ours[] = {phys + 1024, phys + 4096};
  REQUIRE(build_xsdt(base + 2048, 512, with_ours, 2) > 0);
  REQUIRE(build_rsdp(base, 64, 0, phys + 2048) == kRsdpSize);
  CHECK(tables_declare_hid(base, kVmbusHid));
}
