#include "vmx/page_tables.hpp"

namespace microhv::vmx {

using namespace arch;

// is_leaf() tests bit 7 whatever the format.
static_assert(pte::kLarge == ept::kLarge && ept::kLarge == vtd::sl::kLarge);

PageTables::PageTables(TableFormat format, PageAllocator& alloc, PhysAccess& phys,
                       unsigned max_leaf_level, unsigned levels)
    : format_(format),
      alloc_(alloc),
      phys_(phys),
      max_leaf_level_(max_leaf_level < 1 ? 1 : (max_leaf_level > 3 ? 3 : max_leaf_level)),
      levels_(levels == 3 && format == TableFormat::kVtdSecondLevel ? 3 : 4) {}

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

// Returns the entry for `va` at `target_level`, creating tables and
// splitting large pages above it. nullptr when out of pages.
uint64_t* PageTables::descend(uint64_t in, unsigned target_level) {
  uint64_t* table = phys_.table(root_.value());
  for (unsigned level = levels_; level > target_level; --level) {
    uint64_t& e = table[table_index(in, level)];
    if (!is_present(e) || is_leaf(e, level)) {
      const Optional<Hpa> next = alloc_.alloc_page();
      if (!next) return nullptr;
      ++tables_;
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

bool PageTables::map(uint64_t in, Hpa out, uint64_t size, MapAttr attr) {
  if (!root_ || ((in | out.value() | size) & (kPageSize4K - 1)) != 0) return false;
  const uint64_t width = level_page_size(levels_ + 1);  // 2^39 or 2^48
  if (in >= width || size > width - in) return false;
  uint64_t done = 0;
  while (done < size) {
    const uint64_t v = in + done, p = out.value() + done, left = size - done;
    unsigned level = max_leaf_level_;
    while (level > 1) {
      const uint64_t ps = level_page_size(level);
      if (((v | p) & (ps - 1)) == 0 && left >= ps) break;
      --level;
    }
    uint64_t* e = descend(v, level);
    if (e == nullptr) return false;
    // A table that a large leaf replaces is left allocated (never freed).
    *e = encode_leaf(p, attr, level);
    done += level_page_size(level);
  }
  return true;
}

bool PageTables::translate(uint64_t in, Translation* result) {
  if (!root_) return false;
  if (in >= level_page_size(levels_ + 1)) return false;
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

}  // namespace microhv::vmx
