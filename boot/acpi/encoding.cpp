#include "boot/acpi/encoding.hpp"

#include "boot/acpi/spec.hpp"

namespace microhv::acpi {

using namespace spec;

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

}  // namespace microhv::acpi
