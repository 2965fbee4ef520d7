// ACPI tables: checksums, lengths, bounds, the AML of the VMBus device read
// back by an independent AML reader (ACPI 6.3 chapter 20), MADT entries, the
// FADT fields and a complete set walked from its RSDP.
#include "boot/acpi/acpi.hpp"

#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace microhv::acpi;

namespace {

uint32_t le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
}
uint64_t le64(const uint8_t* p) {
  return le32(p) | uint64_t(le32(p + 4)) << 32;
}
uint16_t le16(const uint8_t* p) {
  return uint16_t(p[0] | p[1] << 8);
}

// ------------------------------------------------------------ an AML reader

struct Object {
  enum Kind { kInteger, kString, kBuffer, kPackage } kind = kInteger;
  uint64_t integer = 0;
  std::string string;
  std::vector<uint8_t> buffer;
  std::vector<Object> elements;
};

// Reads the subset of AML microhv emits: Scope, Device, Name with integers,
// strings, buffers and packages. Every named object is stored under its
// absolute path ("\\_SB_.MHVM._HID"); devices are listed in order.
class AmlReader {
 public:
  AmlReader(const uint8_t* p, size_t n) : p_(p), n_(n) {}

  bool read() {
    term_list(n_, "\\");
    return ok_ && i_ == n_;
  }
  std::map<std::string, Object> names;
  std::vector<std::string> devices;

 private:
  uint8_t byte() {
    if (i_ >= n_) {
      ok_ = false;
      return 0;
    }
    return p_[i_++];
  }
  // Returns the end offset of the package that starts here.
  size_t pkg_end() {
    size_t start = i_;
    uint8_t lead = byte();
    size_t follow = lead >> 6;
    size_t value = follow == 0 ? lead & 0x3F : lead & 0x0F;
    if (follow != 0 && (lead & 0x30) != 0) ok_ = false;  // reserved bits
    for (size_t k = 0; k < follow; ++k) value |= size_t(byte()) << (4 + 8 * k);
    if (start + value > n_) ok_ = false;
    return start + value;
  }
  std::string seg() {
    std::string s;
    for (int k = 0; k < 4; ++k) s += char(byte());
    return s;
  }
  std::string name_string(const std::string& scope) {
    std::string prefix;
    bool absolute = false;
    if (i_ < n_ && p_[i_] == 0x5C) {
      ++i_;
      absolute = true;
    }
    size_t up = 0;
    while (i_ < n_ && p_[i_] == 0x5E) {
      ++i_;
      ++up;
    }
    std::vector<std::string> segs;
    uint8_t b = i_ < n_ ? p_[i_] : 0;
    if (b == 0x00) {
      ++i_;
    } else if (b == 0x2E) {
      ++i_;
      segs.push_back(seg());
      segs.push_back(seg());
    } else if (b == 0x2F) {
      ++i_;
      uint8_t count = byte();
      for (int k = 0; k < count; ++k) segs.push_back(seg());
    } else {
      segs.push_back(seg());
    }
    std::string base = absolute ? "\\" : scope;
    for (size_t k = 0; k < up; ++k) {
      size_t dot = base.rfind('.');
      base = dot == std::string::npos ? "\\" : base.substr(0, dot);
    }
    for (const auto& s : segs) base = base == "\\" ? "\\" + s : base + "." + s;
    return base;
  }
  Object data_object() {
    Object o;
    uint8_t op = byte();
    switch (op) {
      case 0x00:
        o.integer = 0;
        break;
      case 0x01:
        o.integer = 1;
        break;
      case 0xFF:
        o.integer = ~0ull;
        break;
      case 0x0A:
        o.integer = byte();
        break;
      case 0x0B:
        o.integer = byte() | uint64_t(byte()) << 8;
        break;
      case 0x0C:
        for (int k = 0; k < 4; ++k) o.integer |= uint64_t(byte()) << (8 * k);
        break;
      case 0x0E:
        for (int k = 0; k < 8; ++k) o.integer |= uint64_t(byte()) << (8 * k);
        break;
      case 0x0D: {
        o.kind = Object::kString;
        for (uint8_t c = byte(); ok_ && c != 0; c = byte()) o.string += char(c);
        break;
      }
      case 0x11: {
        o.kind = Object::kBuffer;
        size_t end = pkg_end();
        Object size = data_object();
        if (size.kind != Object::kInteger || i_ > end || size.integer != end - i_) ok_ = false;
        while (ok_ && i_ < end) o.buffer.push_back(byte());
        break;
      }
      case 0x12: {
        o.kind = Object::kPackage;
        size_t end = pkg_end();
        uint8_t count = byte();
        while (ok_ && i_ < end) o.elements.push_back(data_object());
        if (o.elements.size() != count || i_ != end) ok_ = false;
        break;
      }
      default:
        ok_ = false;
    }
    return o;
  }
  void term_list(size_t end, const std::string& scope) {
    while (ok_ && i_ < end) {
      uint8_t op = byte();
      if (op == 0x10) {  // Scope
        size_t e = pkg_end();
        std::string path = name_string(scope);
        term_list(e, path);
      } else if (op == 0x5B && i_ < n_ && p_[i_] == 0x82) {  // Device
        ++i_;
        size_t e = pkg_end();
        std::string path = name_string(scope);
        devices.push_back(path);
        term_list(e, path);
      } else if (op == 0x08) {  // Name
        std::string path = name_string(scope);
        names[path] = data_object();
      } else {
        ok_ = false;
      }
    }
    if (i_ != end) ok_ = false;
  }

  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
  bool ok_ = true;
};

