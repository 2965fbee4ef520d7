// The guest-physical memory layout microhv gives the (single, root-like)
// guest: an identity map of all physical memory through EPT (guest-physical
// address x is host-physical address x), except microhv's own memory, which
// is not present at all. Overlay pages (the hypercall page) are mapped
// read+execute onto microhv-owned frames.
//
// Memory types: with EPT the guest's MTRRs are not used for its accesses
// (SDM Vol. 3C 29.3.7: the EPT memory type takes their place, combined with
// the guest's PAT), so EPT must say what is cacheable. microhv decides it
// from the UEFI memory map, not from the MTRRs: every region the firmware
// reports as RAM (any RAM type) is write-back, everything else -- MMIO,
// reserved ranges, holes -- is uncached. A firmware whose MTRRs make part of
// its RAM uncacheable, or some MMIO write-combining, is not followed (see
// README.md, "Limits").
// Portable: builds through PageTables; tests use fake memory.
#pragma once

#include <stdint.h>

#include "vmx/page_tables.hpp"

namespace microhv::vmx {

// A range of the firmware's memory map (host-physical).
struct MemRegion {
  Hpa base;
  uint64_t size;
  bool ram;  // write-back system RAM (any firmware RAM type); else MMIO/reserved
  uint64_t end() const { return base.value() + size; }
};

// EPT is an identity map: the same number in both address spaces.
constexpr Hpa identity_hpa(Gpa gpa) {
  return Hpa(gpa.value());
}

// Sorts `regions` by base and merges adjacent/overlapping ones of the same
// kind (RAM wins where RAM and non-RAM overlap). Returns the new count.
uint32_t normalize_regions(MemRegion* regions, uint32_t count);

struct EptLayout {
  const MemRegion* regions;  // normalized
  uint32_t region_count;
  uint64_t limit;   // identity-map [0, limit): at least 4 GiB, at most 2^MAXPHYADDR
  Hpa hidden_base;  // microhv's memory: not present in EPT
  uint64_t hidden_size;
  bool hides(Hpa hpa) const {
    return hpa.value() >= hidden_base.value() && hpa.value() - hidden_base.value() < hidden_size;
  }
};

// Builds the identity map into `pt` (already init()ed, EPT format).
bool build_guest_ept(PageTables& pt, const EptLayout& layout);

// Address-space limit to identity-map: the top of the highest region rounded
// up to 1 GiB, at least 4 GiB (MMIO below 4G), capped by the physical
// address width.
uint64_t identity_limit(const MemRegion* regions, uint32_t count, unsigned phys_addr_bits);

// Guest RAM check for GuestMemory: [gpa, gpa+len) inside RAM regions and not
// touching the hidden range. len 0 is false.
bool range_is_guest_ram(const EptLayout& layout, Gpa gpa, uint64_t len);

}  // namespace microhv::vmx
