#include "vmx/hw/ept.hpp"

#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {

MapAttr identity_attr(const Host& h, uint64_t gpa) {
  const EptLayout& layout = h.memory.layout;
  if (gpa >= layout.hidden_base && gpa - layout.hidden_base < layout.hidden_size) {
    return kNotPresent;
  }
  if ((gpa & ~kPageMask) == h.apic_page) return MapAttr{kPermR, arch::MemType::kUc};
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
  return move_hypercall_page(gpa.page_base().value());
}

void EptOverlays::remove(OverlayId id) {
  if (id == OverlayId::kHypercallPage) move_hypercall_page(~0ull);
}

// Maps the page at `want` (~0: nowhere), restoring the identity mapping
// where it was.
OverlayStatus EptOverlays::move_hypercall_page(uint64_t want) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  LockGuard guard(h.ept_lock);
  if (want == h.overlay_gpa) return OverlayStatus::kPlaced;
  const uint64_t old = h.overlay_gpa;
  if (old != ~0ull) h.ept.map(old, old, kPageSize, identity_attr(h, old));
  uint64_t now = want;
  OverlayStatus status = OverlayStatus::kPlaced;
  if (want != ~0ull) {
    if (identity_attr(h, want).perms == 0) {
      if (refusals_.allow()) {
        log::error("hypercall page at GPA 0x%llx refused: microhv memory\n",
                   static_cast<unsigned long long>(want));
      }
      now = ~0ull;
      status = OverlayStatus::kRefused;
    } else if (!h.ept.map(want, h.info.overlay_page, kPageSize,
                          MapAttr{kPermR | kPermX, arch::MemType::kWb})) {
      log::error("hypercall page at GPA 0x%llx: EPT map failed\n",
                 static_cast<unsigned long long>(want));
      status = OverlayStatus::kFailed;
    }
  }
  __atomic_store_n(&h.overlay_gpa, now, __ATOMIC_RELEASE);
  shoot_down_ept(h, self);
  if (!moves_logged_.allow()) return status;
  if (now != ~0ull) {
    log::info("hypercall page: overlay mapped read+execute at GPA 0x%llx\n",
              static_cast<unsigned long long>(now));
  } else if (old != ~0ull) {
    log::info("hypercall page: overlay at GPA 0x%llx removed\n",
              static_cast<unsigned long long>(old));
  }
  return status;
}

}  // namespace microhv::vmx::hw
