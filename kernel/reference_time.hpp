// The partition reference time (TLFS 12.4, 12.7): 100 ns units since the
// partition started, derived from the host's TSC. One formula serves both
// TIME_REF_COUNT and the reference TSC page, so the two cannot disagree:
//
//   reference time = ((tsc * scale) >> 64) + offset
//
// with scale = 10^7 * 2^64 / tsc_hz (the TLFS page format). The page only
// works for a TSC faster than 10 MHz (scale must fit in 64 bits); below that
// microhv does not offer it. Pure arithmetic: unit-tested over a range of
// frequencies and at the overflow edges (tests/unit/time_test.cpp).
#pragma once

#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"

namespace microhv {

inline constexpr uint64_t kNoDeadline = ~0ull;

struct ReferenceScale {
  uint64_t scale = 0;  // 0: no usable scale (TSC rate unknown or <= 10 MHz)
  int64_t offset = 0;
};

// floor(10^7 * 2^64 / tsc_hz), or 0 when it does not fit (tsc_hz <= 10 MHz).
constexpr uint64_t tsc_scale_for(uint64_t tsc_hz) {
  if (tsc_hz <= tlfs::kReferenceHz) return 0;
  return static_cast<uint64_t>((static_cast<unsigned __int128>(tlfs::kReferenceHz) << 64) / tsc_hz);
}

// ((tsc * scale) >> 64) + offset, the TLFS formula (wrapping like the guest's
// 64-bit arithmetic).
constexpr uint64_t reference_time_at(uint64_t tsc, const ReferenceScale& s) {
  const auto product = static_cast<unsigned __int128>(tsc) * s.scale;
  return static_cast<uint64_t>(product >> 64) + static_cast<uint64_t>(s.offset);
}

// The scale for `tsc_hz`, with the offset that makes reference time 0 at
// `tsc_at_start`.
constexpr ReferenceScale reference_scale(uint64_t tsc_hz, uint64_t tsc_at_start) {
  ReferenceScale s{tsc_scale_for(tsc_hz), 0};
  s.offset = -static_cast<int64_t>(reference_time_at(tsc_at_start, s));
  return s;
}

// The first TSC value at which reference time has reached `t` (saturating at
// ~0 when it never does within 64 bits; 0 when it already has at TSC 0).
uint64_t tsc_at_reference_time(uint64_t t, const ReferenceScale& s);

// The page a guest whose TSC reads `host TSC + guest_offset` needs to see
// the same reference time: the offset absorbs guest_offset * scale / 2^64
// (exact when guest_offset is 0; within one 100 ns unit otherwise).
ReferenceScale scale_for_guest_tsc(const ReferenceScale& host, int64_t guest_offset);

}  // namespace microhv
