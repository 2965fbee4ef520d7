#include "boot/acpi/acpi.hpp"

namespace microhv::acpi {
namespace {

// ------------------------------------------------------------ constants (ACPI 6.3)

constexpr uint8_t kCreatorRevision = 1;
constexpr char kCreatorId[] = "MHV ";

// AML opcodes (chapter 20).
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0A;
constexpr uint8_t kWordPrefix = 0x0B;
constexpr uint8_t kDWordPrefix = 0x0C;
constexpr uint8_t kStringPrefix = 0x0D;
constexpr uint8_t kQWordPrefix = 0x0E;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kExtOpPrefix = 0x5B;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = 0x5C;
constexpr uint8_t kParentPrefix = 0x5E;
constexpr uint8_t kDualNamePrefix = 0x2E;
constexpr uint8_t kMultiNamePrefix = 0x2F;

// Resource descriptors (section 6.4).
constexpr uint8_t kIoPortDescriptor = 0x47;  // small, 7 bytes of data
constexpr uint8_t kEndTag = 0x79;
constexpr uint8_t kDWordAddress = 0x87;
constexpr uint8_t kWordAddress = 0x88;
constexpr uint8_t kQWordAddress = 0x8A;
constexpr uint8_t kSpaceMemory = 0, kSpaceIo = 1, kSpaceBus = 2;
// General flags: producer (bit 0 clear), positive decode, _MIF and _MAF set.
constexpr uint8_t kProducerFixed = 0x0C;

// MADT structure types (section 5.2.12).
constexpr uint8_t kMadtLocalApic = 0, kMadtIoApic = 1, kMadtOverride = 2, kMadtLocalApicNmi = 4,
                  kMadtLocalX2Apic = 9, kMadtLocalX2ApicNmi = 10;

// FADT flags and IA-PC boot architecture flags (section 5.2.9).
constexpr uint32_t kFadtWbinvd = 1u << 0, kFadtProcC1 = 1u << 2, kFadtPwrButton = 1u << 4,
                   kFadtSlpButton = 1u << 5, kFadtTmrValExt = 1u << 8;
constexpr uint16_t kBootLegacyDevices = 1u << 0, kBoot8042 = 1u << 1;
constexpr uint8_t kSpaceIdSystemIo = 1;

size_t align_up(size_t v, size_t a) {
  return (v + a - 1) & ~(a - 1);
}

uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint64_t get_u64(const uint8_t* p) {
  return static_cast<uint64_t>(get_u32(p)) | static_cast<uint64_t>(get_u32(p + 4)) << 32;
}

bool same(const uint8_t* p, const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != static_cast<uint8_t>(s[i])) return false;
  }
  return true;
}

size_t str_len(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// ------------------------------------------------------------ table framing

void begin_table(Writer& w, const char* signature, uint8_t revision, const char* table_id) {
  w.padded(signature, 4);
  w.u32(0);  // length, patched by end_table
  w.u8(revision);
  w.u8(0);  // checksum, patched by end_table
  w.padded(kOemId, 6);
  w.padded(table_id, 8);
  w.u32(1);  // OEM revision
  w.padded(kCreatorId, 4);
  w.u32(kCreatorRevision);
}

size_t end_table(Writer& w) {
  if (!w.ok() || w.size() < kHeaderSize) return 0;
  w.patch_u32(4, static_cast<uint32_t>(w.size()));
  fix_checksum(w.data(), w.size(), 9);
  return w.ok() ? w.size() : 0;
}

// Generic Address Structure for a block of I/O ports (0 = none).
void gas_io(Writer& w, uint32_t port, uint8_t length_bytes) {
  if (port == 0) {
    w.zeros(12);
    return;
  }
  w.u8(kSpaceIdSystemIo);
  w.u8(static_cast<uint8_t>(length_bytes * 8));  // register bit width
  w.u8(0);                                       // bit offset
  w.u8(0);                                       // access size: any, as ACPICA assumes
  w.u64(port);
}

bool valid_window(const MmioWindow& m) {
  return m.length != 0 && m.base + (m.length - 1) >= m.base;
}

// What Linux's vmbus_walk_resources() keeps: windows ending at or above 1 MiB.
bool valid_vmbus(const VmbusDevice& v) {
  if (v.mmio_count == 0 || v.mmio_count > VmbusDevice::kMaxWindows) return false;
  bool usable = false;
  for (size_t i = 0; i < v.mmio_count; ++i) {
    if (!valid_window(v.mmio[i])) return false;
    if (v.mmio[i].base + (v.mmio[i].length - 1) >= 0x100000) usable = true;
  }
  return usable;
}

bool valid_platform(const Platform& p) {
  if (p.cpu_count == 0 || p.cpu_count > kMaxCpus || p.apic_ids == nullptr) return false;
  if (p.pm_base == 0) return false;
  if (p.pci_mmio_last < p.pci_mmio_first) return false;
  return valid_vmbus(p.vmbus);
}

}  // namespace

