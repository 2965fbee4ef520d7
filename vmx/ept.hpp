// The guest-physical address space microhv gives the (single, root-like)
// guest: an identity map (guest-physical address x is host-physical address
// x) of every address the guest's physical address width allows -- RAM and
// MMIO alike, so 64-bit BARs above 4 GiB work -- except the hidden ranges
// (microhv's own memory; later the VT-d register pages), which are not
// present at all.
//
// Memory types: with EPT the guest's accesses take their type from the EPT
// leaf (combined with the guest's PAT) instead of the MTRRs (SDM Vol. 3C
// 29.3.7.2), so EPT carries the types the firmware put in the MTRRs
// (vmx/mtrr_types.hpp): RAM gets its MTRR type; everything else (MMIO, holes) is
// UC, or WC where the MTRRs make it write-combining. No leaf spans two
// attributes, so no large page spans two MTRR types (SDM Vol. 3A 12.11.9).
// Portable: builds through PageTables; tests use fake memory.
#pragma once

#include <stdint.h>

#include "vmx/mtrr_types.hpp"
#include "vmx/page_tables.hpp"

namespace microhv::vmx {

// A range of the firmware's memory map (host-physical).
struct MemRegion {
  Hpa base;
  uint64_t size;
  bool ram;  // system RAM (any firmware RAM type); else MMIO/reserved
  uint64_t end() const { return base.value() + size; }
};

// EPT is an identity map: the same number in both address spaces.
constexpr Hpa identity_hpa(Gpa gpa) {
  return Hpa(gpa.value());
}

// Sorts `regions` by base and merges adjacent/overlapping ones of the same
// kind (RAM wins where RAM and non-RAM overlap). Returns the new count.
uint32_t normalize_regions(MemRegion* regions, uint32_t count);

// The top of the highest region rounded up to 1 GiB, at least 4 GiB (MMIO
// below 4G), capped by the physical address width: what microhv's own page
// tables map, and the part of EPT that is always built at take-over.
uint64_t identity_limit(const MemRegion* regions, uint32_t count, unsigned phys_addr_bits);

// 4-level EPT translates 48-bit guest-physical addresses (SDM Vol. 3C
// 29.3.2). The guest is told (CPUID.80000008:EAX[7:0]) the processor's
// physical address width, but no more than that: every GPA it may use is
// then one EPT can map.
inline constexpr unsigned kEptAddressBits = 48;
constexpr unsigned guest_address_bits(unsigned native_bits) {
  return native_bits < 32 ? 32 : (native_bits > kEptAddressBits ? kEptAddressBits : native_bits);
}

// A host-physical range the guest must never reach (identity: also its GPAs).
struct HiddenRange {
  Hpa base;
  uint64_t size;
};
inline constexpr uint32_t kMaxHiddenRanges = 8;

// What a guest-physical address is, before any overlay.
enum class GpaKind : uint8_t {
  kRam,          // in a RAM region of the firmware's map
  kMmio,         // anything else below the guest's width: MMIO, reserved, holes
  kHidden,       // microhv's (a hidden range)
  kBeyondWidth,  // at or above 2^address_bits: does not exist for the guest
};

struct EptLayout {
  const MemRegion* regions = nullptr;  // normalized
  uint32_t region_count = 0;
  const MtrrSnapshot* mtrrs = nullptr;  // nullptr: no MTRRs read (RAM WB, the rest UC)
  unsigned address_bits = 36;           // the guest's physical address width
  uint64_t low_limit = 4ull << 30;      // identity_limit(): always mapped at take-over
  HiddenRange hidden[kMaxHiddenRanges] = {};
  uint32_t hidden_count = 0;

  uint64_t top() const { return 1ull << address_bits; }
  // Adds a hidden range; false when the list is full or the range is empty
  // or wraps.
  bool hide(Hpa base, uint64_t size);
  bool hides(Hpa hpa) const;
  // Any page of [gpa, gpa + len) hidden.
  bool hides_any(Gpa gpa, uint64_t len) const;
  GpaKind kind(Gpa gpa) const;
  // The identity mapping of the page at `page`: not present when hidden or
  // beyond the width; RAM read/write/execute with its MTRR type; anything
  // else read/write/execute, UC (WC where the MTRRs say WC).
  MapAttr identity_attr(Gpa page) const;
  // The end of the run of pages from `start` that all have
  // identity_attr(start), at most `limit` (> start).
  uint64_t identity_run_end(Gpa start, uint64_t limit) const;
};

// Identity-maps [from, to) (page-aligned, within the layout's width) run by
// run, so no leaf spans two attributes.
bool map_identity(PageTables& pt, const EptLayout& layout, uint64_t from, uint64_t to);

// Guest RAM check for GuestMemory: [gpa, gpa+len) inside RAM regions and not
// touching a hidden range. len 0 is false.
bool range_is_guest_ram(const EptLayout& layout, Gpa gpa, uint64_t len);

// microhv's own page tables (host format): the identity map of [0, limit)
// with the largest pages that never span two MTRR types (SDM Vol. 3A
// 12.11.9; the memory type itself comes from the MTRRs: PAT entry 0, WB).
bool map_host_identity(PageTables& pt, const MtrrSnapshot& mtrrs, uint64_t limit);

}  // namespace microhv::vmx
