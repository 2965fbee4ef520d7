// The in-memory structures every remapping unit walks (VT-d chapter 9):
//
//   root table (256 entries, one per bus) -> context table (256 entries, one
//   per device:function) -> second-level tables (an identity map of host
//   memory up to a limit, except the protected ranges, which are not
//   present: a device access there faults with reason 5 or 6).
//
// All 256 root entries point at ONE context table, whose 256 entries all
// name the same domain (id kDomainId) and the same second-level tables. That
// is legal: the root-table walk only reads the context-table pointer of the
// request's bus (9.1), nothing asks for one table per bus, and 9.3 (Domain
// Identifier) only requires that context entries with the same domain id
// reference the same second-level tables and vice versa -- which they do. So
// isolating every device on every bus costs 2 pages plus the second-level
// tables. Domain id 0 is avoided: with CAP.CM = 1 hardware reserves it (9.3).
//
// A unit that walks 3 levels while the tables have 4 (a platform mixing
// 39-bit-only and 48-bit-only units) walks the PDPT under PML4 entry 0,
// which maps the same first 512 GiB; it gets its own root and context table
// because its context entries carry another table pointer and AW.
// Portable: builds through vmx::PageTables on caller-supplied memory.
#pragma once

#include <stdint.h>

#include "kernel/base/optional.hpp"
#include "kernel/base/types.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/vtd/dmar.hpp"

namespace microhv::vtd {

inline constexpr uint16_t kDomainId = 1;

struct ProtectedRange {
  Hpa base;
  uint64_t size;  // bytes; rounded out to whole pages
};

struct DmaTableSpec {
  uint64_t identity_limit;  // map [0, limit) one to one
  const ProtectedRange* protect;
  uint32_t protect_count;
  const ReservedRegion* regions;  // RMRRs: identity-mapped even above the limit
  uint32_t region_count;
  unsigned levels;          // 3 or 4: the depth of the second-level tables
  unsigned max_leaf_level;  // largest page every unit supports (1, 2 or 3)
  bool need_3level_root;    // some unit walks 3 levels
  bool need_4level_root;    // some unit walks 4 levels (needs levels == 4)
};

struct DmaTables {
  Optional<Hpa> second_level;  // PML4 (4 levels) or PDPT (3 levels)
  Optional<Hpa> root_3level;   // RTADDR for units that walk 3 levels
  Optional<Hpa> root_4level;   // ... and 4 levels
  uint64_t pages = 0;          // pages used: root and context tables included
  uint64_t blocked_rmrr = 0;   // RMRR pages left unmapped because they are protected
};

// Builds the tables. Returns false (with a message in `error`) when out of
// pages or when the spec is inconsistent; what was allocated is not freed.
bool build_dma_tables(const DmaTableSpec& spec, vmx::PageAllocator& alloc, vmx::PhysAccess& phys,
                      DmaTables* out, char* error, size_t error_cap);

// The root table to program into RTADDR for a unit walking `levels`
// (nothing when the tables were built without one for that depth).
inline Optional<Hpa> root_for_levels(const DmaTables& t, unsigned levels) {
  return levels == 3 ? t.root_3level : t.root_4level;
}

// Calls `visit(ctx, page)` once for every page of the tables (root, context
// and second-level), e.g. to write them back from the CPU caches for units
// whose walks do not snoop (ECAP.C = 0).
using PageVisitor = void (*)(void* ctx, Hpa page);
void visit_table_pages(const DmaTables& tables, unsigned levels, vmx::PhysAccess& phys,
                       PageVisitor visit, void* ctx);

// Pages build_dma_tables needs at most for this spec, so the caller can size
// its pool before allocating (each protected range and each RMRR may split
// one large page per level at each of its ends).
uint64_t table_pages_needed(const DmaTableSpec& spec);

}  // namespace microhv::vtd
