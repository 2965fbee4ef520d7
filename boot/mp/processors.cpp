#include "boot/mp/processors.hpp"

namespace microhv::boot {

uint32_t assign_vp_indexes(const uint32_t* status_flags, uint32_t processor_count, uint32_t bsp,
                           uint32_t max_vps, uint32_t* vp_of) {
  for (uint32_t p = 0; p < processor_count; ++p) vp_of[p] = kNoVp;
  if (bsp >= processor_count || max_vps == 0) return 0;
  vp_of[bsp] = 0;
  uint32_t count = 1;
  constexpr uint32_t kUsable = kProcessorEnabled | kProcessorHealthy;
  for (uint32_t p = 0; p < processor_count && count < max_vps; ++p) {
    if (p == bsp || (status_flags[p] & kUsable) != kUsable) continue;
    vp_of[p] = count++;
  }
  return count;
}

}  // namespace microhv::boot