// ------------------------------------------------------------ Writer

bool Writer::reserve(size_t n) {
  if (!ok_ || n > cap_ - size_) {
    ok_ = false;
    return false;
  }
  return true;
}

void Writer::u8(uint8_t v) {
  if (reserve(1)) buf_[size_++] = v;
}
void Writer::u16(uint16_t v) {
  u8(static_cast<uint8_t>(v));
  u8(static_cast<uint8_t>(v >> 8));
}
void Writer::u32(uint32_t v) {
  u16(static_cast<uint16_t>(v));
  u16(static_cast<uint16_t>(v >> 16));
}
void Writer::u64(uint64_t v) {
  u32(static_cast<uint32_t>(v));
  u32(static_cast<uint32_t>(v >> 32));
}

void Writer::bytes(const void* p, size_t n) {
  if (!reserve(n)) return;
  const auto* s = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) buf_[size_++] = s[i];
}

void Writer::zeros(size_t n) {
  if (!reserve(n)) return;
  for (size_t i = 0; i < n; ++i) buf_[size_++] = 0;
}

void Writer::padded(const char* s, size_t width) {
  if (!reserve(width)) return;
  size_t i = 0;
  for (; i < width && s[i] != '\0'; ++i) buf_[size_++] = static_cast<uint8_t>(s[i]);
  for (; i < width; ++i) buf_[size_++] = ' ';
}

bool Writer::insert(size_t at, size_t n) {
  if (at > size_ || !reserve(n)) {
    ok_ = false;
    return false;
  }
  for (size_t i = size_; i > at; --i) buf_[i - 1 + n] = buf_[i - 1];
  size_ += n;
  return true;
}

void Writer::patch_u8(size_t at, uint8_t v) {
  if (!ok_ || at >= size_) {
    ok_ = false;
    return;
  }
  buf_[at] = v;
}

