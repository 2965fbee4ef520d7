#include "vmx/hw/ept.hpp"

#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {

MapAttr identity_attr(const Host& h, Gpa gpa) {
  const EptLayout& layout = h.memory.layout;
  if (layout.hides(identity_hpa(gpa))) return kNotPresent;
  if (h.apic_page && gpa.page_base() == h.apic_page.value()) {
    return MapAttr{kPermR, arch::MemType::kUc};
  }
  if (range_is_guest_ram(layout, gpa, kPageSize)) return MapAttr{kPermRwx, arch::MemType::kWb};
  return MapAttr{kPermRwx, arch::MemType::kUc};
}

void invalidate_ept(const Host& h) {
  check(invalidate(Invalidation::kEpt, h.invept_type, {h.eptp, 0}), "INVEPT");
}

void shoot_down_ept(Host& h, Vcpu& self) {
  self.ept_seen = __atomic_add_fetch(&h.ept_generation, 1, __ATOMIC_SEQ_CST);
  invalidate_ept(h);
  for (uint32_t i = 0; i < h.cpu_count; ++i) {
    Vcpu& t = h.vcpus[i];
    if (&t == &self || __atomic_load_n(&t.vp, __ATOMIC_ACQUIRE) == nullptr) continue;
    if (t.frame->remote.poke()) send_kick(self, t);
  }
}

// The hypercall page (TLFS 3.13) is an overlay: a microhv page, mapped
// read+execute at the GPA the core chose. Guest writes to it exit (EPT
// violation) and get #GP; the RAM underneath is untouched and comes back
// when the overlay moves or is removed. The EPT is shared by all VPs:
// changes are serialised by ept_lock and every CPU invalidates before its
// next entry.
bool EptOverlays::write(OverlayId id, uint32_t offset, const void* data, uint32_t len) {
  if (id != OverlayId::kHypercallPage || offset > kPageSize || len > kPageSize - offset) {
    return false;
  }
  __builtin_memcpy(reinterpret_cast<uint8_t*>(host_.info.overlay_page) + offset, data, len);
  return true;
}

OverlayStatus EptOverlays::place(OverlayId id, Gpa gpa) {
  if (id != OverlayId::kHypercallPage) return OverlayStatus::kRefused;
  return move_hypercall_page(gpa.page_base());
}

void EptOverlays::remove(OverlayId id) {
  if (id == OverlayId::kHypercallPage) move_hypercall_page(kNone);
}

// Maps the page at `want` (nothing: nowhere), restoring the identity
// mapping where it was. Host::overlay_gpa holds the raw GPA (kNoOverlay:
// none) because other CPUs read it without the lock.
OverlayStatus EptOverlays::move_hypercall_page(Optional<Gpa> want) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  LockGuard guard(h.ept_lock);
  const uint64_t want_raw = want ? want.value().value() : Host::kNoOverlay;
  if (want_raw == h.overlay_gpa) return OverlayStatus::kPlaced;
  const uint64_t old = h.overlay_gpa;
  if (old != Host::kNoOverlay) {
    h.ept.map(Gpa(old), identity_hpa(Gpa(old)), kPageSize, identity_attr(h, Gpa(old)));
  }
  uint64_t now = want_raw;
  OverlayStatus status = OverlayStatus::kPlaced;
  if (want) {
    if (identity_attr(h, want.value()).perms == 0) {
      if (refusals_.allow()) {
        log::error("hypercall page at GPA 0x%llx refused: microhv memory\n",
                   static_cast<unsigned long long>(want_raw));
      }
      now = Host::kNoOverlay;
      status = OverlayStatus::kRefused;
    } else if (!h.ept.map(want.value(), Hpa(h.info.overlay_page), kPageSize,
                          MapAttr{kPermR | kPermX, arch::MemType::kWb})) {
      log::error("hypercall page at GPA 0x%llx: EPT map failed\n",
                 static_cast<unsigned long long>(want_raw));
      status = OverlayStatus::kFailed;
    }
  }
  __atomic_store_n(&h.overlay_gpa, now, __ATOMIC_RELEASE);
  shoot_down_ept(h, self);
  if (!moves_logged_.allow()) return status;
  if (now != Host::kNoOverlay) {
    log::info("hypercall page: overlay mapped read+execute at GPA 0x%llx\n",
              static_cast<unsigned long long>(now));
  } else if (old != Host::kNoOverlay) {
    log::info("hypercall page: overlay at GPA 0x%llx removed\n",
              static_cast<unsigned long long>(old));
  }
  return status;
}

}  // namespace microhv::vmx::hw
