#include "kernel/reference_time.hpp"

namespace microhv {

uint64_t tsc_at_reference_time(uint64_t t, const ReferenceScale& s) {
  if (s.scale == 0) return kNoDeadline;
  // reference_time_at(tsc) >= t  <=>  floor(tsc * scale / 2^64) >= t - offset.
  // A negative difference: t lies before TSC 0, so it has been reached.
  const uint64_t units = t - static_cast<uint64_t>(s.offset);
  if (static_cast<int64_t>(units) < 0) return 0;
  const unsigned __int128 needed = static_cast<unsigned __int128>(units) << 64;
  const unsigned __int128 tsc = (needed + s.scale - 1) / s.scale;
  return tsc > ~0ull ? kNoDeadline : static_cast<uint64_t>(tsc);
}

ReferenceScale scale_for_guest_tsc(const ReferenceScale& host, int64_t guest_offset) {
  // guest = host + o  =>  (guest * scale) >> 64 ~ (host * scale) >> 64 + (o * scale) >> 64.
  const __int128 shift = (static_cast<__int128>(guest_offset) * host.scale) >> 64;
  return ReferenceScale{host.scale, host.offset - static_cast<int64_t>(shift)};
}

}  // namespace microhv
