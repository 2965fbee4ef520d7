// Reading the guest's instruction bytes (portable, unit-tested in
// tests/unit/vmx_apic_emulation.cpp): a walk of the guest's own page tables
// for a linear address, in whatever paging mode the guest is in (none,
// 32-bit, PAE, 4-level IA-32e), and a fetch that goes page by page. Used to
// decode the instruction that wrote to the local APIC page (EPT violation
// exits do not report the instruction). Accessed/dirty bits are not set:
// this is a read-only look, like the CPU's own instruction fetch would be
// after the fact.
#pragma once

#include <stdint.h>

#include "kernel/platform/guest_memory.hpp"

namespace microhv::vmx {

struct GuestPaging {
  uint64_t cr0, cr3, cr4, efer;
};

// Guest-linear -> guest-physical. False when a level is not present or a
// table is not guest RAM.
bool guest_linear_to_physical(GuestMemory& memory, const GuestPaging& p, uint64_t linear, Gpa* gpa);

// Reads up to `len` bytes at `linear`; returns how many could be read (the
// fetch stops at the first untranslatable page).
uint32_t fetch_guest_bytes(GuestMemory& memory, const GuestPaging& p, uint64_t linear, uint8_t* out,
                           uint32_t len);

}  // namespace microhv::vmx
