#include "vmx/page_tables.hpp"

namespace microhv::vmx {

using namespace arch;

// is_leaf() tests bit 7 whatever the format.
static_assert(pte::kLarge == ept::kLarge && ept::kLarge == vtd::sl::kLarge);

namespace {

unsigned reach_bits(unsigned levels) {
  return 12 + 9 * levels;
}

}  // namespace

PageTables::PageTables(TableFormat format, PageAllocator& alloc, PhysAccess& phys,
                       unsigned max_leaf_level, unsigned levels, unsigned address_bits)
    : format_(format),
      alloc_(alloc),
      phys_(phys),
      max_leaf_level_(max_leaf_level < 1 ? 1 : (max_leaf_level > 3 ? 3 : max_leaf_level)),
      levels_(levels == 3 && format == TableFormat::kVtdSecondLevel ? 3 : 4),
      address_bits_(address_bits == 0 || address_bits > reach_bits(levels_)
                        ? reach_bits(levels_)
                        : (address_bits < 12 ? 12 : address_bits)) {}

bool PageTables::init() {
  root_ = alloc_.alloc_page();
  if (!root_) return false;
  ++tables_;
  return true;
}

uint64_t PageTables::encode_leaf(uint64_t pa, MapAttr attr, unsigned level) const {
  if (attr.perms == 0) return 0;
  if (format_ == TableFormat::kVtdSecondLevel) {
    const uint64_t rw = ((attr.perms & kPermR) != 0 ? vtd::sl::kRead : 0) |
                        ((attr.perms & kPermW) != 0 ? vtd::sl::kWrite : 0);
    if (rw == 0) return 0;
    return (pa & kPteAddrMask) | rw | (level > 1 ? vtd::sl::kLarge : 0);
  }
  const uint64_t large = level > 1 ? (format_ == TableFormat::kEpt ? ept::kLarge : pte::kLarge) : 0;
  if (format_ == TableFormat::kEpt) {
    return (pa & kPteAddrMask) | (attr.perms & ept::kRwx) |
           (static_cast<uint64_t>(attr.memtype) << ept::kMemTypeShift) | large;
  }
  // Host paging: present, writable unless read-only, executable (no NX);
  // memory type from the MTRRs (PAT entry 0, WB), so MMIO stays UC.
  return (pa & kPteAddrMask) | pte::kPresent | ((attr.perms & kPermW) != 0 ? pte::kWritable : 0) |
         large;
}

uint64_t PageTables::encode_table(Hpa table) const {
  if (format_ == TableFormat::kEpt) return (table.value() & kPteAddrMask) | ept::kRwx;
  if (format_ == TableFormat::kVtdSecondLevel) {
    return (table.value() & kPteAddrMask) | vtd::sl::kRead | vtd::sl::kWrite;
  }
  return (table.value() & kPteAddrMask) | pte::kPresent | pte::kWritable;
}

bool PageTables::is_present(uint64_t e) const {
  switch (format_) {
    case TableFormat::kEpt:
      return (e & ept::kRwx) != 0;
    case TableFormat::kVtdSecondLevel:
      return (e & (vtd::sl::kRead | vtd::sl::kWrite)) != 0;
    case TableFormat::kHost:
      break;
  }
  return (e & pte::kPresent) != 0;
}

bool PageTables::is_leaf(uint64_t e, unsigned level) const {
  if (level == 1) return true;
  // ept::kLarge, pte::kLarge and vtd::sl::kLarge are all bit 7.
  return (e & pte::kLarge) != 0;
}

MapAttr PageTables::decode_attr(uint64_t e) const {
  if (format_ == TableFormat::kVtdSecondLevel) {
    // No memory type in a legacy-mode second-level entry: report WB, what
    // snooped DMA to RAM behaves like.
    return MapAttr{static_cast<uint8_t>(((e & vtd::sl::kRead) != 0 ? kPermR : 0) |
                                        ((e & vtd::sl::kWrite) != 0 ? kPermW : 0)),
                   MemType::kWb};
  }
  if (format_ == TableFormat::kEpt) {
    return MapAttr{static_cast<uint8_t>(e & ept::kRwx),
                   static_cast<MemType>((e & ept::kMemTypeMask) >> ept::kMemTypeShift)};
  }
  return MapAttr{static_cast<uint8_t>(kPermR | kPermX | ((e & pte::kWritable) != 0 ? kPermW : 0)),
                 MemType::kWb};
}

Optional<Hpa> PageTables::take_table(unsigned level) {
  Optional<Hpa> page = free_[level];
  if (page) {
    uint64_t* t = phys_.table(page.value());
    free_[level] = t[0] != 0 ? Optional<Hpa>(Hpa(t[0] & kPteAddrMask)) : kNone;
    t[0] = 0;  // the rest was cleared when it was freed
    --free_count_;
  } else {
    page = alloc_.alloc_page();
    if (!page) return kNone;
  }
  ++tables_;
  return page;
}

void PageTables::free_table(Hpa table, unsigned level) {
  uint64_t* t = phys_.table(table);
  for (unsigned i = 1; i < kEntriesPerTable; ++i) t[i] = 0;
  // The link is a page address: bits 2:0 clear, not present in any format.
  t[0] = free_[level] ? free_[level].value().value() : 0;
  free_[level] = table;
  --tables_;
  ++free_count_;
}

// `entry` is a present, non-leaf entry at `level`: frees the table it
// points to (at level - 1) and everything below it.
void PageTables::free_subtree(uint64_t entry, unsigned level) {
  const Hpa child(entry & kPteAddrMask);
  uint64_t* t = phys_.table(child);
  for (unsigned i = 0; i < kEntriesPerTable; ++i) {
    if (level - 1 >= 2 && is_present(t[i]) && !is_leaf(t[i], level - 1)) {
      free_subtree(t[i], level - 1);
    }
  }
  free_table(child, level - 1);
}

// Returns the entry for `in` at `target_level`, creating tables and
// splitting large pages above it. For a not-present mapping (`present`
// false) nothing is created where the range is absent already: then
// nullptr with *absent_level = the level of the absent entry. nullptr with
// *absent_level = 0: out of pages.
uint64_t* PageTables::descend(uint64_t in, unsigned target_level, bool present,
                              unsigned* absent_level) {
  *absent_level = 0;
  uint64_t* table = phys_.table(root_.value());
  for (unsigned level = levels_; level > target_level; --level) {
    uint64_t& e = table[table_index(in, level)];
    if (!is_present(e) && !present) {
      *absent_level = level;
      return nullptr;
    }
    if (!is_present(e) || is_leaf(e, level)) {
      const Optional<Hpa> next = take_table(level - 1);
      if (!next) return nullptr;
      uint64_t* sub = phys_.table(next.value());
      if (is_present(e)) {
        // Split: the new table maps exactly what the large page mapped.
        const uint64_t base = e & kPteAddrMask & ~(level_page_size(level) - 1);
        const MapAttr attr = decode_attr(e);
        const uint64_t step = level_page_size(level - 1);
        for (unsigned i = 0; i < kEntriesPerTable; ++i)
          sub[i] = encode_leaf(base + i * step, attr, level - 1);
      }
      e = encode_table(next.value());  // one store: the table is complete before it is visible
    }
    table = phys_.table(Hpa(e & kPteAddrMask));
  }
  return &table[table_index(in, target_level)];
}

// Folds the tables on the walk of `in` back into their parent entry where
// all 512 entries say the same: all not present, or one large page (same
// attributes, consecutive outputs, aligned, and a leaf size the tables may
// use). Bottom up, so a PT that folds can let its PD fold too.
void PageTables::collapse_path(uint64_t in) {
  // Host-format entries carry no memory type (the MTRRs give it), so two
  // pages that look alike may differ in type: folding them could make a
  // large page span two MTRR types (SDM Vol. 3A 12.11.9). Host tables are
  // built once and never change, so they lose nothing by not folding.
  if (format_ == TableFormat::kHost) return;
  uint64_t* entry_at[5] = {};
  uint64_t* table = phys_.table(root_.value());
  unsigned level = levels_;
  for (;; --level) {
    uint64_t& e = table[table_index(in, level)];
    entry_at[level] = &e;
    if (level == 1 || !is_present(e) || is_leaf(e, level)) break;
    table = phys_.table(Hpa(e & kPteAddrMask));
  }
  // `table` is at `level`; its parent entry is entry_at[level + 1].
  for (; level < levels_; ++level) {
    uint64_t* parent = entry_at[level + 1];
    const Hpa table_hpa(*parent & kPteAddrMask);
    const uint64_t* t = phys_.table(table_hpa);
    uint64_t folded = 0;
    if (!is_present(t[0])) {
      for (unsigned i = 1; i < kEntriesPerTable; ++i) {
        if (is_present(t[i])) return;
      }
    } else {
      if (level + 1 > max_leaf_level_ || !is_leaf(t[0], level)) return;
      const uint64_t step = level_page_size(level);
      const uint64_t base = t[0] & kPteAddrMask;
      if ((base & (level_page_size(level + 1) - 1)) != 0) return;
      const MapAttr attr = decode_attr(t[0]);
      for (unsigned i = 1; i < kEntriesPerTable; ++i) {
        if (t[i] != encode_leaf(base + i * step, attr, level)) return;
      }
      folded = encode_leaf(base, attr, level + 1);
    }
    *parent = folded;
    free_table(table_hpa, level);
  }
}

bool PageTables::map(uint64_t in, Hpa out, uint64_t size, MapAttr attr) {
  if (!root_ || ((in | out.value() | size) & (kPageSize4K - 1)) != 0) return false;
  const uint64_t width = 1ull << address_bits_;
  if (in >= width || size > width - in) return false;
  const bool present = encode_leaf(0, attr, 1) != 0;
  constexpr uint64_t kOutputWidth = kPteAddrMask + kPageSize4K;  // 2^52
  if (present && (out.value() >= kOutputWidth || size > kOutputWidth - out.value())) return false;
  uint64_t done = 0;
  while (done < size) {
    const uint64_t v = in + done, p = out.value() + done, left = size - done;
    // Not-present entries are legal at every level; leaves only up to max_leaf_level.
    unsigned level = present ? max_leaf_level_ : levels_;
    while (level > 1) {
      const uint64_t ps = level_page_size(level);
      if (((v | (present ? p : 0)) & (ps - 1)) == 0 && left >= ps) break;
      --level;
    }
    unsigned absent_level = 0;
    uint64_t* e = descend(v, level, present, &absent_level);
    if (e == nullptr && absent_level != 0) {
      // Already not present: skip to the end of the absent entry's range.
      const uint64_t ps = level_page_size(absent_level);
      const uint64_t skip = ps - (v & (ps - 1));
      done += skip < left ? skip : left;
      continue;
    }
    if (e == nullptr) {
      collapse_path(v);  // a split made on the way is folded back
      return false;
    }
    const uint64_t old = *e;
    *e = encode_leaf(p, attr, level);
    if (level > 1 && is_present(old) && !is_leaf(old, level)) free_subtree(old, level);
    done += level_page_size(level);
  }
  collapse_path(in);
  if (size > kPageSize4K) collapse_path(in + size - kPageSize4K);
  return true;
}

bool PageTables::translate(uint64_t in, Translation* result) {
  if (!root_ || (in >> address_bits_) != 0) return false;
  uint64_t* table = phys_.table(root_.value());
  for (unsigned level = levels_; level >= 1; --level) {
    const uint64_t e = table[table_index(in, level)];
    if (!is_present(e)) return false;
    if (level <= 3 && is_leaf(e, level)) {
      const uint64_t ps = level_page_size(level);
      result->out = Hpa((e & kPteAddrMask & ~(ps - 1)) | (in & (ps - 1)));
      result->attr = decode_attr(e);
      result->level = level;
      return true;
    }
    table = phys_.table(Hpa(e & kPteAddrMask));
  }
  return false;
}

unsigned PageTables::walk_entries(uint64_t in, uint64_t entries[4]) {
  if (!root_ || (in >> address_bits_) != 0) return 0;
  uint64_t* table = phys_.table(root_.value());
  unsigned n = 0;
  for (unsigned level = levels_; level >= 1; --level) {
    const uint64_t e = table[table_index(in, level)];
    entries[n++] = e;
    if (!is_present(e) || (level <= 3 && is_leaf(e, level))) break;
    table = phys_.table(Hpa(e & kPteAddrMask));
  }
  return n;
}

}  // namespace microhv::vmx
