// Segment descriptors, the 64-bit TSS and IDT gates (SDM Vol. 3A 3.4.5, 7.7,
// 6.14.1), and the conversion of a descriptor into the VMCS access-rights
// format (SDM Vol. 3C 25.4.1, Table 25-2). Portable: pure bit manipulation.
#pragma once

#include <stdint.h>

#include "arch/x86.hpp"

namespace microhv::arch {

struct __attribute__((packed)) DescriptorTableRegister {
  uint16_t limit;
  uint64_t base;
};
static_assert(sizeof(DescriptorTableRegister) == 10);

struct __attribute__((packed)) Tss64 {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t ist[8];  // ist[0] is the reserved qword: IST indexes are 1..7
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
static_assert(sizeof(Tss64) == 104);

struct IdtGate {
  uint64_t low, high;
};
static_assert(sizeof(IdtGate) == 16);

// Present 64-bit interrupt gate, DPL 0.
constexpr IdtGate make_interrupt_gate(uint64_t handler, uint16_t cs, uint8_t ist) {
  return IdtGate{(handler & 0xFFFF) | (static_cast<uint64_t>(cs) << 16) |
                     (static_cast<uint64_t>(ist & 7) << 32) | (0x8Eull << 40) |
                     (((handler >> 16) & 0xFFFF) << 48),
                 handler >> 32};
}

// 16-byte available 64-bit TSS descriptor (type 9), as two GDT qwords.
constexpr void make_tss_descriptor(uint64_t base, uint32_t limit, uint64_t* out) {
  out[0] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
           ((static_cast<uint64_t>(limit) & 0xF0000) << 32) | (((base >> 24) & 0xFF) << 56);
  out[1] = base >> 32;
}

// A segment as the VMCS guest-state area wants it.
struct SegmentState {
  uint16_t selector;
  uint64_t base;
  uint32_t limit;
  uint32_t access;  // VMCS access-rights format; bit 16 = unusable
};

// Decodes the descriptor `selector` names in the GDT (`gdt` = the table,
// `limit` = GDTR.limit). A null selector, one beyond the limit, an LDT
// selector or a not-present descriptor yields an unusable segment. System
// descriptors (S = 0: TSS, LDT) take their upper base half from the next
// qword, as in 64-bit mode. For usable code/data segments the accessed bit
// is set, as the processor does when it loads them.
constexpr SegmentState decode_segment(const uint64_t* gdt, uint16_t gdt_limit, uint16_t selector) {
  SegmentState s{selector, 0, 0, access::kUnusable};
  const uint16_t index = selector >> 3;
  if ((selector & 0xFFFC) == 0 || (selector & 4) != 0 ||
      static_cast<uint32_t>(index) * 8 + 7 > gdt_limit)
    return s;
  const uint64_t d = gdt[index];
  uint32_t access = static_cast<uint32_t>(d >> 40) & 0xF0FF;
  if ((access & 0x80) == 0) return s;  // not present
  uint32_t limit = static_cast<uint32_t>(d & 0xFFFF) | static_cast<uint32_t>((d >> 32) & 0xF0000);
  if ((access & 0x8000) != 0) limit = (limit << 12) | 0xFFF;
  uint64_t base = ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24);
  if ((access & 0x10) == 0) {
    if (static_cast<uint32_t>(index + 1) * 8 + 7 <= gdt_limit)
      base |= (gdt[index + 1] & 0xFFFFFFFF) << 32;
  } else {
    access |= 1;  // accessed
  }
  s.base = base;
  s.limit = limit;
  s.access = access;
  return s;
}

}  // namespace microhv::arch
