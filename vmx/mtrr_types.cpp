#include "vmx/mtrr_types.hpp"

namespace microhv::vmx {
namespace {

namespace mtrr = arch::mtrr;
using arch::MemType;

constexpr uint8_t kUc = static_cast<uint8_t>(MemType::kUc);
constexpr uint8_t kWt = static_cast<uint8_t>(MemType::kWt);
constexpr uint8_t kWb = static_cast<uint8_t>(MemType::kWb);

MemType as_type(uint64_t t) {
  return mtrr::is_valid_type(t) ? static_cast<MemType>(t) : MemType::kUc;
}

bool enabled(const MtrrSnapshot& s) {
  return s.present && (s.def_type & mtrr::kDefEnable) != 0;
}

bool fixed_enabled(const MtrrSnapshot& s) {
  return enabled(s) && (s.cap & mtrr::kCapFixed) != 0 && (s.def_type & mtrr::kDefFixedEnable) != 0;
}

uint64_t width_mask(const MtrrSnapshot& s) {
  const unsigned bits = s.phys_bits < 12 ? 12 : (s.phys_bits > 52 ? 52 : s.phys_bits);
  return (1ull << bits) - 1;
}

// The fixed-range MSR covering `pa` (< 1 MiB) and the index of its field.
const mtrr::FixedRangeMsr& fixed_msr_of(uint64_t pa, unsigned* msr_index) {
  unsigned i = 0;
  while (i + 1 < mtrr::kFixedMsrCount && pa >= mtrr::kFixedMsrs[i + 1].base) ++i;
  *msr_index = i;
  return mtrr::kFixedMsrs[i];
}

}  // namespace

bool variable_range(const MtrrSnapshot& s, uint32_t index, VariableRange* out) {
  if (index >= s.var_count || index >= kMaxSnapshotMtrrs) return false;
  const MtrrSnapshot::Variable& v = s.var[index];
  if ((v.mask & mtrr::kMaskValid) == 0) return false;
  const uint64_t width = width_mask(s);
  const uint64_t mask = v.mask & mtrr::kAddrMask & width;
  // The addresses a mask leaves free: 2^k - 1 for a contiguous mask.
  const uint64_t free = ~mask & width;
  out->start = v.base & mask;
  out->end = (out->start | free) + 1;
  out->type = static_cast<uint8_t>(v.base & mtrr::kBaseTypeMask);
  out->contiguous = (free & (free + 1)) == 0;
  return true;
}

MemType mtrr_type(const MtrrSnapshot& s, uint64_t pa) {
  if (!s.present) return MemType::kWb;
  if (!enabled(s)) return MemType::kUc;
  if (pa < mtrr::kFixedRangeEnd && fixed_enabled(s)) {
    unsigned i = 0;
    const mtrr::FixedRangeMsr& m = fixed_msr_of(pa, &i);
    const unsigned field = static_cast<unsigned>((pa - m.base) / m.step);
    return as_type((s.fixed[i] >> (8 * field)) & 0xFF);
  }
  bool any = false, any_uc = false, all_same = true, only_wt_wb = true;
  uint8_t first = 0;
  for (uint32_t i = 0; i < s.var_count; ++i) {
    VariableRange r{};
    if (!variable_range(s, i, &r) || pa < r.start || pa >= r.end) continue;
    const uint8_t t = mtrr::is_valid_type(r.type) ? r.type : kUc;
    if (!any) first = t;
    any = true;
    any_uc = any_uc || t == kUc;
    all_same = all_same && t == first;
    only_wt_wb = only_wt_wb && (t == kWt || t == kWb);
  }
  if (!any) return as_type(s.def_type & mtrr::kDefTypeMask);
  if (any_uc) return MemType::kUc;
  if (all_same) return static_cast<MemType>(first);
  if (only_wt_wb) return MemType::kWt;
  return MemType::kUc;  // an overlap the SDM leaves undefined: the safe type
}

namespace {

// The first address after `pa` where the MTRR type may change, or `limit`.
uint64_t next_boundary(const MtrrSnapshot& s, uint64_t pa, uint64_t limit) {
  uint64_t next = limit;
  auto consider = [&](uint64_t b) {
    if (b > pa && b < next) next = b;
  };
  if (!enabled(s)) return limit;
  if (pa < mtrr::kFixedRangeEnd && fixed_enabled(s)) {
    unsigned i = 0;
    const mtrr::FixedRangeMsr& m = fixed_msr_of(pa, &i);
    consider((pa - m.base) / m.step * m.step + m.step + m.base);
    consider(mtrr::kFixedRangeEnd);
  }
  for (uint32_t i = 0; i < s.var_count; ++i) {
    VariableRange r{};
    if (!variable_range(s, i, &r)) continue;
    consider(r.start);
    consider(r.end);
  }
  return next;
}

}  // namespace

uint64_t mtrr_run_end(const MtrrSnapshot& s, uint64_t pa, uint64_t limit) {
  const MemType type = mtrr_type(s, pa);
  uint64_t end = next_boundary(s, pa, limit);
  while (end < limit && mtrr_type(s, end) == type) end = next_boundary(s, end, limit);
  return end;
}

}  // namespace microhv::vmx
