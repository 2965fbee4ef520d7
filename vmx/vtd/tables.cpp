#include "vmx/vtd/tables.hpp"

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {
namespace {

using namespace arch;
using namespace arch::vtd;

constexpr vmx::MapAttr kDeviceRw{vmx::kPermR | vmx::kPermW, MemType::kWb};

// Counts what the builder takes from the caller's allocator.
class CountingAllocator final : public vmx::PageAllocator {
 public:
  explicit CountingAllocator(vmx::PageAllocator& inner) : inner_(inner) {}
  Optional<Hpa> alloc_page() override {
    const Optional<Hpa> p = inner_.alloc_page();
    if (p) ++pages;
    return p;
  }
  uint64_t pages = 0;

 private:
  vmx::PageAllocator& inner_;
};

uint64_t page_floor(uint64_t a) {
  return a & ~(kPageSize4K - 1);
}
// Rounds up, saturating at the top of the address space.
uint64_t page_ceil(uint64_t a) {
  return a > ~0ull - (kPageSize4K - 1) ? ~(kPageSize4K - 1) : page_floor(a + kPageSize4K - 1);
}
// End (exclusive, page-aligned) of an RMRR, whose limit is its last byte.
uint64_t region_end(const ReservedRegion& r) {
  return r.limit >= ~0ull - kPageSize4K ? ~(kPageSize4K - 1) : page_ceil(r.limit + 1);
}
uint64_t div_ceil(uint64_t a, uint64_t b) {
  return a / b + (a % b != 0 ? 1 : 0);
}

// One context table naming the domain, and the root table whose 256 entries
// all point at it (see tables.hpp for why one context table is enough).
Optional<Hpa> build_root(vmx::PageAllocator& alloc, vmx::PhysAccess& phys, Hpa second_level,
                         unsigned levels) {
  const Optional<Hpa> context = alloc.alloc_page();
  if (!context) return {};
  const Optional<Hpa> root = alloc.alloc_page();
  if (!root) return {};
  uint64_t* ctx = phys.table(context.value());
  for (unsigned i = 0; i < kContextEntries; ++i) {
    // FPD = 0 (faults are recorded), TT = 00 (second-level translation).
    ctx[2 * i] = (second_level.value() & kTableAddrMask) | kContextPresent;
    ctx[2 * i + 1] = context_aw_for_levels(levels) | static_cast<uint64_t>(kDomainId)
                                                         << kContextDidShift;
  }
  uint64_t* rt = phys.table(root.value());
  for (unsigned i = 0; i < kRootEntries; ++i) {
    rt[2 * i] = (context.value().value() & kTableAddrMask) | kRootPresent;
    rt[2 * i + 1] = 0;
  }
  return root;
}

void visit_second_level(Hpa table, unsigned level, vmx::PhysAccess& phys, PageVisitor visit,
                        void* ctx) {
  visit(ctx, table);
  if (level == 1) return;
  const uint64_t* e = phys.table(table);
  for (unsigned i = 0; i < kEntriesPerTable; ++i) {
    const bool present = (e[i] & (sl::kRead | sl::kWrite)) != 0;
    if (present && (e[i] & sl::kLarge) == 0) {
      visit_second_level(Hpa(e[i] & kTableAddrMask), level - 1, phys, visit, ctx);
    }
  }
}

}  // namespace

bool build_dma_tables(const DmaTableSpec& spec, vmx::PageAllocator& alloc, vmx::PhysAccess& phys,
                      DmaTables* out, char* error, size_t error_cap) {
  *out = DmaTables{};
  if (spec.levels != 3 && spec.levels != 4) {
    format(error, error_cap, "second-level tables need 3 or 4 levels, not %u", spec.levels);
    return false;
  }
  if (spec.need_4level_root && spec.levels != 4) {
    format(error, error_cap, "a unit walks 4 levels but the tables have 3");
    return false;
  }
  const uint64_t width = level_page_size(spec.levels + 1);
  const uint64_t limit = spec.identity_limit < width ? page_floor(spec.identity_limit) : width;
  if (limit == 0) {
    format(error, error_cap, "nothing to map: the identity limit is 0");
    return false;
  }
  CountingAllocator counted(alloc);
  vmx::PageTables pt(vmx::TableFormat::kVtdSecondLevel, counted, phys, spec.max_leaf_level,
                     spec.levels);
  auto out_of_pages = [&]() {
    format(error, error_cap, "out of pages for the DMA tables after %llu pages",
           static_cast<unsigned long long>(counted.pages));
    return false;
  };
  if (!pt.init() || !pt.map(0, Hpa(0), limit, kDeviceRw)) return out_of_pages();
  // RMRRs above the limit (e.g. in 64-bit MMIO) must be reachable too.
  uint64_t mapped_end = limit;
  for (uint32_t i = 0; i < spec.region_count; ++i) {
    const uint64_t base = page_floor(spec.regions[i].base);
    const uint64_t end = region_end(spec.regions[i]) < width ? region_end(spec.regions[i]) : width;
    if (end <= limit || base >= end) continue;
    const uint64_t from = base > limit ? base : limit;
    if (!pt.map(from, Hpa(from), end - from, kDeviceRw)) return out_of_pages();
    if (end > mapped_end) mapped_end = end;
  }
  // Protected ranges last, so they win over everything mapped above.
  for (uint32_t i = 0; i < spec.protect_count; ++i) {
    const ProtectedRange& r = spec.protect[i];
    if (r.size == 0) continue;
    const uint64_t base = page_floor(r.base.value());
    const uint64_t last =
        r.base.value() + (r.size - 1) < r.base.value() ? ~0ull : r.base.value() + (r.size - 1);
    if (base >= mapped_end) continue;  // nothing mapped there: out of every device's reach
    const uint64_t end = last >= mapped_end ? mapped_end : page_ceil(last + 1);
    if (!pt.unmap(base, end - base)) return out_of_pages();
    for (uint32_t j = 0; j < spec.region_count; ++j) {
      const uint64_t rb = page_floor(spec.regions[j].base), re = region_end(spec.regions[j]);
      const uint64_t lo = rb > base ? rb : base;
      const uint64_t hi = re < end ? re : end;
      if (hi > lo) out->blocked_rmrr += (hi - lo) / kPageSize4K;
    }
  }
  out->second_level = pt.root();
  if (spec.need_4level_root) {
    out->root_4level = build_root(counted, phys, pt.root(), 4);
    if (!out->root_4level) return out_of_pages();
  }
  if (spec.need_3level_root) {
    // With 4 levels, a 3-level walker starts at the PDPT of PML4 entry 0.
    Hpa pdpt = pt.root();
    if (spec.levels == 4) pdpt = Hpa(phys.table(pt.root())[0] & kTableAddrMask);
    out->root_3level = build_root(counted, phys, pdpt, 3);
    if (!out->root_3level) return out_of_pages();
  }
  out->pages = counted.pages;
  return true;
}

void visit_table_pages(const DmaTables& tables, unsigned levels, vmx::PhysAccess& phys,
                       PageVisitor visit, void* ctx) {
  const Optional<Hpa> roots[] = {tables.root_3level, tables.root_4level};
  for (const Optional<Hpa>& root : roots) {
    if (!root) continue;
    visit(ctx, root.value());
    visit(ctx, Hpa(phys.table(root.value())[0] & kTableAddrMask));  // the one context table
  }
  if (tables.second_level) {
    visit_second_level(tables.second_level.value(), levels, phys, visit, ctx);
  }
}

uint64_t table_pages_needed(const DmaTableSpec& spec) {
  const unsigned levels = spec.levels == 3 ? 3 : 4;
  const unsigned leaf =
      spec.max_leaf_level < 1 ? 1 : (spec.max_leaf_level > 3 ? 3 : spec.max_leaf_level);
  const uint64_t width = level_page_size(levels + 1);
  const uint64_t limit = spec.identity_limit < width ? spec.identity_limit : width;
  uint64_t pages = 1;  // the root of the second-level tables
  // Tables at level t (below the root) exist for each level-(t+1) entry
  // that is not a leaf: one per level_page_size(t + 1) of mapped space.
  for (unsigned t = leaf; t < levels; ++t) pages += div_ceil(limit, level_page_size(t + 1));
  // Each end of a protected range splits at most one large page per level.
  pages += static_cast<uint64_t>(spec.protect_count) * 2 * (levels - 1);
  for (uint32_t i = 0; i < spec.region_count; ++i) {
    const uint64_t size = spec.regions[i].limit - spec.regions[i].base + 1;
    for (unsigned t = 1; t < levels; ++t) pages += div_ceil(size, level_page_size(t + 1)) + 2;
  }
  return pages + 4;  // two root tables and two context tables at most
}

}  // namespace microhv::vtd
