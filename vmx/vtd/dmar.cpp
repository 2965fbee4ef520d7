#include "vmx/vtd/dmar.hpp"

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {
namespace {

using namespace arch::vtd;

constexpr uint32_t kAcpiHeaderBytes = 36;
constexpr uint32_t kStructureHeaderBytes = 4;
constexpr uint64_t kPageMask = 0xFFF;

uint16_t get16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t get32(const uint8_t* p) {
  return static_cast<uint32_t>(get16(p)) | static_cast<uint32_t>(get16(p + 2)) << 16;
}
uint64_t get64(const uint8_t* p) {
  return static_cast<uint64_t>(get32(p)) | static_cast<uint64_t>(get32(p + 4)) << 32;
}

uint8_t byte_sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

const char* structure_name(uint16_t type) {
  switch (type) {
    case kDrhd:
      return "DRHD";
    case kRmrr:
      return "RMRR";
    case kAtsr:
      return "ATSR";
    case kRhsa:
      return "RHSA";
    case kAndd:
      return "ANDD";
    default:
      return "structure";
  }
}

// The smallest length a structure of this type can have (8.3-8.7).
uint32_t minimum_length(uint16_t type) {
  switch (type) {
    case kDrhd:
      return kDrhdFixedBytes;
    case kRmrr:
      return kRmrrFixedBytes;
    case kAtsr:
      return 8;
    case kRhsa:
      return 20;
    case kAndd:
      return 8;
    default:
      return kStructureHeaderBytes;
  }
}

class Parser {
 public:
  Parser(DmarInfo* out, char* error, size_t cap) : out_(out), error_(error), cap_(cap) {}

  bool fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    va_list args;
    va_start(args, fmt);
    char detail[200];
    format(detail, sizeof(detail), fmt, args);
    va_end(args);
    if (error_ != nullptr && cap_ != 0) format(error_, cap_, "DMAR: %s", detail);
    return false;
  }

  // Device scopes in [begin, end) of the structure at table offset `at`.
  bool scopes(const uint8_t* table, uint32_t begin, uint32_t end, uint32_t at, uint32_t* first,
              uint32_t* count) {
    *first = out_->scope_count;
    *count = 0;
    for (uint32_t off = begin; off < end;) {
      if (end - off < kScopeFixedBytes) {
        return fail(
            "device scope at offset 0x%x: %u bytes left in the structure at 0x%x, a scope "
            "needs at least %u",
            off, end - off, at, kScopeFixedBytes);
      }
      const uint8_t* s = table + off;
      const uint8_t length = s[1];
      if (length < kScopeFixedBytes) {
        return fail("device scope at offset 0x%x: length %u is shorter than its %u-byte header",
                    off, length, kScopeFixedBytes);
      }
      if (length > end - off) {
        return fail(
            "device scope at offset 0x%x: length %u runs past the end of its structure "
            "(0x%x..0x%x)",
            off, length, at, end);
      }
      if ((length - kScopeFixedBytes) % 2 != 0) {
        return fail("device scope at offset 0x%x: length %u leaves half a (device, function) pair",
                    off, length);
      }
      if (out_->scope_count == kMaxScopes) {
        return fail("more than %u device scopes (microhv's limit)", kMaxScopes);
      }
      DeviceScope& d = out_->scopes[out_->scope_count++];
      d = DeviceScope{};
      d.type = s[0];
      d.enumeration_id = s[4];
      d.start_bus = s[5];
      const uint32_t hops = (length - kScopeFixedBytes) / 2;
      d.hops = static_cast<uint8_t>(hops);
      for (uint32_t h = 0; h < hops && h < kMaxScopePath; ++h) {
        d.path[h][0] = s[kScopeFixedBytes + 2 * h];
        d.path[h][1] = s[kScopeFixedBytes + 2 * h + 1];
      }
      ++*count;
      off += length;
    }
    return true;
  }

  bool drhd(const uint8_t* table, uint32_t at, uint32_t length) {
    const uint8_t* s = table + at;
    if (out_->unit_count == kMaxUnits) {
      return fail("more than %u DRHD units (microhv's limit)", kMaxUnits);
    }
    const uint64_t base = get64(s + 8);
    if (base == 0 || (base & kPageMask) != 0) {
      return fail("DRHD at offset 0x%x: register base 0x%llx is not a page address", at,
                  static_cast<unsigned long long>(base));
    }
    const uint16_t segment = get16(s + 6);
    const bool all = (s[4] & kDrhdIncludePciAll) != 0;
    for (uint32_t i = 0; i < out_->unit_count; ++i) {
      const RemapUnit& u = out_->units[i];
      if (u.register_base == Hpa(base)) {
        return fail("DRHD at offset 0x%x: a second unit at register base 0x%llx", at,
                    static_cast<unsigned long long>(base));
      }
      if (all && u.include_pci_all && u.segment == segment) {
        return fail("DRHD at offset 0x%x: a second INCLUDE_PCI_ALL unit for segment %u", at,
                    segment);
      }
    }
    RemapUnit u{};
    u.register_base = Hpa(base);
    u.register_pages = 1u << (s[5] & kDrhdSizeMask);
    u.segment = segment;
    u.include_pci_all = all;
    if (!scopes(table, at + kDrhdFixedBytes, at + length, at, &u.first_scope, &u.scope_count)) {
      return false;
    }
    out_->units[out_->unit_count++] = u;
    return true;
  }

  bool rmrr(const uint8_t* table, uint32_t at, uint32_t length) {
    const uint8_t* s = table + at;
    if (out_->region_count == kMaxReservedRegions) {
      return fail("more than %u RMRR regions (microhv's limit)", kMaxReservedRegions);
    }
    ReservedRegion r{};
    r.segment = get16(s + 6);
    r.base = get64(s + 8);
    r.limit = get64(s + 16);
    if (r.limit < r.base) {
      return fail("RMRR at offset 0x%x: limit 0x%llx is below its base 0x%llx", at,
                  static_cast<unsigned long long>(r.limit),
                  static_cast<unsigned long long>(r.base));
    }
    // 8.4 asks for a 4 KiB-aligned base and limit + 1; identity-mapping the
    // whole pages around a misaligned region is what the devices need.
    if ((r.base & kPageMask) != 0 || (r.limit & kPageMask) != kPageMask) {
      r.base &= ~kPageMask;
      r.limit |= kPageMask;
      ++out_->rounded_regions;
    }
    if (!scopes(table, at + kRmrrFixedBytes, at + length, at, &r.first_scope, &r.scope_count)) {
      return false;
    }
    out_->regions[out_->region_count++] = r;
    return true;
  }

  bool parse(const uint8_t* table, size_t available) {
    if (table == nullptr || available < kAcpiHeaderBytes) {
      return fail("truncated: %lu bytes, the ACPI table header alone needs %u",
                  static_cast<unsigned long>(table == nullptr ? 0 : available), kAcpiHeaderBytes);
    }
    if (table[0] != 'D' || table[1] != 'M' || table[2] != 'A' || table[3] != 'R') {
      return fail("signature is not \"DMAR\"");
    }
    const uint32_t length = get32(table + 4);
    if (length < kDmarStructures) {
      return fail("length %u is shorter than the %u-byte DMAR header", length, kDmarStructures);
    }
    if (length > available) {
      return fail("length %u runs past the end of the table data (%lu bytes)", length,
                  static_cast<unsigned long>(available));
    }
    if (const uint8_t sum = byte_sum(table, length); sum != 0) {
      return fail("checksum mismatch: the %u bytes sum to 0x%02x, not 0", length, sum);
    }
    const unsigned bits = table[kDmarHostAddressWidth] + 1u;
    if (bits < 32 || bits > 64) {
      return fail("host address width of %u bits is outside 32..64", bits);
    }
    out_->address_bits = static_cast<uint8_t>(bits);
    out_->flags = table[kDmarFlags];
    for (uint32_t at = kDmarStructures; at < length;) {
      if (length - at < kStructureHeaderBytes) {
        return fail("%u stray bytes at offset 0x%x after the last structure", length - at, at);
      }
      const uint16_t type = get16(table + at);
      const uint16_t size = get16(table + at + 2);
      if (size < minimum_length(type)) {
        return fail("%s (type %u) at offset 0x%x: length %u is shorter than its minimum %u",
                    structure_name(type), type, at, size, minimum_length(type));
      }
      if (size > length - at) {
        return fail("%s at offset 0x%x: length %u runs past the end of the table (%u bytes)",
                    structure_name(type), at, size, length);
      }
      bool ok = true;
      if (type == kDrhd) {
        ok = drhd(table, at, size);
      } else if (type == kRmrr) {
        ok = rmrr(table, at, size);
      } else {
        ++out_->skipped_structures;
      }
      if (!ok) return false;
      at += size;
    }
    return true;
  }

 private:
  DmarInfo* out_;
  char* error_;
  size_t cap_;
};

}  // namespace

