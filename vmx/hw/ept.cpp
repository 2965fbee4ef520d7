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

// The overlays are microhv pages mapped at the GPA the core chose: the
// hypercall page (TLFS 3.13) read+execute, the reference TSC page (TLFS
// 12.7) read-only. Guest writes to them exit (EPT violation) and get #GP;
// the RAM underneath is untouched and comes back when the overlay moves or
// is removed. The EPT is shared by all VPs: changes are serialised by
// ept_lock and every CPU invalidates before its next entry.
namespace {

const char* overlay_name(OverlayId id) {
  return id == OverlayId::kHypercallPage ? "hypercall page" : "reference TSC page";
}

MapAttr overlay_attr(OverlayId id) {
  return id == OverlayId::kHypercallPage ? MapAttr{kPermR | kPermX, arch::MemType::kWb}
                                         : MapAttr{kPermR, arch::MemType::kWb};
}

}  // namespace

uint64_t EptOverlays::page_of(OverlayId id) const {
  return id == OverlayId::kHypercallPage ? host_.info.overlay_page : host_.info.tsc_page;
}

bool EptOverlays::write(OverlayId id, uint32_t offset, const void* data, uint32_t len) {
  if (static_cast<uint32_t>(id) >= kOverlayCount || offset > kPageSize ||
      len > kPageSize - offset) {
    return false;
  }
  __builtin_memcpy(reinterpret_cast<uint8_t*>(page_of(id)) + offset, data, len);
  return true;
}

OverlayStatus EptOverlays::place(OverlayId id, Gpa gpa) {
  if (static_cast<uint32_t>(id) >= kOverlayCount) return OverlayStatus::kRefused;
  return move(id, gpa.page_base());
}

void EptOverlays::remove(OverlayId id) {
  if (static_cast<uint32_t>(id) < kOverlayCount) move(id, kNone);
}

// Maps overlay `id` at `want` (nothing: nowhere), restoring the identity
// mapping where it was. Host::overlay_gpa holds the raw GPAs (kNoOverlay:
// none) because other CPUs read them without the lock. Two overlays at one
// GPA: the later one wins the mapping; the other is recorded as nowhere.
OverlayStatus EptOverlays::move(OverlayId id, Optional<Gpa> want) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  const auto i = static_cast<uint32_t>(id);
  LockGuard guard(h.ept_lock);
  const uint64_t want_raw = want ? want.value().value() : Host::kNoOverlay;
  if (want_raw == h.overlay_gpa[i]) return OverlayStatus::kPlaced;
  const uint64_t old = h.overlay_gpa[i];
  if (old != Host::kNoOverlay) {
    h.ept.map(Gpa(old), identity_hpa(Gpa(old)), kPageSize, identity_attr(h, Gpa(old)));
  }
  uint64_t now = want_raw;
  OverlayStatus status = OverlayStatus::kPlaced;
  if (want) {
    if (identity_attr(h, want.value()).perms == 0) {
      if (refusals_.allow()) {
        log::error("%s at GPA 0x%llx refused: microhv memory\n", overlay_name(id),
                   static_cast<unsigned long long>(want_raw));
      }
      now = Host::kNoOverlay;
      status = OverlayStatus::kRefused;
    } else if (!h.ept.map(want.value(), Hpa(page_of(id)), kPageSize, overlay_attr(id))) {
      log::error("%s at GPA 0x%llx: EPT map failed\n", overlay_name(id),
                 static_cast<unsigned long long>(want_raw));
      status = OverlayStatus::kFailed;
    }
    for (uint32_t other = 0; other < kOverlayCount; ++other) {
      if (other != i && h.overlay_gpa[other] == now) {
        __atomic_store_n(&h.overlay_gpa[other], Host::kNoOverlay, __ATOMIC_RELEASE);
      }
    }
  }
  __atomic_store_n(&h.overlay_gpa[i], now, __ATOMIC_RELEASE);
  shoot_down_ept(h, self);
  if (!moves_logged_.allow()) return status;
  if (now != Host::kNoOverlay) {
    log::info("%s: overlay mapped %s at GPA 0x%llx\n", overlay_name(id),
              id == OverlayId::kHypercallPage ? "read+execute" : "read-only",
              static_cast<unsigned long long>(now));
  } else if (old != Host::kNoOverlay) {
    log::info("%s: overlay at GPA 0x%llx removed\n", overlay_name(id),
              static_cast<unsigned long long>(old));
  }
  return status;
}

}  // namespace microhv::vmx::hw
