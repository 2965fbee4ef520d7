// Writing ACPI: little-endian bytes with bounds checks, checksums, a minimal
// AML encoder and resource descriptors (ACPI 6.3 chapters 5, 6.4, 20).
// Portable: no EFI, no asm.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace microhv::acpi {

inline constexpr size_t kHeaderSize = 36;  // system description table header
inline constexpr size_t kRsdpSize = 36;    // ACPI 2.0+ RSDP
inline constexpr size_t kFacsSize = 64;
inline constexpr size_t kFadtSize = 276;  // FADT revision 6
inline constexpr uint32_t kMaxCpus = 256;

static constexpr char kVmbusHid[] = "VMBus";  // static: see scripts/check-relocs.sh
static constexpr char kOemId[] = "MICRHV";    // 6 characters

// ------------------------------------------------------------ byte writing

// Appends little-endian values to a caller buffer. After the first write that
// does not fit, nothing more is written and ok() is false.
class Writer {
 public:
  Writer(uint8_t* buf, size_t cap) : buf_(buf), cap_(buf == nullptr ? 0 : cap) {}

  void u8(uint8_t v);
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void bytes(const void* p, size_t n);
  void zeros(size_t n);
  // Exactly `width` bytes of `s`, padded with spaces (OEM ids and the like).
  void padded(const char* s, size_t width);
  // Opens a gap of `n` bytes at offset `at`, moving what follows.
  bool insert(size_t at, size_t n);
  void patch_u8(size_t at, uint8_t v);
  void patch_u32(size_t at, uint32_t v);
  void fail() { ok_ = false; }

  bool ok() const { return ok_; }
  size_t size() const { return size_; }
  uint8_t* data() { return buf_; }
  const uint8_t* data() const { return buf_; }

 private:
  bool reserve(size_t n);
  uint8_t* buf_;
  size_t cap_;
  size_t size_ = 0;
  bool ok_ = true;
};

// Sum of the bytes modulo 256 (a valid table sums to 0).
uint8_t sum(const void* data, size_t len);
// Sets data[at] so that the `len` bytes sum to 0.
void fix_checksum(uint8_t* data, size_t len, size_t at);

// ------------------------------------------------------------ AML

// A minimal AML encoder (ACPI 6.3 chapter 20): scopes, devices, Name() with
// strings, integers, EISA ids, buffers and packages. Names are ACPI paths such
// as "\\_SB", "_HID", "\\_SB.MHVM" or "^VMBS" (segments of 1-4 characters
// A-Z 0-9 _, padded with '_'). scope()/device() open a package closed by
// end(); its PkgLength is encoded in the fewest bytes once its size is known.
class Aml {
 public:
  explicit Aml(Writer& w) : w_(w) {}

  void scope(const char* path);
  void device(const char* name);
  void end();

  void name_string(const char* name, const char* value);
  void name_integer(const char* name, uint64_t value);
  void name_eisa_id(const char* name, const char* id);  // "PNP0A03"
  void name_buffer(const char* name, const uint8_t* data, size_t len);
  void name_package(const char* name, const uint64_t* values, size_t count);

  // Name(_PRT, Package() { Package() { slot << 16 | 0xFFFF, pin, 0, gsi }... }):
  // static routing (source 0, the last field is the GSI).
  struct PrtEntry {
    uint8_t slot;
    uint8_t pin;  // 0 = INTA .. 3 = INTD
    uint32_t gsi;
  };
  void name_prt(const PrtEntry* entries, size_t count);

  // True when every write fitted, every name was valid and every package was
  // closed.
  bool ok() const { return ok_ && w_.ok() && depth_ == 0; }
  void fail() { ok_ = false; }

 private:
  static constexpr size_t kMaxDepth = 8;
  void name_path(const char* path);
  void integer(uint64_t v);
  void open_package();
  void close_package();
  void name_op(const char* name);

  Writer& w_;
  size_t open_[kMaxDepth] = {};
  size_t depth_ = 0;
  bool ok_ = true;
};

// Encodes a 7-character EISA id ("PNP0A03") into its 32-bit AML form.
bool eisa_id(const char* id, uint32_t* out);

// ------------------------------------------------------------ resource descriptors

// Resource descriptors (ACPI 6.3 section 6.4) for a ResourceTemplate. finish()
// appends the end tag; pass data()/size() to Aml::name_buffer.
class Resources {
 public:
  Resources(uint8_t* buf, size_t cap) : w_(buf, cap) {}

  void io_port(uint16_t base, uint8_t length);      // IO(Decode16, base, base, 1, length)
  void bus_numbers(uint16_t first, uint16_t last);  // WordBusNumber, producer
  void io_window(uint16_t first, uint16_t last);    // WordIO, producer, entire range
  void memory32(uint32_t first, uint32_t last, bool cacheable);  // DWordMemory, producer, RW
  void memory64(uint64_t first, uint64_t last, bool cacheable);  // QWordMemory, producer, RW
  void finish();

  bool ok() const { return w_.ok(); }
  const uint8_t* data() const { return w_.data(); }
  size_t size() const { return w_.size(); }

 private:
  Writer w_;
};

}  // namespace microhv::acpi
