// The guest's EPT after launch: what an identity page looks like, INVEPT,
// the shoot-down that makes every other VP invalidate before it enters
// again, and the overlays the core places (kernel/platform/overlays.hpp).
#pragma once

#include "kernel/base/log.hpp"
#include "kernel/platform/overlays.hpp"
#include "vmx/page_tables.hpp"

namespace microhv::vmx::hw {

struct Host;
struct Vcpu;

// The identity mapping of the page at `gpa`: not present for microhv's
// memory, read-only UC for the xAPIC page (writes exit and are emulated),
// WB for RAM, UC for everything else.
MapAttr identity_attr(const Host& h, Gpa gpa);

// INVEPT for microhv's EPT on this CPU (single-context when supported).
void invalidate_ept(const Host& h);

// After an EPT change: invalidates here and makes every other VP's CPU
// invalidate before it enters the guest again (it exits now if it is in
// the guest).
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
  OverlayStatus move(OverlayId id, Optional<Gpa> want);
  uint64_t page_of(OverlayId id) const;
  Host& host_;
  // A guest may move the page, or ask for a refused one, in a loop.
  log::RateLimit refusals_{8};
  log::RateLimit moves_logged_{16};
};

}  // namespace microhv::vmx::hw
