// How the portable core asks for a remote TLB flush (TLFS
// HvCallFlushVirtualAddressSpace/List): "every VP in this set drops these
// cached linear translations, and I continue only when they have". With VPID
// the translations are tagged per VP and INVVPID acts only on the CPU that
// executes it, so the VT-x back end has each target's own CPU invalidate and
// waits for its acknowledgment (vmx/tlb_flush.hpp); host tests record the
// requests.
//
// Called WITHOUT Hypervisor::lock: the call waits for other CPUs, which may
// need that lock before they can look at their inbox.
#pragma once

#include <stdint.h>

#include "kernel/base/types.hpp"
#include "kernel/base/vp_mask.hpp"

namespace microhv {

struct TlbFlushRequest {
  enum class Scope : uint8_t {
    kRanges,        // only the pages of `ranges`
    kAllNonGlobal,  // every translation; global ones may be kept
    kAll,           // every translation
  };
  Scope scope = Scope::kAll;
  uint32_t range_count = 0;
  // kRanges: TLFS HV_GVA ranges (63:12 first page, 11:0 further pages);
  // addresses the guest cannot have mapped (non-canonical) are ignored.
  const uint64_t* ranges = nullptr;
};

class GuestTlb {
 public:
  // True once the translations are gone on every VP of `targets` that
  // exists (the caller `self` included when it is a target): none of them
  // uses one again. False when a target did not acknowledge within the
  // back end's bound (it logs why); the caller reports HV_STATUS_TIMEOUT.
  virtual bool flush(VpIndex self, VpMask targets, const TlbFlushRequest& what) = 0;

 protected:
  ~GuestTlb() = default;
};

}  // namespace microhv
