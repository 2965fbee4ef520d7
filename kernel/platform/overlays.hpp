// Guest-physical pages the hypervisor backs with its own memory instead of
// the guest's RAM underneath: the hypercall page (TLFS 3.13) and the
// reference TSC page (TLFS 12.7). The core decides where an overlay sits and
// what it holds (the HYPERCALL MSR semantics in hypercall/msr.cpp); the back
// end maps it -- read+execute, the guest's writes fault -- and leaves the RAM
// underneath untouched, so it reappears when the overlay moves or goes. Host
// tests record the calls.
//
// Called with Hypervisor::lock held (the back end's own EPT lock nests inside
// it; see the lock order in vmx/README.md).
#pragma once

#include <stdint.h>

#include "kernel/base/types.hpp"

namespace microhv {

enum class OverlayId : uint8_t {
  kHypercallPage = 0,
  kReferenceTscPage = 1,  // hypercall/time_msr.cpp
};
inline constexpr uint32_t kOverlayCount = 2;

// Not placed (refused or failed): nothing changed, the overlay is still
// where it was (or nowhere), and the core makes the MSR write that asked for
// it fail with #GP (hypercall/msr.cpp).
enum class OverlayStatus : uint8_t {
  kPlaced,   // mapped at the GPA
  kRefused,  // the GPA may not hold it: beyond the guest's width, the hypervisor's
             // own memory, the local APIC page, another overlay's page
  kFailed,   // the mapping could not be made (out of page-table pages)
};

class GuestPhysicalOverlays {
 public:
  // Writes into the overlay's own 4 KiB page. False when out of range.
  virtual bool write(OverlayId id, uint32_t offset, const void* data, uint32_t len) = 0;
  // Maps the overlay at the page-aligned `gpa`, moving it if it was
  // elsewhere (placing it where it is already is a no-op). While placed,
  // the page is not RAM for the partition's GuestMemory.
  virtual OverlayStatus place(OverlayId id, Gpa gpa) = 0;
  // Unmaps it: the RAM underneath is visible again. No-op when not placed.
  virtual void remove(OverlayId id) = 0;

 protected:
  ~GuestPhysicalOverlays() = default;
};

}  // namespace microhv
