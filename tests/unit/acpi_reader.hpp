// Test helpers for the ACPI tables: an independent AML reader (ACPI 6.3
// chapter 20) that reads back what the builders wrote, resource-descriptor
// parsing, a test platform, and the bounds and header checks every table
// builder must pass. Shared by the acpi_*_test.cpp files.
#pragma once

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "boot/acpi/acpi.hpp"

namespace microhv::acpi_test {

using namespace microhv::acpi;

inline uint32_t le32(const uint8_t* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
}
inline uint64_t le64(const uint8_t* p) {
  return le32(p) | uint64_t(le32(p + 4)) << 32;
}
inline uint16_t le16(const uint8_t* p) {
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
inline std::vector<Descriptor> descriptors(const std::vector<uint8_t>& b, bool* end_tag) {
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

inline AmlReader read_table(const uint8_t* t) {
  AmlReader r(t + kHeaderSize, le32(t + 4) - kHeaderSize);
  REQUIRE(r.read());
  return r;
}

inline VmbusDevice one_window(uint64_t base, uint64_t length) {
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

inline void check_header(const uint8_t* t, size_t n, const char* signature) {
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
inline constexpr uint8_t kVmbsDevice[] = {0x5B, 0x82, 0x22, 'V',  'M',  'B',  'S',  0x08, '_',
                                          'H',  'I',  'D',  0x0D, 'V',  'M',  'B',  'u',  's',
                                          0x00, 0x08, '_',  'U',  'I',  'D',  0x00, 0x08, '_',
                                          'C',  'R',  'S',  0x11, 0x05, 0x0A, 0x02, 0x79, 0x00};

}  // namespace microhv::acpi_test