void Writer::patch_u32(size_t at, uint32_t v) {
  if (!ok_ || at > size_ || size_ - at < 4) {
    ok_ = false;
    return;
  }
  for (int i = 0; i < 4; ++i) buf_[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint8_t sum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint8_t s = 0;
  for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

void fix_checksum(uint8_t* data, size_t len, size_t at) {
  if (at >= len) return;
  data[at] = 0;
  data[at] = static_cast<uint8_t>(0x100 - sum(data, len));
}

// ------------------------------------------------------------ AML

bool eisa_id(const char* id, uint32_t* out) {
  if (str_len(id) != 7) return false;
  uint32_t letters[3];
  for (int i = 0; i < 3; ++i) {
    if (id[i] < 'A' || id[i] > 'Z') return false;
    letters[i] = static_cast<uint32_t>(id[i] - 0x40);
  }
  uint32_t digits[4];
  for (int i = 0; i < 4; ++i) {
    char c = id[3 + i];
    if (c >= '0' && c <= '9') {
      digits[i] = static_cast<uint32_t>(c - '0');
    } else if (c >= 'A' && c <= 'F') {
      digits[i] = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
  }
  // Big-endian bit string: 0 | 5 bits | 5 bits | 5 bits | 4 x 4 bits.
  uint32_t b0 = letters[0] << 2 | letters[1] >> 3;
  uint32_t b1 = (letters[1] & 7) << 5 | letters[2];
  uint32_t b2 = digits[0] << 4 | digits[1];
  uint32_t b3 = digits[2] << 4 | digits[3];
  *out = b0 | b1 << 8 | b2 << 16 | b3 << 24;
  return true;
}

void Aml::name_path(const char* path) {
  const char* p = path;
  if (*p == '\\') {
    w_.u8(kRootChar);
    ++p;
  } else {
    while (*p == '^') {
      w_.u8(kParentPrefix);
      ++p;
    }
  }
  if (*p == '\0') {  // "\" alone: the root; otherwise a NameString needs a segment
    if (p == path || path[0] != '\\') {
      ok_ = false;
      return;
    }
    w_.u8(kZeroOp);  // NullName
    return;
  }
  // Count and check the segments first: the prefix depends on their number.
  size_t segments = 0;
  for (const char* s = p;;) {
    size_t n = 0;
    while (s[n] != '\0' && s[n] != '.') {
      char c = s[n];
      bool letter = (c >= 'A' && c <= 'Z') || c == '_';
      bool digit = c >= '0' && c <= '9';
      if (!(letter || (digit && n > 0))) {
        ok_ = false;
        return;
      }
      ++n;
    }
    if (n == 0 || n > 4) {
      ok_ = false;
      return;
    }
    ++segments;
    if (s[n] == '\0') break;
    s += n + 1;
  }
  if (segments > 255) {
    ok_ = false;
    return;
  }
  if (segments == 2) {
    w_.u8(kDualNamePrefix);
  } else if (segments > 2) {
    w_.u8(kMultiNamePrefix);
    w_.u8(static_cast<uint8_t>(segments));
  }
  for (const char* s = p;;) {
    size_t n = 0;
    while (s[n] != '\0' && s[n] != '.') ++n;
    for (size_t i = 0; i < 4; ++i) w_.u8(static_cast<uint8_t>(i < n ? s[i] : '_'));
    if (s[n] == '\0') break;
    s += n + 1;
  }
}

void Aml::integer(uint64_t v) {
  if (v == 0) {
    w_.u8(kZeroOp);
  } else if (v == 1) {
    w_.u8(kOneOp);
  } else if (v <= 0xFF) {
    w_.u8(kBytePrefix);
    w_.u8(static_cast<uint8_t>(v));
  } else if (v <= 0xFFFF) {
    w_.u8(kWordPrefix);
    w_.u16(static_cast<uint16_t>(v));
  } else if (v <= 0xFFFFFFFFu) {
    w_.u8(kDWordPrefix);
    w_.u32(static_cast<uint32_t>(v));
  } else {
    w_.u8(kQWordPrefix);
    w_.u64(v);
  }
}

void Aml::open_package() {
  if (depth_ == kMaxDepth) {
    ok_ = false;
    return;
  }
  open_[depth_++] = w_.size();  // PkgLength goes here
}

// PkgLength (section 20.2.4) counts itself and what follows up to the end of
// the package. One byte holds up to 63; longer values use 2-4 bytes: the lead
// byte's bits 7:6 give the number of following bytes and bits 3:0 the low
// nibble, the following bytes the next 8 bits each.
void Aml::close_package() {
  if (depth_ == 0) {
    ok_ = false;
    return;
  }
  size_t at = open_[--depth_];
  if (!w_.ok()) return;
  size_t body = w_.size() - at;
  size_t n = body + 1 <= 0x3F ? 1 : body + 2 <= 0xFFF ? 2 : body + 3 <= 0xFFFFF ? 3 : 4;
  size_t value = body + n;
  if (value > 0xFFFFFFF || !w_.insert(at, n)) {
    ok_ = false;
    return;
  }
  if (n == 1) {
    w_.patch_u8(at, static_cast<uint8_t>(value));
    return;
  }
  w_.patch_u8(at, static_cast<uint8_t>((n - 1) << 6 | (value & 0xF)));
  for (size_t i = 1; i < n; ++i) {
    w_.patch_u8(at + i, static_cast<uint8_t>(value >> (4 + 8 * (i - 1))));
  }
}

void Aml::scope(const char* path) {
  w_.u8(kScopeOp);
  open_package();
  name_path(path);
}

void Aml::device(const char* name) {
  w_.u8(kExtOpPrefix);
  w_.u8(kDeviceOp);
  open_package();
  name_path(name);
}

void Aml::end() {
  close_package();
}

void Aml::name_op(const char* name) {
  w_.u8(kNameOp);
  name_path(name);
}

void Aml::name_string(const char* name, const char* value) {
  name_op(name);
  w_.u8(kStringPrefix);
  for (const char* c = value; *c != '\0'; ++c) {
    if (static_cast<uint8_t>(*c) > 0x7F) ok_ = false;  // AML strings are ASCII
    w_.u8(static_cast<uint8_t>(*c));
  }
  w_.u8(0);
}

void Aml::name_integer(const char* name, uint64_t value) {
  name_op(name);
  integer(value);
}

void Aml::name_eisa_id(const char* name, const char* id) {
  uint32_t v = 0;
  if (!eisa_id(id, &v)) {
    ok_ = false;
    return;
  }
  name_op(name);
  w_.u8(kDWordPrefix);  // as iasl emits EisaId(): always a DWord
  w_.u32(v);
}

void Aml::name_buffer(const char* name, const uint8_t* data, size_t len) {
  name_op(name);
  w_.u8(kBufferOp);
  open_package();
  integer(len);
  w_.bytes(data, len);
  close_package();
}

void Aml::name_package(const char* name, const uint64_t* values, size_t count) {
  if (count > 255) {
    ok_ = false;
    return;
  }
  name_op(name);
  w_.u8(kPackageOp);
  open_package();
  w_.u8(static_cast<uint8_t>(count));
  for (size_t i = 0; i < count; ++i) integer(values[i]);
  close_package();
}

void Aml::name_prt(const PrtEntry* entries, size_t count) {
  if (count > 255) {
    ok_ = false;
    return;
  }
  name_op("_PRT");
  w_.u8(kPackageOp);
  open_package();
  w_.u8(static_cast<uint8_t>(count));
  for (size_t i = 0; i < count; ++i) {
    if (entries[i].slot > 31 || entries[i].pin > 3) ok_ = false;
    w_.u8(kPackageOp);
    open_package();
    w_.u8(4);
    integer(static_cast<uint64_t>(entries[i].slot) << 16 | 0xFFFF);  // any function
    integer(entries[i].pin);
    integer(0);  // source: none, so the next field is a GSI
    integer(entries[i].gsi);
    close_package();
  }
  close_package();
}

// ------------------------------------------------------------ resource descriptors

void Resources::io_port(uint16_t base, uint8_t length) {
  w_.u8(kIoPortDescriptor);
  w_.u8(1);  // decodes 16 address bits
  w_.u16(base);
  w_.u16(base);
  w_.u8(1);  // alignment
  w_.u8(length);
}

void Resources::bus_numbers(uint16_t first, uint16_t last) {
  if (last < first) w_.fail();
  w_.u8(kWordAddress);
  w_.u16(13);
  w_.u8(kSpaceBus);
  w_.u8(kProducerFixed);
  w_.u8(0);
  w_.u16(0);  // granularity
  w_.u16(first);
  w_.u16(last);
  w_.u16(0);  // translation
  w_.u16(static_cast<uint16_t>(last - first + 1));
}

void Resources::io_window(uint16_t first, uint16_t last) {
  if (last < first) w_.fail();
  w_.u8(kWordAddress);
  w_.u16(13);
  w_.u8(kSpaceIo);
  w_.u8(kProducerFixed);
  w_.u8(3);  // _RNG: ISA and non-ISA ranges
  w_.u16(0);
  w_.u16(first);
  w_.u16(last);
  w_.u16(0);
  w_.u16(static_cast<uint16_t>(last - first + 1));
}

void Resources::memory32(uint32_t first, uint32_t last, bool cacheable) {
  if (last < first) w_.fail();
  w_.u8(kDWordAddress);
  w_.u16(23);
  w_.u8(kSpaceMemory);
  w_.u8(kProducerFixed);
  w_.u8(cacheable ? 0x03 : 0x01);  // _MEM cacheable or not, _RW read-write
  w_.u32(0);
  w_.u32(first);
  w_.u32(last);
  w_.u32(0);
  w_.u32(last - first + 1);
}

void Resources::memory64(uint64_t first, uint64_t last, bool cacheable) {
  if (last < first) w_.fail();
  w_.u8(kQWordAddress);
  w_.u16(43);
  w_.u8(kSpaceMemory);
  w_.u8(kProducerFixed);
  w_.u8(cacheable ? 0x03 : 0x01);
  w_.u64(0);
  w_.u64(first);
  w_.u64(last);
  w_.u64(0);
  w_.u64(last - first + 1);
}

void Resources::finish() {
  w_.u8(kEndTag);
  w_.u8(0);  // checksum 0: "treat as correct"
}

// ------------------------------------------------------------ the VMBus device

void append_vmbus_device(Aml& aml, const VmbusDevice& vmbus, bool in_sb_scope) {
  if (!valid_vmbus(vmbus)) {
    aml.fail();
    return;
  }
  if (!in_sb_scope) aml.scope("\\_SB");
  aml.device("MHVM");
  aml.name_string("_HID", "ACPI0004");  // module device: a container of devices
  aml.name_integer("_UID", 0);
  uint8_t crs[2 * 46 + 2];
  Resources windows(crs, sizeof(crs));
  for (size_t i = 0; i < vmbus.mmio_count; ++i) {
    windows.memory64(vmbus.mmio[i].base, vmbus.mmio[i].base + (vmbus.mmio[i].length - 1), false);
  }
  windows.finish();
  if (!windows.ok()) aml.fail();
  aml.name_buffer("_CRS", windows.data(), windows.size());

  aml.device("VMBS");
  aml.name_string("_HID", kVmbusHid);
  aml.name_integer("_UID", 0);
  uint8_t empty[2];
  Resources none(empty, sizeof(empty));
  none.finish();
  aml.name_buffer("_CRS", none.data(), none.size());
  aml.end();

  aml.end();
  if (!in_sb_scope) aml.end();
}

size_t build_vmbus_ssdt(uint8_t* buf, size_t cap, const VmbusDevice& vmbus) {
  Writer w(buf, cap);
  begin_table(w, "SSDT", 2, "VMBUS");
  Aml aml(w);
  append_vmbus_device(aml, vmbus, false);
  if (!aml.ok()) return 0;
  return end_table(w);
}

// ------------------------------------------------------------ the full set

size_t build_dsdt(uint8_t* buf, size_t cap, const Platform& p) {
  if (!valid_platform(p)) return 0;
  Writer w(buf, cap);
  begin_table(w, "DSDT", 2, "MICROHV");  // revision 2: 64-bit integers
  Aml aml(w);

  const uint64_t s5[2] = {p.s5_sleep_type, p.s5_sleep_type};  // PM1a, PM1b SLP_TYP
  aml.name_package("\\_S5", s5, 2);

  aml.scope("\\_SB");

  aml.device("PCI0");
  aml.name_eisa_id("_HID", "PNP0A03");
  aml.name_integer("_UID", 0);
  uint8_t crs[128];
  Resources r(crs, sizeof(crs));
  r.bus_numbers(0, 0xFF);
  r.io_port(0xCF8, 8);  // configuration mechanism #1, consumed by the bridge
  r.io_window(0x0000, 0x0CF7);
  r.io_window(0x0D00, 0xFFFF);
  r.memory32(0x000A0000, 0x000BFFFF, true);  // legacy VGA
  if (p.pci_mmio_last > p.pci_mmio_first) r.memory32(p.pci_mmio_first, p.pci_mmio_last, false);
  r.finish();
  if (!r.ok()) aml.fail();
  aml.name_buffer("_CRS", r.data(), r.size());
  Aml::PrtEntry prt[32 * 4];
  size_t prt_count = 0;
  for (uint8_t slot = 0; slot < 32; ++slot) {
    for (uint8_t pin = 0; pin < 4; ++pin) {
      uint8_t irq = p.pci_link_irqs[(slot + pin + 3) % 4];  // (slot + pin - 1) mod 4
      if (irq != 0) prt[prt_count++] = {slot, pin, irq};
    }
  }
  if (prt_count > 0) aml.name_prt(prt, prt_count);
  aml.end();

  for (uint32_t i = 0; i < p.cpu_count; ++i) {
    const char hex[] = "0123456789ABCDEF";
    char name[5] = {'C', hex[(i >> 8) & 0xF], hex[(i >> 4) & 0xF], hex[i & 0xF], '\0'};
    aml.device(name);
    aml.name_string("_HID", "ACPI0007");  // processor device; _UID is its MADT UID
    aml.name_integer("_UID", i);
    aml.end();
  }

  append_vmbus_device(aml, p.vmbus, true);
  aml.end();
  if (!aml.ok()) return 0;
  return end_table(w);
}

size_t build_madt(uint8_t* buf, size_t cap, const Platform& p) {
  if (p.cpu_count == 0 || p.cpu_count > kMaxCpus || p.apic_ids == nullptr) return 0;
  Writer w(buf, cap);
  begin_table(w, "APIC", 5, "MICROHV");
  w.u32(p.local_apic_address);
  w.u32(1);  // PCAT_COMPAT: dual 8259s are present (the OS masks them)
  bool x2apic = false;
  for (uint32_t i = 0; i < p.cpu_count; ++i) {
    uint32_t id = p.apic_ids[i];
    if (id < 0xFF && i < 0xFF) {
      w.u8(kMadtLocalApic);
      w.u8(8);
      w.u8(static_cast<uint8_t>(i));  // ACPI processor UID
      w.u8(static_cast<uint8_t>(id));
      w.u32(1);  // enabled
    } else {
      x2apic = true;
      w.u8(kMadtLocalX2Apic);
      w.u8(16);
      w.u16(0);
      w.u32(id);
      w.u32(1);
      w.u32(i);
    }
  }
  w.u8(kMadtIoApic);
  w.u8(12);
  w.u8(p.ioapic_id);
  w.u8(0);
  w.u32(p.ioapic_address);
  w.u32(0);  // its first GSI
  // The PIT's IRQ 0 is wired to I/O APIC pin 2; bus ISA, flags 0: conforming
  // (edge, active high).
  w.u8(kMadtOverride);
  w.u8(10);
  w.u8(0);
  w.u8(0);
  w.u32(2);
  w.u16(0);
  // LINT1 of every processor is the NMI input (flags 0: conforming).
  w.u8(kMadtLocalApicNmi);
  w.u8(6);
  w.u8(0xFF);
  w.u16(0);
  w.u8(1);
  if (x2apic) {
    w.u8(kMadtLocalX2ApicNmi);
    w.u8(12);
    w.u16(0);
    w.u32(0xFFFFFFFFu);
    w.u8(1);
    w.zeros(3);
  }
  return end_table(w);
}

size_t build_fadt(uint8_t* buf, size_t cap, const Platform& p, uint64_t dsdt, uint64_t facs) {
  if (p.pm_base == 0 || dsdt > 0xFFFFFFFFu || facs > 0xFFFFFFFFu || (facs & 63) != 0) return 0;
  const uint32_t pm1_event = p.pm_base;
  const uint32_t pm1_control = p.pm_base + p.pm1_control_offset;
  const uint32_t pm_timer = p.pm_base + p.pm_timer_offset;
  Writer w(buf, cap);
  begin_table(w, "FACP", 6, "MICROHV");
  w.u32(static_cast<uint32_t>(facs));  // FIRMWARE_CTRL
  w.u32(static_cast<uint32_t>(dsdt));
  w.u8(0);  // reserved (ACPI 1.0 INT_MODEL)
  w.u8(0);  // preferred PM profile: unspecified
  w.u16(p.sci_irq);
  w.u32(0);  // SMI_CMD 0: no legacy mode, always in ACPI mode (no SMIs)
  w.u8(0);   // ACPI_ENABLE
  w.u8(0);   // ACPI_DISABLE
  w.u8(0);   // S4BIOS_REQ
  w.u8(0);   // PSTATE_CNT
  w.u32(pm1_event);
  w.u32(0);  // PM1b event
  w.u32(pm1_control);
  w.u32(0);  // PM1b control
  w.u32(0);  // PM2 control
  w.u32(pm_timer);
  w.u32(p.gpe0_block);
  w.u32(0);  // GPE1
  w.u8(4);   // PM1_EVT_LEN
  w.u8(2);   // PM1_CNT_LEN
  w.u8(0);   // PM2_CNT_LEN
  w.u8(4);   // PM_TMR_LEN
  w.u8(p.gpe0_block != 0 ? p.gpe0_length : 0);
  w.u8(0);        // GPE1_BLK_LEN
  w.u8(0);        // GPE1_BASE
  w.u8(0);        // CST_CNT
  w.u16(0x0FFF);  // P_LVL2_LAT > 100: no C2
  w.u16(0x0FFF);  // P_LVL3_LAT > 1000: no C3
  w.u16(0);       // FLUSH_SIZE
  w.u16(0);       // FLUSH_STRIDE
  w.u8(0);        // DUTY_OFFSET
  w.u8(0);        // DUTY_WIDTH
  w.u8(0);        // DAY_ALRM
  w.u8(0);        // MON_ALRM
  w.u8(0x32);     // CENTURY: CMOS register 0x32
  w.u16(static_cast<uint16_t>(kBootLegacyDevices | (p.has_8042 ? kBoot8042 : 0)));
  w.u8(0);
  // Buttons are neither fixed features nor described: the OS creates none.
  w.u32(kFadtWbinvd | kFadtProcC1 | kFadtPwrButton | kFadtSlpButton |
        (p.pm_timer_32bit ? kFadtTmrValExt : 0));
  w.zeros(12);  // RESET_REG: none
  w.u8(0);      // RESET_VALUE
  w.u16(0);     // ARM_BOOT_ARCH
  w.u8(3);      // FADT minor version: ACPI 6.3
  w.u64(0);     // X_FIRMWARE_CTRL: FIRMWARE_CTRL is used
  w.u64(dsdt);  // X_DSDT
  gas_io(w, pm1_event, 4);
  gas_io(w, 0, 0);  // X_PM1b_EVT_BLK
  gas_io(w, pm1_control, 2);
  gas_io(w, 0, 0);  // X_PM1b_CNT_BLK
  gas_io(w, 0, 0);  // X_PM2_CNT_BLK
  gas_io(w, pm_timer, 4);
  gas_io(w, p.gpe0_block, p.gpe0_block != 0 ? p.gpe0_length : 0);
  gas_io(w, 0, 0);  // X_GPE1_BLK
  w.zeros(12);      // SLEEP_CONTROL_REG
  w.zeros(12);      // SLEEP_STATUS_REG
  w.u64(0);         // hypervisor vendor identity
  size_t n = end_table(w);
  return n == kFadtSize ? n : 0;
}

size_t build_facs(uint8_t* buf, size_t cap) {
  Writer w(buf, cap);
  w.padded("FACS", 4);
  w.u32(kFacsSize);
  w.u32(0);  // hardware signature
  w.u32(0);  // firmware waking vector
  w.u32(0);  // global lock
  w.u32(0);  // flags: no S4BIOS, no 64-bit wake
  w.u64(0);  // X firmware waking vector
  w.u8(2);   // version
  w.zeros(3);
  w.u32(0);  // OSPM flags
  w.zeros(24);
  return w.ok() ? w.size() : 0;
}

size_t build_rsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count) {
  Writer w(buf, cap);
  begin_table(w, "RSDT", 1, "MICROHV");
  for (size_t i = 0; i < count; ++i) {
    if (tables[i] > 0xFFFFFFFFu) return 0;
    w.u32(static_cast<uint32_t>(tables[i]));
  }
  return end_table(w);
}

size_t build_xsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count) {
  Writer w(buf, cap);
  begin_table(w, "XSDT", 1, "MICROHV");
  for (size_t i = 0; i < count; ++i) w.u64(tables[i]);
  return end_table(w);
}

size_t build_rsdp(uint8_t* buf, size_t cap, uint64_t rsdt, uint64_t xsdt) {
  if (rsdt > 0xFFFFFFFFu) return 0;
  Writer w(buf, cap);
  w.padded("RSD PTR ", 8);
  w.u8(0);  // checksum of the first 20 bytes
  w.padded(kOemId, 6);
  w.u8(2);  // revision: ACPI 2.0+ (XSDT)
  w.u32(static_cast<uint32_t>(rsdt));
  w.u32(kRsdpSize);
  w.u64(xsdt);
  w.u8(0);  // extended checksum
  w.zeros(3);
  if (!w.ok()) return 0;
  fix_checksum(w.data(), 20, 8);
  fix_checksum(w.data(), kRsdpSize, 32);
  return w.size();
}

FullSetLayout build_full_set(uint8_t* buf, size_t cap, uint64_t buf_phys, uint64_t facs_phys,
                             const Platform& p) {
  FullSetLayout l;
  FullSetLayout failed;
  size_t off = 0;
  auto place = [&](size_t* at, size_t n) {
    if (n == 0) return false;
    *at = off;
    off = align_up(off + n, 16);
    return true;
  };
  auto room = [&]() { return off <= cap ? cap - off : 0; };

  if (buf == nullptr || (buf_phys & 15) != 0) return failed;
  if (!place(&l.dsdt, build_dsdt(buf + off, room(), p))) return failed;
  if (!place(&l.fadt, build_fadt(buf + off, room(), p, buf_phys + l.dsdt, facs_phys))) {
    return failed;
  }
  if (!place(&l.madt, build_madt(buf + off, room(), p))) return failed;
  const uint64_t tables[] = {buf_phys + l.fadt, buf_phys + l.madt};
  if (!place(&l.xsdt, build_xsdt(buf + off, room(), tables, 2))) return failed;
  if (!place(&l.rsdt, build_rsdt(buf + off, room(), tables, 2))) return failed;
  if (!place(&l.rsdp, build_rsdp(buf + off, room(), buf_phys + l.rsdt, buf_phys + l.xsdt))) {
    return failed;
  }
  l.size = off <= cap ? off : cap;
  return l;
}

// ------------------------------------------------------------ reading tables

namespace {

constexpr uint32_t kMaxTableLength = 16u << 20;

// A table header with this signature and a plausible length (the checksum is
// not required: firmware tables are not always right, and OSes load them).
const uint8_t* table_at(uint64_t addr, const char* signature) {
  if (addr == 0) return nullptr;
  const uint8_t* t = phys_to_ptr(addr);
  if (signature != nullptr && !same(t, signature, 4)) return nullptr;
  uint32_t len = get_u32(t + 4);
  if (len < kHeaderSize || len > kMaxTableLength) return nullptr;
  return t;
}

}  // namespace

bool rsdp_valid(const uint8_t* rsdp) {
  if (rsdp == nullptr || !same(rsdp, "RSD PTR ", 8) || sum(rsdp, 20) != 0) return false;
  if (rsdp[15] < 2) return true;
  uint32_t len = get_u32(rsdp + 20);
  return len >= kRsdpSize && len <= 4096 && sum(rsdp, len) == 0;
}

size_t root_entries(const uint8_t* rsdp, uint64_t* out, size_t cap) {
  if (!rsdp_valid(rsdp)) return 0;
  const uint8_t* root = nullptr;
  size_t entry = 0;
  if (rsdp[15] >= 2 && get_u64(rsdp + 24) != 0) {
    root = table_at(get_u64(rsdp + 24), "XSDT");
    entry = 8;
  }
  if (root == nullptr) {
    root = table_at(get_u32(rsdp + 16), "RSDT");
    entry = 4;
  }
  if (root == nullptr) return 0;
  size_t count = (get_u32(root + 4) - kHeaderSize) / entry;
  for (size_t i = 0; i < count && i < cap; ++i) {
    const uint8_t* e = root + kHeaderSize + i * entry;
    out[i] = entry == 8 ? get_u64(e) : get_u32(e);
  }
  return count;
}

uint64_t dsdt_address(const uint8_t* rsdp) {
  uint64_t entries[64];
  size_t n = root_entries(rsdp, entries, 64);
  for (size_t i = 0; i < n && i < 64; ++i) {
    const uint8_t* fadt = table_at(entries[i], "FACP");
    if (fadt == nullptr) continue;
    uint32_t len = get_u32(fadt + 4);
    if (len >= 148 && get_u64(fadt + 140) != 0) return get_u64(fadt + 140);  // X_DSDT
    if (len >= 44) return get_u32(fadt + 40);
  }
  return 0;
}

bool aml_declares_hid(const uint8_t* aml, size_t len, const char* hid) {
  // NameOp "_HID" StringPrefix <hid> NUL
  size_t hid_len = str_len(hid);
  size_t need = 1 + 4 + 1 + hid_len + 1;
  if (aml == nullptr || len < need) return false;
  for (size_t i = 0; i + need <= len; ++i) {
    if (aml[i] == kNameOp && same(aml + i + 1, "_HID", 4) && aml[i + 5] == kStringPrefix &&
        same(aml + i + 6, hid, hid_len) && aml[i + 6 + hid_len] == 0) {
      return true;
    }
  }
  return false;
}

bool tables_declare_hid(const uint8_t* rsdp, const char* hid) {
  auto check = [&](const uint8_t* t) {
    return t != nullptr && aml_declares_hid(t + kHeaderSize, get_u32(t + 4) - kHeaderSize, hid);
  };
  if (check(table_at(dsdt_address(rsdp), "DSDT"))) return true;
  uint64_t entries[64];
  size_t n = root_entries(rsdp, entries, 64);
  for (size_t i = 0; i < n && i < 64; ++i) {
    if (check(table_at(entries[i], "SSDT"))) return true;
  }
  return false;
}

}  // namespace microhv::acpi