// A resource template split into descriptors (tag, body).
struct Descriptor {
  uint8_t tag;
  std::vector<uint8_t> body;
};
std::vector<Descriptor> descriptors(const std::vector<uint8_t>& b, bool* end_tag) {
  std::vector<Descriptor> out;
  *end_tag = false;
  size_t i = 0;
  while (i < b.size()) {
    uint8_t lead = b[i];
    Descriptor d;
    size_t len, hdr;
    if (lead & 0x80) {
      if (i + 3 > b.size()) break;
      d.tag = lead;
      len = le16(&b[i + 1]);
      hdr = 3;
    } else {
      d.tag = uint8_t((lead >> 3) & 0x0F);
      len = lead & 7;
      hdr = 1;
    }
    if (i + hdr + len > b.size()) break;
    d.body.assign(b.begin() + i + hdr, b.begin() + i + hdr + len);
    i += hdr + len;
    if (d.tag == 0x0F) {  // end tag
      *end_tag = i == b.size();
      break;
    }
    out.push_back(d);
  }
  return out;
}

AmlReader read_table(const uint8_t* t) {
  AmlReader r(t + kHeaderSize, le32(t + 4) - kHeaderSize);
  REQUIRE(r.read());
  return r;
}

VmbusDevice one_window(uint64_t base, uint64_t length) {
  VmbusDevice v;
  v.mmio[0] = {base, length};
  v.mmio_count = 1;
  return v;
}

struct TestPlatform {
  std::vector<uint32_t> ids;
  Platform p;
  explicit TestPlatform(uint32_t cpus) {
    for (uint32_t i = 0; i < cpus; ++i) ids.push_back(i);
    p.cpu_count = cpus;
    p.apic_ids = ids.data();
    p.ioapic_id = uint8_t(cpus);
    p.pm_base = 0xB000;
    p.sci_irq = 9;
    p.pci_mmio_first = 0x80000000;
    p.pci_mmio_last = 0xFBFFFFFF;
    p.pci_link_irqs[0] = 10;
    p.pci_link_irqs[1] = 10;
    p.pci_link_irqs[2] = 11;
    p.pci_link_irqs[3] = 11;
    p.vmbus = one_window(0xFC000000, 0x2C00000);
  }
};

