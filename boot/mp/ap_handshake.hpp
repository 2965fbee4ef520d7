// The word the BSP and an AP being virtualized share, so that the BSP never
// blocks on an AP and can abandon one that does not come up (portable,
// unit-tested in tests/unit/boot_mp_test.cpp; used by boot/efi/ap_bringup.cpp).
#pragma once

#include <stdint.h>

#include "boot/mp/processors.hpp"

namespace microhv::boot {

// Shared between the BSP (which runs as the guest by then and polls it) and
// an AP running microhv's procedure under StartupThisAP. Lives in memory the
// guest can see (boot services pool), never in microhv's pool.
struct ApHandshake {
  enum : uint32_t { kWaiting = 0, kRunning = 1, kAbandoned = 2, kDone = 3 };
  uint32_t state = kWaiting;
  uint64_t status = ~0ull;    // microhv_virtualize's result on the AP (0 = virtualized)
  uint32_t vp_index = kNoVp;  // VP_INDEX as read by the AP afterwards, as the guest
  uint32_t hv_bit = 0;        // CPUID.1:ECX[31] as seen by the AP afterwards
  // Filled in by the BSP before StartupThisAP.
  uint64_t cpu_launch = 0, entry = 0, host_cr3 = 0, host_stack_top = 0;
};

// AP: kWaiting -> kRunning. False when the BSP gave up already: do nothing.
bool ap_begin(ApHandshake& h);
// AP: the last write (release): the BSP may read the result fields now.
void ap_finish(ApHandshake& h, uint64_t status, uint32_t vp_index, uint32_t hv_bit);
// BSP: gives up on an AP that has not started (kWaiting -> kAbandoned).
// False when the AP already runs (or finished): it cannot be called back.
bool bsp_abandon(ApHandshake& h);
bool ap_done(const ApHandshake& h);

}  // namespace microhv::boot
