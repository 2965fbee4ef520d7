#include "vmx/ept.hpp"

namespace microhv::vmx {

uint32_t normalize_regions(MemRegion* r, uint32_t count) {
  // Insertion sort: region lists are short (firmware memory maps).
  for (uint32_t i = 1; i < count; ++i) {
    const MemRegion x = r[i];
    uint32_t j = i;
    while (j > 0 &&
           (x.base < r[j - 1].base || (r[j - 1].base == x.base && r[j - 1].ram && !x.ram))) {
      r[j] = r[j - 1];
      --j;
    }
    r[j] = x;
  }
  uint32_t out = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (r[i].size == 0) continue;
    if (out > 0) {
      MemRegion& last = r[out - 1];
      const uint64_t last_end = last.end();
      const uint64_t base = r[i].base.value();
      if (base <= last_end && r[i].ram == last.ram) {
        if (r[i].end() > last_end) last.size = r[i].end() - last.base.value();
        continue;
      }
      if (base < last_end) {
        // Overlap of different kinds: RAM keeps the overlap.
        const uint64_t end = r[i].end();
        if (last.ram) {
          if (end <= last_end) continue;
          r[i].size = end - last_end;
          r[i].base = Hpa(last_end);
        } else {
          last.size = base - last.base.value();
          if (last.size == 0) --out;
        }
      }
    }
    r[out++] = r[i];
  }
  return out;
}

uint64_t identity_limit(const MemRegion* regions, uint32_t count, unsigned phys_addr_bits) {
  uint64_t top = 4ull << 30;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t end = regions[i].end();
    if (end > top) top = end;
  }
  top = (top + arch::kPageSize1G - 1) & ~(arch::kPageSize1G - 1);
  if (phys_addr_bits >= 12 && phys_addr_bits < 64) {
    const uint64_t max = 1ull << phys_addr_bits;
    if (top > max) top = max;
  }
  return top;
}

bool build_guest_ept(PageTables& pt, const EptLayout& layout) {
  constexpr MapAttr kMmio{kPermRwx, arch::MemType::kUc};
  constexpr MapAttr kRam{kPermRwx, arch::MemType::kWb};
  if (!pt.map(Gpa(0), Hpa(0), layout.limit, kMmio)) return false;
  for (uint32_t i = 0; i < layout.region_count; ++i) {
    const MemRegion& r = layout.regions[i];
    if (!r.ram || r.base.value() >= layout.limit) continue;
    const uint64_t base = r.base.value() & ~(arch::kPageSize4K - 1);
    uint64_t end = (r.end() + arch::kPageSize4K - 1) & ~(arch::kPageSize4K - 1);
    if (end > layout.limit) end = layout.limit;
    if (!pt.map(Gpa(base), Hpa(base), end - base, kRam)) return false;
  }
  if (layout.hidden_size != 0 && !pt.unmap(Gpa(layout.hidden_base.value()), layout.hidden_size)) {
    return false;
  }
  for (uint32_t i = 0; i < layout.more_hidden_count; ++i) {
    const HiddenRange& h = layout.more_hidden[i];
    const uint64_t base = h.base.value() & ~(arch::kPageSize4K - 1);
    const uint64_t end = h.base.value() + h.size;
    if (h.size == 0 || base >= layout.limit) continue;
    const uint64_t top = end < layout.limit ? end : layout.limit;
    if (!pt.unmap(Gpa(base), ((top - base) + arch::kPageSize4K - 1) & ~(arch::kPageSize4K - 1))) {
      return false;
    }
  }
  return true;
}

bool range_is_guest_ram(const EptLayout& layout, Gpa gpa, uint64_t len) {
  const uint64_t start = gpa.value();
  if (len == 0 || start + len < start) return false;
  const uint64_t end = start + len;
  const auto touches = [&](Hpa base, uint64_t size) {
    return size != 0 && start < base.value() + size && end > base.value();
  };
  if (touches(layout.hidden_base, layout.hidden_size)) return false;
  for (uint32_t i = 0; i < layout.more_hidden_count; ++i) {
    if (touches(layout.more_hidden[i].base, layout.more_hidden[i].size)) return false;
  }
  for (uint32_t i = 0; i < layout.region_count; ++i) {
    const MemRegion& r = layout.regions[i];
    if (r.ram && start >= r.base.value() && end <= r.end()) return true;
  }
  return false;
}

}  // namespace microhv::vmx
