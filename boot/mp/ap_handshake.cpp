#include "boot/mp/ap_handshake.hpp"

namespace microhv::boot {

bool ap_begin(ApHandshake& h) {
  uint32_t expected = ApHandshake::kWaiting;
  return __atomic_compare_exchange_n(&h.state, &expected, ApHandshake::kRunning, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

void ap_finish(ApHandshake& h, uint64_t status, uint32_t vp_index, uint32_t hv_bit) {
  h.status = status;
  h.vp_index = vp_index;
  h.hv_bit = hv_bit;
  __atomic_store_n(&h.state, ApHandshake::kDone, __ATOMIC_RELEASE);
}

bool bsp_abandon(ApHandshake& h) {
  uint32_t expected = ApHandshake::kWaiting;
  return __atomic_compare_exchange_n(&h.state, &expected, ApHandshake::kAbandoned, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

bool ap_done(const ApHandshake& h) {
  return __atomic_load_n(&h.state, __ATOMIC_ACQUIRE) == ApHandshake::kDone;
}

}  // namespace microhv::boot
