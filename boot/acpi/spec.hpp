// ACPI 6.3 numbers and byte helpers shared by the table builders and
// readers in boot/acpi/ (internal to this folder).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace microhv::acpi::spec {

inline constexpr uint8_t kCreatorRevision = 1;
static constexpr char kCreatorId[] = "MHV ";  // static: see scripts/check-relocs.sh

// AML opcodes (chapter 20).
inline constexpr uint8_t kZeroOp = 0x00;
inline constexpr uint8_t kOneOp = 0x01;
inline constexpr uint8_t kNameOp = 0x08;
inline constexpr uint8_t kBytePrefix = 0x0A;
inline constexpr uint8_t kWordPrefix = 0x0B;
inline constexpr uint8_t kDWordPrefix = 0x0C;
inline constexpr uint8_t kStringPrefix = 0x0D;
inline constexpr uint8_t kQWordPrefix = 0x0E;
inline constexpr uint8_t kScopeOp = 0x10;
inline constexpr uint8_t kBufferOp = 0x11;
inline constexpr uint8_t kPackageOp = 0x12;
inline constexpr uint8_t kExtOpPrefix = 0x5B;
inline constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
inline constexpr uint8_t kRootChar = 0x5C;
inline constexpr uint8_t kParentPrefix = 0x5E;
inline constexpr uint8_t kDualNamePrefix = 0x2E;
inline constexpr uint8_t kMultiNamePrefix = 0x2F;

// Resource descriptors (section 6.4).
inline constexpr uint8_t kIoPortDescriptor = 0x47;  // small, 7 bytes of data
inline constexpr uint8_t kEndTag = 0x79;
inline constexpr uint8_t kDWordAddress = 0x87;
inline constexpr uint8_t kWordAddress = 0x88;
inline constexpr uint8_t kQWordAddress = 0x8A;
inline constexpr uint8_t kSpaceMemory = 0, kSpaceIo = 1, kSpaceBus = 2;
// General flags: producer (bit 0 clear), positive decode, _MIF and _MAF set.
inline constexpr uint8_t kProducerFixed = 0x0C;

// MADT structure types (section 5.2.12).
inline constexpr uint8_t kMadtLocalApic = 0, kMadtIoApic = 1, kMadtOverride = 2,
                         kMadtLocalApicNmi = 4, kMadtLocalX2Apic = 9, kMadtLocalX2ApicNmi = 10;

// FADT flags and IA-PC boot architecture flags (section 5.2.9).
inline constexpr uint32_t kFadtWbinvd = 1u << 0, kFadtProcC1 = 1u << 2, kFadtPwrButton = 1u << 4,
                          kFadtSlpButton = 1u << 5, kFadtTmrValExt = 1u << 8;
inline constexpr uint16_t kBootLegacyDevices = 1u << 0, kBoot8042 = 1u << 1;
inline constexpr uint8_t kSpaceIdSystemIo = 1;

inline size_t align_up(size_t v, size_t a) {
  return (v + a - 1) & ~(a - 1);
}

inline uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
inline uint64_t get_u64(const uint8_t* p) {
  return static_cast<uint64_t>(get_u32(p)) | static_cast<uint64_t>(get_u32(p + 4)) << 32;
}

inline bool same(const uint8_t* p, const char* s, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != static_cast<uint8_t>(s[i])) return false;
  }
  return true;
}

inline size_t str_len(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

}  // namespace microhv::acpi::spec
