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

bool EptLayout::hide(Hpa base, uint64_t size) {
  if (hidden_count >= kMaxHiddenRanges || size == 0 || base.value() + size < base.value()) {
    return false;
  }
  hidden[hidden_count++] = HiddenRange{base, size};
  return true;
}

bool EptLayout::hides(Hpa hpa) const {
  for (uint32_t i = 0; i < hidden_count; ++i) {
    if (hpa.value() >= hidden[i].base.value() &&
        hpa.value() - hidden[i].base.value() < hidden[i].size) {
      return true;
    }
  }
  return false;
}

bool EptLayout::hides_any(Gpa gpa, uint64_t len) const {
  if (len == 0) return false;
  const uint64_t start = gpa.value();
  const uint64_t last = start + (len - 1) < start ? ~0ull : start + (len - 1);
  for (uint32_t i = 0; i < hidden_count; ++i) {
    const uint64_t b = hidden[i].base.value();
    if (start <= b + (hidden[i].size - 1) && last >= b) return true;
  }
  return false;
}

namespace {

const MemRegion* region_of(const EptLayout& l, uint64_t pa) {
  for (uint32_t i = 0; i < l.region_count; ++i) {
    const MemRegion& r = l.regions[i];
    if (pa >= r.base.value() && pa < r.end()) return &r;
  }
  return nullptr;
}

// The first address after `pa` where a region or hidden range starts or
// ends, or `limit`.
uint64_t next_edge(const EptLayout& l, uint64_t pa, uint64_t limit) {
  uint64_t next = limit;
  auto consider = [&](uint64_t b) {
    if (b > pa && b < next) next = b;
  };
  for (uint32_t i = 0; i < l.region_count; ++i) {
    consider(l.regions[i].base.value());
    consider(l.regions[i].end());
  }
  for (uint32_t i = 0; i < l.hidden_count; ++i) {
    consider(l.hidden[i].base.value());
    consider(l.hidden[i].base.value() + l.hidden[i].size);
  }
  return next;
}

}  // namespace

GpaKind EptLayout::kind(Gpa gpa) const {
  if ((gpa.value() >> address_bits) != 0) return GpaKind::kBeyondWidth;
  if (hides(identity_hpa(gpa))) return GpaKind::kHidden;
  const MemRegion* r = region_of(*this, gpa.value());
  return r != nullptr && r->ram ? GpaKind::kRam : GpaKind::kMmio;
}

MapAttr EptLayout::identity_attr(Gpa page) const {
  const GpaKind k = kind(page);
  if (k == GpaKind::kHidden || k == GpaKind::kBeyondWidth) return kNotPresent;
  using arch::MemType;
  const bool ram = k == GpaKind::kRam;
  if (mtrrs == nullptr) return MapAttr{kPermRwx, ram ? MemType::kWb : MemType::kUc};
  const MemType t = mtrr_type(*mtrrs, page.value());
  if (ram) return MapAttr{kPermRwx, t};
  // Not RAM: never cached, but a write-combining range (a frame buffer)
  // stays write-combining.
  return MapAttr{kPermRwx, t == MemType::kWc ? MemType::kWc : MemType::kUc};
}

uint64_t EptLayout::identity_run_end(Gpa start, uint64_t limit) const {
  const MapAttr attr = identity_attr(start);
  auto next_change = [&](uint64_t pa) {
    uint64_t end = next_edge(*this, pa, limit);
    if (mtrrs != nullptr) {
      const uint64_t mtrr_end = mtrr_run_end(*mtrrs, pa, limit);
      if (mtrr_end < end) end = mtrr_end;
    }
    return end;
  };
  uint64_t end = next_change(start.value());
  while (end < limit && identity_attr(Gpa(end)) == attr) end = next_change(end);
  return end;
}

bool map_identity(PageTables& pt, const EptLayout& layout, uint64_t from, uint64_t to) {
  if (((from | to) & (arch::kPageSize4K - 1)) != 0 || to > layout.top()) return false;
  for (uint64_t at = from; at < to;) {
    const uint64_t end = layout.identity_run_end(Gpa(at), to);
    if (!pt.map(Gpa(at), Hpa(at), end - at, layout.identity_attr(Gpa(at)))) return false;
    at = end;
  }
  return true;
}

bool range_is_guest_ram(const EptLayout& layout, Gpa gpa, uint64_t len) {
  const uint64_t start = gpa.value();
  if (len == 0 || start + len < start) return false;
  const uint64_t end = start + len;
  if (layout.hides_any(gpa, len)) return false;
  for (uint32_t i = 0; i < layout.region_count; ++i) {
    const MemRegion& r = layout.regions[i];
    if (r.ram && start >= r.base.value() && end <= r.end()) return true;
  }
  return false;
}

bool map_host_identity(PageTables& pt, const MtrrSnapshot& mtrrs, uint64_t limit) {
  constexpr MapAttr kHost{kPermRwx, arch::MemType::kWb};  // host format: the type is the MTRRs'
  for (uint64_t at = 0; at < limit;) {
    const uint64_t end = mtrr_run_end(mtrrs, at, limit);
    if (!pt.map(at, Hpa(at), end - at, kHost)) return false;
    at = end;
  }
  return true;
}

}  // namespace microhv::vmx
