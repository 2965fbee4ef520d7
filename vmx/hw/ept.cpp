#include "vmx/hw/ept.hpp"

#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {

void invalidate_ept(const Host& h) {
  check(invalidate(Invalidation::kEpt, h.invept_type, {h.eptp, 0}), "INVEPT");
}

void shoot_down_ept(Host& h, Vcpu& self) {
  self.ept_seen = __atomic_add_fetch(&h.ept_generation, 1, __ATOMIC_SEQ_CST);
  invalidate_ept(h);
  kick_other_vps(h, self);
}

namespace {

const char* overlay_name(OverlayId id) {
  return id == OverlayId::kHypercallPage ? "hypercall page" : "reference TSC page";
}

}  // namespace

// The overlays are microhv pages mapped at the GPA the core chose: the
// hypercall page (TLFS 3.13) read+execute, the reference TSC page (TLFS
// 12.7) read-only. Guest writes to them exit (EPT violation) and get #GP;
// the RAM underneath is untouched and comes back when the overlay moves or
// is removed. The EPT is shared by all VPs: changes are serialised by
// ept_lock and every CPU invalidates before its next entry.
bool EptOverlays::write(OverlayId id, uint32_t offset, const void* data, uint32_t len) {
  const auto i = static_cast<uint32_t>(id);
  if (i >= kOverlayCount || host_.overlay_backing[i] == 0 || offset > kPageSize ||
      len > kPageSize - offset) {
    return false;
  }
  __builtin_memcpy(reinterpret_cast<uint8_t*>(host_.overlay_backing[i]) + offset, data, len);
  return true;
}

OverlayStatus EptOverlays::place(OverlayId id, Gpa gpa) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  const Gpa page = gpa.page_base();
  const char* why = nullptr;
  const bool moves = !(h.ept->overlay_at(id) == Optional<Gpa>(page));
  OverlayStatus status;
  {
    LockGuard guard(h.ept_lock);
    const uint64_t reclaims = h.ept->reclaims();
    status = h.ept->place(id, page, &why);
    // The new page lost its old mapping, the old page its overlay: no CPU
    // may keep translating either as before. The same when placing it
    // reclaimed the on-demand MMIO tables.
    if ((status == OverlayStatus::kPlaced && moves) || h.ept->reclaims() != reclaims) {
      shoot_down_ept(h, self);
    }
  }
  if (status != OverlayStatus::kPlaced) {
    if (refusals_.allow()) {
      log::info("%s at GPA 0x%llx %s: %s (at most 8 such lines)\n", overlay_name(id),
                static_cast<unsigned long long>(gpa.value()),
                status == OverlayStatus::kRefused ? "refused" : "not mapped", why);
    }
    return status;
  }
  if (!moves) return status;
  // The first moves one by one, then one line per 512 (a guest may move the
  // page in a loop): the table counts must stay where they were.
  const uint64_t count = ++moves_[static_cast<uint32_t>(id)];
  if (moves_logged_.allow() || count % 512 == 0) {
    log::info("%s: overlay mapped at GPA 0x%llx (move %llu; EPT: %llu tables in use, %llu free)\n",
              overlay_name(id), static_cast<unsigned long long>(page.value()),
              static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(h.ept->tables_in_use()),
              static_cast<unsigned long long>(h.ept->tables_free() + h.alloc.pages_left()));
  }
  return status;
}

void EptOverlays::remove(OverlayId id) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  const Optional<Gpa> old = h.ept->overlay_at(id);
  {
    LockGuard guard(h.ept_lock);
    if (!h.ept->remove(id)) return;
    shoot_down_ept(h, self);
  }
  if (moves_logged_.allow() && old) {
    log::info("%s: overlay at GPA 0x%llx removed\n", overlay_name(id),
              static_cast<unsigned long long>(old.value().value()));
  }
}

// An EPT violation: the decision is GuestEpt's (on the tables as they are
// now, under the lock); high MMIO is mapped here. Mapping where nothing was
// needs no invalidation (no processor caches a not-present entry, SDM Vol.
// 3C 29.4.2); reclaiming the on-demand tables does.
EptFaultInfo HwEptFaults::on_violation(Gpa gpa, uint64_t qualification) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  LockGuard guard(h.ept_lock);
  EptFaultInfo f = h.ept->classify(gpa, qualification);
  if (f.action != EptFault::kMapOnDemand) return f;
  bool reclaimed = false;
  if (!h.ept->fill_on_demand(gpa, &reclaimed)) {
    return {EptFault::kStop, "out of page-table pages for MMIO mapped on demand"};
  }
  if (reclaimed) {
    shoot_down_ept(h, self);
    if (reclaims_logged_.allow()) {
      log::info(
          "EPT: MMIO mapped on demand reached %llu tables: unmapped and mapped again (%llu "
          "times so far)\n",
          static_cast<unsigned long long>(GuestEpt::kOnDemandTables),
          static_cast<unsigned long long>(h.ept->reclaims()));
    }
  }
  return {EptFault::kRetry, f.what};
}

unsigned HwEptFaults::walk(Gpa gpa, uint64_t entries[4]) {
  LockGuard guard(host_.ept_lock);
  return host_.ept->tables().walk_entries(gpa.value(), entries);
}

}  // namespace microhv::vmx::hw
