#include "vmx/ept.hpp"

namespace microhv::vmx {

namespace {

// Insertion sort by `before` (region lists are short: firmware memory maps).
template <typename Before>
void sort_regions(MemRegion* r, uint32_t count, Before before) {
  for (uint32_t i = 1; i < count; ++i) {
    const MemRegion x = r[i];
    uint32_t j = i;
    while (j > 0 && before(x, r[j - 1])) {
      r[j] = r[j - 1];
      --j;
    }
    r[j] = x;
  }
}

// Merges overlapping or touching regions of a list sorted by base (one kind).
uint32_t merge_sorted(MemRegion* r, uint32_t count) {
  uint32_t out = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (out > 0 && r[i].base.value() <= r[out - 1].end()) {
      MemRegion& last = r[out - 1];
      if (r[i].end() > last.end()) last.size = r[i].end() - last.base.value();
      continue;
    }
    r[out++] = r[i];
  }
  return out;
}

// `x` minus the RAM regions (sorted, disjoint): RAM wins an overlap. Where
// a RAM region lies inside `x`, the part of `x` after it is dropped (an
// address in no region is not RAM either, so nothing changes for the guest).
MemRegion clip_against_ram(MemRegion x, const MemRegion* ram, uint32_t ram_count) {
  uint64_t b = x.base.value(), e = x.end();
  for (uint32_t i = 0; i < ram_count && b < e; ++i) {
    if (ram[i].end() <= b) continue;
    if (ram[i].base.value() >= e) break;
    if (ram[i].base.value() <= b) {
      b = ram[i].end();  // the head is RAM
    } else {
      e = ram[i].base.value();  // keep the part before this RAM region
    }
  }
  return MemRegion{Hpa(b), e > b ? e - b : 0, false};
}

}  // namespace

uint32_t normalize_regions(MemRegion* r, uint32_t count) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (r[i].size != 0 && r[i].base.value() + r[i].size > r[i].base.value()) r[n++] = r[i];
  }
  // RAM first, each kind by base; RAM merged into disjoint runs.
  sort_regions(r, n, [](const MemRegion& a, const MemRegion& b) {
    return a.ram != b.ram ? a.ram : a.base < b.base;
  });
  uint32_t ram = 0;
  while (ram < n && r[ram].ram) ++ram;
  const uint32_t ram_count = merge_sorted(r, ram);
  // The rest without what RAM covers, merged.
  uint32_t out = ram_count;
  for (uint32_t i = ram; i < n; ++i) {
    const MemRegion x = clip_against_ram(r[i], r, ram_count);
    if (x.size != 0) r[out++] = x;
  }
  const auto by_base = [](const MemRegion& a, const MemRegion& b) { return a.base < b.base; };
  sort_regions(r + ram_count, out - ram_count, by_base);
  const uint32_t other_count = merge_sorted(r + ram_count, out - ram_count);
  out = ram_count + other_count;
  // One list by base: disjoint, every run of one kind one region.
  sort_regions(r, out, by_base);
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
  // The regions are sorted by base and disjoint, and touching regions of
  // one kind are merged (normalize_regions): the only region that can hold
  // the range is the last one starting at or below `start`. Binary search
  // for it: O(log n), on every guest-memory access of the message path.
  uint32_t lo = 0, hi = layout.region_count;  // -> the first region starting above `start`
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (layout.regions[mid].base.value() <= start) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0) return false;
  const MemRegion& r = layout.regions[lo - 1];
  if (!r.ram || end > r.end()) return false;
  return !layout.hides_any(gpa, len);
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
