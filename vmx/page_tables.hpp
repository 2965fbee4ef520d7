// One page-table builder for host paging, EPT and VT-d second-level tables
// (NOVA/Hedron style): the formats differ only in how an entry is encoded,
// and VT-d tables may have 3 levels instead of 4. Hardware sits
// behind two small interfaces so host tests plug in fake memory:
//  - PageAllocator hands out zeroed 4 KiB pages by host-physical address;
//  - PhysAccess turns a host-physical table address into a pointer (identity
//    on the target, an arena in tests).
// Every update keeps the structure valid at each step: a new table is filled
// completely before it is linked, and a large page is split by building the
// equivalent 512-entry table first and then swapping the one entry.
// Portable: no asm.
#pragma once

#include <stdint.h>

#include "arch/paging.hpp"
#include "arch/vtd.hpp"
#include "kernel/base/optional.hpp"
#include "kernel/base/types.hpp"

namespace microhv::vmx {

class PageAllocator {
 public:
  // A zeroed, 4 KiB-aligned page; nothing when exhausted.
  virtual Optional<Hpa> alloc_page() = 0;

 protected:
  ~PageAllocator() = default;
};

class PhysAccess {
 public:
  virtual uint64_t* table(Hpa page) = 0;

 protected:
  ~PhysAccess() = default;
};

// Leaf attributes, format-independent.
struct MapAttr {
  uint8_t perms;  // arch::ept::kRead/kWrite/kExecute bits; 0 = not present
  arch::MemType memtype;
  friend constexpr bool operator==(MapAttr a, MapAttr b) {
    return a.perms == b.perms && a.memtype == b.memtype;
  }
};
inline constexpr uint8_t kPermR = 1, kPermW = 2, kPermX = 4, kPermRwx = 7;
// Not `inline`: an ODR-used inline variable becomes a GLOB_DAT relocation, which
// GNU-EFI's loader-time relocator rejects. Internal linkage keeps it RELATIVE-only.
static constexpr MapAttr kNotPresent{0, arch::MemType::kUc};

// kVtdSecondLevel (VT-d 9.8): R and W only (X is for execute requests, which
// microhv does not enable), no memory type (legacy-mode walks ignore it), PS
// for large leaves; an entry with R = W = 0 is not present.
enum class TableFormat : uint8_t { kHost, kEpt, kVtdSecondLevel };

class PageTables {
 public:
  // `max_leaf_level`: 3 when 1 GiB pages are supported, else 2 (2 MiB), or
  // 1 (4 KiB only). `levels`: 4 (PML4 root, 48-bit) or 3 (PDPT root, 39-bit;
  // VT-d only: a 3-level second-level table, 9.8). `address_bits`: the input
  // addresses that exist (for EPT the guest's MAXPHYADDR); 0 or more than
  // the levels reach means what they reach (39 or 48 bits).
  PageTables(TableFormat format, PageAllocator& alloc, PhysAccess& phys, unsigned max_leaf_level,
             unsigned levels = 4, unsigned address_bits = 0);

  // Allocates the root (PML4, or PDPT with 3 levels). False when out of pages.
  bool init();
  // The root: PML4, or PDPT with 3 levels (valid once init() succeeded).
  Hpa root() const { return root_.value_or(Hpa(0)); }

  // The input address of a translation is guest-physical for EPT,
  // host-linear for host paging and the DMA address for VT-d; the output is
  // always host-physical. The
  // Gpa overloads are the EPT's.
  //
  // Maps [in, in+size) to [out, out+size) with the largest pages that fit,
  // splitting existing large pages where a range starts or ends inside one.
  // 4 KiB granularity; false on misalignment, an input beyond
  // address_bits() or an output beyond bit 51 (nothing is changed then: an
  // address is never truncated into another one), or when out of pages (the
  // tables stay valid and every page keeps either its old or its new
  // mapping). Tables the range no longer needs -- under a new large leaf or
  // a not-present entry, or (EPT and VT-d formats, whose entries say all
  // that differs) a table whose 512 entries became one large page again --
  // go back to the free lists, one per level: a freed table is
  // only ever reused at the level it had, so a processor that still walks it
  // through a stale paging-structure cache reads entries of the right kind
  // (the owner invalidates every CPU before that matters; see GuestEpt).
  bool map(uint64_t in, Hpa out, uint64_t size, MapAttr attr);
  bool map(Gpa in, Hpa out, uint64_t size, MapAttr attr) {
    return map(in.value(), out, size, attr);
  }
  // Not present, at the highest level that fits: unmapping never needs a
  // new table unless it punches a hole into a large page.
  bool unmap(uint64_t in, uint64_t size) { return map(in, Hpa(0), size, kNotPresent); }
  bool unmap(Gpa in, uint64_t size) { return unmap(in.value(), size); }

  // Walks the tables. False when `in` is not present or beyond address_bits().
  struct Translation {
    Hpa out;
    MapAttr attr;
    unsigned level;  // leaf level: 1 = 4K, 2 = 2M, 3 = 1G
  };
  bool translate(uint64_t in, Translation* result);
  bool translate(Gpa in, Translation* result) { return translate(in.value(), result); }
  // The raw entries a walk of `in` reads, root first (for error reports);
  // returns how many (the last is a leaf or not present).
  unsigned walk_entries(uint64_t in, uint64_t entries[4]);

  // Tables linked into the structure (the root included), and tables freed
  // and waiting on the free lists for reuse.
  uint64_t tables_allocated() const { return tables_; }
  uint64_t tables_free() const { return free_count_; }
  unsigned levels() const { return levels_; }
  unsigned address_bits() const { return address_bits_; }
  unsigned max_leaf_level() const { return max_leaf_level_; }

 private:
  uint64_t encode_leaf(uint64_t pa, MapAttr attr, unsigned level) const;
  uint64_t encode_table(Hpa table) const;
  bool is_present(uint64_t e) const;
  bool is_leaf(uint64_t e, unsigned level) const;
  MapAttr decode_attr(uint64_t e) const;
  Optional<Hpa> take_table(unsigned level);
  void free_table(Hpa table, unsigned level);
  void free_subtree(uint64_t entry, unsigned level);
  uint64_t* descend(uint64_t in, unsigned target_level, bool present, unsigned* absent_level);
  void collapse_path(uint64_t in);

  TableFormat format_;
  PageAllocator& alloc_;
  PhysAccess& phys_;
  unsigned max_leaf_level_;
  unsigned levels_;
  unsigned address_bits_;
  Optional<Hpa> root_;
  uint64_t tables_ = 0;
  uint64_t free_count_ = 0;
  // Free lists of tables at level 1 (PT), 2 (PD), 3 (PDPT), linked through
  // their entry 0 (a page address: never a present entry in any format).
  Optional<Hpa> free_[4];
};

}  // namespace microhv::vmx
