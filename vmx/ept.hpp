// The guest-physical memory layout microhv gives the (single, root-like)
// guest: an identity map of all physical memory through EPT, write-back for
// RAM and uncached for everything else (with EPT the guest's MTRRs are
// ignored, so the EPT memory type must carry what the MTRRs said), except
// microhv's own memory, which is not present at all. Overlay pages (the
// hypercall page) are mapped read+execute onto microhv-owned frames.
// Portable: builds through PageTables; tests use fake memory.
#pragma once

#include <stdint.h>

#include "vmx/page_tables.hpp"

namespace microhv::vmx {

struct MemRegion {
  uint64_t base;
  uint64_t size;
  bool ram;  // write-back system RAM (any firmware RAM type); else MMIO/reserved
};

// Sorts `regions` by base and merges adjacent/overlapping ones of the same
// kind (RAM wins where RAM and non-RAM overlap). Returns the new count.
uint32_t normalize_regions(MemRegion* regions, uint32_t count);

struct EptLayout {
  const MemRegion* regions;  // normalized
  uint32_t region_count;
  uint64_t limit;        // identity-map [0, limit): at least 4 GiB, at most 2^MAXPHYADDR
  uint64_t hidden_base;  // microhv's memory: not present in EPT
  uint64_t hidden_size;
};

// Builds the identity map into `pt` (already init()ed, EPT format).
bool build_guest_ept(PageTables& pt, const EptLayout& layout);

// Address-space limit to identity-map: the top of the highest region rounded
// up to 1 GiB, at least 4 GiB (MMIO below 4G), capped by the physical
// address width.
uint64_t identity_limit(const MemRegion* regions, uint32_t count, unsigned phys_addr_bits);

// Guest RAM check for GuestMemory: [gpa, gpa+len) inside RAM regions and not
// touching the hidden range. len 0 is false.
bool range_is_guest_ram(const EptLayout& layout, uint64_t gpa, uint64_t len);

}  // namespace microhv::vmx
