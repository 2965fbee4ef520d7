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

// A host-physical range the guest must not reach (rounded out to pages).
struct HiddenRange {
  Hpa base;
  uint64_t size;
  bool contains(Hpa hpa) const {
    return hpa.value() >= base.value() && hpa.value() - base.value() < size;
  }
};

struct EptLayout {
  const MemRegion* regions;  // normalized
  uint32_t region_count;
  uint64_t limit;   // identity-map [0, limit): at least 4 GiB, at most 2^MAXPHYADDR
  Hpa hidden_base;  // microhv's memory: not present in EPT
  uint64_t hidden_size;
  // More ranges not present in EPT: the DMA remapping units' register
  // windows (vmx/vtd/resident.hpp), so that the guest cannot turn DMA
  // protection off. Set with hide_more() before build_guest_ept.
  const HiddenRange* more_hidden = nullptr;
  uint32_t more_hidden_count = 0;

  void hide_more(const HiddenRange* ranges, uint32_t count) {
    more_hidden = ranges;
    more_hidden_count = count;
  }
  bool hides_more(Hpa hpa) const {
    for (uint32_t i = 0; i < more_hidden_count; ++i) {
      if (more_hidden[i].contains(hpa)) return true;
    }
    return false;
  }
  bool hides(Hpa hpa) const {
    return HiddenRange{hidden_base, hidden_size}.contains(hpa) || hides_more(hpa);
  }
};

// Builds the identity map into `pt` (already init()ed, EPT format).
bool build_guest_ept(PageTables& pt, const EptLayout& layout);

// Address-space limit to identity-map: the top of the highest region rounded
// up to 1 GiB, at least 4 GiB (MMIO below 4G), capped by the physical
// address width.
uint64_t identity_limit(const MemRegion* regions, uint32_t count, unsigned phys_addr_bits);

// Guest RAM check for GuestMemory: [gpa, gpa+len) inside RAM regions and not
// touching a hidden range. len 0 is false.
bool range_is_guest_ram(const EptLayout& layout, Gpa gpa, uint64_t len);

}  // namespace microhv::vmx
