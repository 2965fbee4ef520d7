// Descriptor decoding into VMCS guest-segment state, TSS/IDT encodings.
#include <catch2/catch.hpp>

#include "arch/descriptors.hpp"

using namespace microhv::arch;

namespace {
// OVMF's GDT under Bochs: 0x08 data, 0x18 32-bit code, 0x28 data, 0x38 64-bit code.
constexpr uint64_t kGdt[] = {
    0,
    0x00CF92000000FFFFull,  // 0x08: data, not yet accessed
    0x00CF9A000000FFFFull,  // 0x10: 32-bit code
    0x00CF9B000000FFFFull,  // 0x18: 32-bit code, accessed
    0x00CF93000000FFFFull,  // 0x20: data
    0x00CF92000000FFFFull,  // 0x28
    0x00AF9B000000FFFFull,  // 0x30: 64-bit code (L=1)
    0x00AF9B000000FFFFull,  // 0x38
    0x0000890010000067ull,  // 0x40: available TSS, base bits 31:0 = 0x00001000
    0x00000000FFFFFFFFull,  // 0x48: upper base 0xFFFFFFFF
};
constexpr uint16_t kLimit = sizeof(kGdt) - 1;
constexpr uint32_t kAccessUnusable = 1u << 16;  // VMCS access rights bit 16 (SDM Table 25-2)
}  // namespace

TEST_CASE("descriptors: code and data segments in VMCS access-rights format") {
  constexpr SegmentState cs = decode_segment(kGdt, kLimit, 0x38);
  STATIC_REQUIRE(cs.selector == 0x38);
  STATIC_REQUIRE(cs.base == 0);
  STATIC_REQUIRE(cs.limit == 0xFFFFFFFF);
  STATIC_REQUIRE(cs.access == 0xA09B);  // G, L, P, S, type 11
  constexpr SegmentState ds = decode_segment(kGdt, kLimit, 0x08);
  STATIC_REQUIRE(ds.access == 0xC093);  // accessed bit set as the CPU would
}

TEST_CASE("descriptors: null, out-of-range, LDT and not-present selectors are unusable") {
  STATIC_REQUIRE(decode_segment(kGdt, kLimit, 0).access == kAccessUnusable);
  STATIC_REQUIRE(decode_segment(kGdt, kLimit, 3).access == kAccessUnusable);  // null with RPL 3
  STATIC_REQUIRE(decode_segment(kGdt, kLimit, 0x50).access == kAccessUnusable);
  STATIC_REQUIRE(decode_segment(kGdt, kLimit, 0x0C).access == kAccessUnusable);  // TI = 1
  constexpr uint64_t np[] = {0, 0x00CF12000000FFFFull};
  STATIC_REQUIRE(decode_segment(np, 15, 0x08).access == kAccessUnusable);
}

TEST_CASE("descriptors: a 64-bit TSS takes its upper base from the next entry") {
  constexpr SegmentState tr = decode_segment(kGdt, kLimit, 0x40);
  STATIC_REQUIRE(tr.base == 0xFFFFFFFF00001000ull);
  STATIC_REQUIRE(tr.limit == 0x67);
  STATIC_REQUIRE(tr.access == 0x89);  // system descriptor: no accessed bit forced
}

TEST_CASE("descriptors: TSS descriptor and interrupt gate encodings round-trip") {
  uint64_t gdt[2] = {};
  make_tss_descriptor(0x123456789ABCD000ull, sizeof(Tss64) - 1, gdt);
  const uint64_t both[] = {0, gdt[0], gdt[1]};
  const SegmentState s = decode_segment(both, 23, 0x08);
  CHECK(s.base == 0x123456789ABCD000ull);
  CHECK(s.limit == 103);
  CHECK(s.access == 0x89);
  constexpr IdtGate g = make_interrupt_gate(0xFFFFFFFF12345678ull, 0x38, 1);
  STATIC_REQUIRE((g.low & 0xFFFF) == 0x5678);
  STATIC_REQUIRE(((g.low >> 16) & 0xFFFF) == 0x38);
  STATIC_REQUIRE(((g.low >> 32) & 7) == 1);
  STATIC_REQUIRE(((g.low >> 40) & 0xFF) == 0x8E);
  STATIC_REQUIRE((g.low >> 48) == 0x1234);
  STATIC_REQUIRE(g.high == 0xFFFFFFFF);
  STATIC_REQUIRE(__builtin_offsetof(Tss64, ist) + 8 == 36);  // IST1 at offset 0x24
  STATIC_REQUIRE(__builtin_offsetof(Tss64, iomap_base) == 102);
}