uint16_t DeviceScope::source_id() const {
  if (hops != 1) return 0xFFFF;
  return static_cast<uint16_t>(start_bus << 8 | (path[0][0] & 0x1F) << 3 | (path[0][1] & 7));
}

bool parse_dmar(const uint8_t* table, size_t available, DmarInfo* out, char* error,
                size_t error_cap) {
  *out = DmarInfo{};
  if (error != nullptr && error_cap != 0) error[0] = '\0';
  Parser parser(out, error, error_cap);
  if (parser.parse(table, available)) return true;
  *out = DmarInfo{};
  return false;
}

bool covers_all_pci_devices(const DmarInfo& info) {
  for (uint32_t i = 0; i < info.unit_count; ++i) {
    bool segment_covered = false;
    for (uint32_t j = 0; j < info.unit_count; ++j) {
      if (info.units[j].segment == info.units[i].segment && info.units[j].include_pci_all) {
        segment_covered = true;
      }
    }
    if (!segment_covered) return false;
  }
  return info.unit_count != 0;
}

namespace {

// Renames the table's signature from `from` to `to` (first letters, the rest
// is "MAR") and fixes its checksum.
bool rename_table(uint8_t* table, size_t available, char from, char to) {
  if (table == nullptr || available < kDmarStructures || table[0] != from || table[1] != 'M' ||
      table[2] != 'A' || table[3] != 'R') {
    return false;
  }
  const uint32_t length = get32(table + 4);
  if (length < kDmarStructures || length > available) return false;
  table[0] = static_cast<uint8_t>(to);
  table[9] = 0;
  table[9] = static_cast<uint8_t>(0x100 - byte_sum(table, length));
  return true;
}

}  // namespace

bool hide_dmar(uint8_t* table, size_t available) {
  return rename_table(table, available, 'D', 'X');
}

bool reveal_dmar(uint8_t* table, size_t available) {
  return rename_table(table, available, 'X', 'D');
}

}  // namespace microhv::vtd