// Runs `build` with every capacity below the table's size: each must fail
// (return 0) without writing past the capacity.
template <typename Build>
void check_bounds(Build build) {
  std::vector<uint8_t> full(65536);
  size_t n = build(full.data(), full.size());
  REQUIRE(n > 0);
  for (size_t cap = 0; cap < n; ++cap) {
    std::vector<uint8_t> buf(n + 16, 0xA5);
    INFO("capacity " << cap);
    REQUIRE(build(buf.data(), cap) == 0);
    bool untouched = true;
    for (size_t k = cap; k < buf.size(); ++k) untouched = untouched && buf[k] == 0xA5;
    REQUIRE(untouched);
  }
  std::vector<uint8_t> exact(n);
  CHECK(build(exact.data(), n) == n);
  CHECK(std::memcmp(exact.data(), full.data(), n) == 0);
}

void check_header(const uint8_t* t, size_t n, const char* signature) {
  CHECK(std::string(reinterpret_cast<const char*>(t), 4) == signature);
  CHECK(le32(t + 4) == n);
  CHECK(sum(t, n) == 0);
  CHECK(std::string(reinterpret_cast<const char*>(t + 10), 6) == "MICRHV");
}

// The VMBus device as ACPI 6.3 chapter 20 spells it, derived by hand:
//   DeviceOp(5B 82) PkgLength(0x22 = 34) NameSeg "VMBS"
//   NameOp(08) "_HID" StringPrefix(0D) "VMBus" NUL
//   NameOp(08) "_UID" ZeroOp(00)
//   NameOp(08) "_CRS" BufferOp(11) PkgLength(05) BytePrefix(0A) 02, EndTag(79 00)
const uint8_t kVmbsDevice[] = {0x5B, 0x82, 0x22, 'V', 'M', 'B', 'S',  0x08, '_',  'H',  'I',  'D',
                               0x0D, 'V',  'M',  'B', 'u', 's', 0x00, 0x08, '_',  'U',  'I',  'D',
                               0x00, 0x08, '_',  'C', 'R', 'S', 0x11, 0x05, 0x0A, 0x02, 0x79, 0x00};

}  // namespace

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

// ------------------------------------------------------------ DSDT

TEST_CASE("ACPI: the DSDT has the PCI root, processors, _S5 and the VMBus device", "[acpi]") {
  TestPlatform tp(4);
  std::vector<uint8_t> buf(16384);
  size_t n = build_dsdt(buf.data(), buf.size(), tp.p);
  REQUIRE(n > 0);
  check_header(buf.data(), n, "DSDT");
  AmlReader r = read_table(buf.data());

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
  std::vector<uint8_t> buf(65536);
  size_t n = build_dsdt(buf.data(), buf.size(), tp.p);
  REQUIRE(n > 4096);
  check_header(buf.data(), n, "DSDT");
  AmlReader r = read_table(buf.data());
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

TEST_CASE("ACPI: a full set walked from its RSDP finds FADT, MADT, DSDT and VMBus", "[acpi]") {
  // The readers dereference physical addresses, and RSDT and FADT hold 32-bit
  // ones: place the set below 2 GiB so the host addresses are the "physical"
  // ones.
  const size_t size = 64 * 1024;
  void* mem =
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (mem == MAP_FAILED) {
    WARN("no memory below 4 GiB; full-set walk skipped");
    return;
  }
  auto* base = static_cast<uint8_t*>(mem);
  const uint64_t phys = reinterpret_cast<uintptr_t>(base);
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

  // Too small a buffer: no layout.
  CHECK(build_full_set(tables, 600, phys + 4096, phys, tp.p).size == 0);
  munmap(mem, size);
}

TEST_CASE("ACPI: an SSDT added to firmware tables is found by the duplicate check", "[acpi]") {
  const size_t size = 16 * 1024;
  void* mem =
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (mem == MAP_FAILED) {
    WARN("no memory below 4 GiB; skipped");
    return;
  }
  auto* base = static_cast<uint8_t*>(mem);
  const uint64_t phys = reinterpret_cast<uintptr_t>(base);
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
  munmap(mem, size);
}
