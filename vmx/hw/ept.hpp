// The guest's EPT after launch, on the machine: the portable GuestEpt
// (vmx/guest_ept.hpp) behind Host::ept_lock, INVEPT, the shoot-down that
// makes every other VP invalidate before it enters again, the overlays the
// core places (kernel/platform/overlays.hpp) and the answers the EPT exit
// handlers get (vmx/exits.hpp, EptFaults).
#pragma once

#include "kernel/base/log.hpp"
#include "kernel/platform/overlays.hpp"
#include "vmx/exits.hpp"
#include "vmx/guest_ept.hpp"

namespace microhv::vmx::hw {

struct Host;
struct Vcpu;

// INVEPT for microhv's EPT on this CPU (single-context when supported).
void invalidate_ept(const Host& h);

// After an EPT change that removed or narrowed a mapping: invalidates here
// and makes every other VP's CPU invalidate before it enters the guest
// again (it exits now if it is in the guest).
void shoot_down_ept(Host& h, Vcpu& self);

// Overlay pages on EPT. The core calls these under Hypervisor::lock; the EPT
// lock nests inside it.
class EptOverlays final : public GuestPhysicalOverlays {
 public:
  explicit EptOverlays(Host& host) : host_(host) {}
  bool write(OverlayId id, uint32_t offset, const void* data, uint32_t len) override;
  OverlayStatus place(OverlayId id, Gpa gpa) override;
  void remove(OverlayId id) override;

 private:
  Host& host_;
  // A guest may move the page, or ask for a refused one, in a loop.
  log::RateLimit refusals_{8};
  log::RateLimit moves_logged_{16};
  // Placements that moved each overlay (under Hypervisor::lock).
  uint64_t moves_[kOverlayCount] = {};
};

// The EPT exit handlers' questions, answered under the EPT lock.
class HwEptFaults final : public EptFaults {
 public:
  explicit HwEptFaults(Host& host) : host_(host) {}
  EptFaultInfo on_violation(Gpa gpa, uint64_t qualification) override;
  unsigned walk(Gpa gpa, uint64_t entries[4]) override;

 private:
  Host& host_;
  log::RateLimit reclaims_logged_{4};
};

}  // namespace microhv::vmx::hw
