#include "vmx/guest_ept.hpp"

namespace microhv::vmx {
namespace {

uint64_t align_down(uint64_t v, uint64_t a) {
  return v & ~(a - 1);
}

uint64_t tables_at(uint64_t from, uint64_t to, unsigned level) {
  const uint64_t span = arch::level_page_size(level + 1);  // what one table at `level` maps
  return (to + span - 1) / span - from / span;
}

}  // namespace

uint64_t identity_table_cost(uint64_t from, uint64_t to, unsigned max_leaf_level) {
  if (to <= from) return 0;
  uint64_t n = 0;
  for (unsigned level = max_leaf_level < 1 ? 1 : max_leaf_level; level <= 3; ++level) {
    n += tables_at(from, to, level);
  }
  return n;
}

GuestEpt::GuestEpt(const EptLayout& layout, PageAllocator& alloc, PhysAccess& phys,
                   unsigned max_leaf_level)
    : layout_(layout),
      tables_(TableFormat::kEpt, alloc, phys, max_leaf_level, 4, layout.address_bits) {}

bool GuestEpt::build() {
  if (!tables_.init()) return false;
  const uint64_t top = layout_.top();
  const uint64_t low = layout_.low_limit < top ? layout_.low_limit : top;
  const bool eager = identity_table_cost(low, top, tables_.max_leaf_level()) <= kEagerHighTables;
  mapped_until_ = eager ? top : low;
  return map_identity(tables_, layout_, 0, mapped_until_);
}

void GuestEpt::set_overlay_backing(OverlayId id, Hpa page, uint8_t perms) {
  const auto i = static_cast<uint32_t>(id);
  if (i >= kOverlayCount) return;
  overlays_[i].backing = page;
  overlays_[i].perms = perms;
}

Optional<Gpa> GuestEpt::overlay_at(OverlayId id) const {
  const auto i = static_cast<uint32_t>(id);
  if (i >= kOverlayCount) return kNone;
  const uint64_t at = __atomic_load_n(&overlays_[i].at, __ATOMIC_ACQUIRE);
  return at == kNowhere ? Optional<Gpa>() : Optional<Gpa>(Gpa(at));
}

bool GuestEpt::is_overlay_page(Gpa gpa) const {
  for (const Overlay& o : overlays_) {
    if (__atomic_load_n(&o.at, __ATOMIC_ACQUIRE) == gpa.page_base().value()) return true;
  }
  return false;
}

Optional<Gpa> GuestEpt::apic_page() const {
  const uint64_t at = __atomic_load_n(&apic_, __ATOMIC_ACQUIRE);
  return at == kNowhere ? Optional<Gpa>() : Optional<Gpa>(Gpa(at));
}

const char* GuestEpt::refusal(OverlayId id, Gpa page) const {
  switch (layout_.kind(page)) {
    case GpaKind::kBeyondWidth:
      return "beyond the guest's physical address width";
    case GpaKind::kHidden:
      return "microhv's memory";
    case GpaKind::kRam:
    case GpaKind::kMmio:
      break;
  }
  if (apic_page() == Optional<Gpa>(page)) return "the local APIC page";
  for (uint32_t i = 0; i < kOverlayCount; ++i) {
    if (i != static_cast<uint32_t>(id) && overlays_[i].at == page.value()) {
      return "another overlay's page";
    }
  }
  if (overlays_[static_cast<uint32_t>(id)].perms == 0) return "no backing page for this overlay";
  return nullptr;
}

MapAttr GuestEpt::special_attr(Gpa page, Hpa* out) const {
  *out = identity_hpa(page);
  for (const Overlay& o : overlays_) {
    if (o.at == page.value()) {
      *out = o.backing;
      return MapAttr{o.perms, arch::MemType::kWb};  // the backing page is microhv's RAM
    }
  }
  const MapAttr identity = layout_.identity_attr(page);
  if (apic_ == page.value()) return MapAttr{kPermR, identity.memtype};
  return identity;
}

bool GuestEpt::restore_identity(Gpa page) {
  Hpa out{0};
  const MapAttr attr = special_attr(page, &out);
  return tables_.map(page, out, kPageSize, attr);
}

bool GuestEpt::apply_special(uint64_t from, uint64_t to) {
  bool ok = true;
  auto apply = [&](uint64_t at) {
    if (at != kNowhere && at >= from && at < to) ok = restore_identity(Gpa(at)) && ok;
  };
  for (const Overlay& o : overlays_) apply(o.at);
  apply(apic_);
  return ok;
}

OverlayStatus GuestEpt::place(OverlayId id, Gpa gpa, const char** why) {
  const Gpa page = gpa.page_base();
  *why = nullptr;
  const auto i = static_cast<uint32_t>(id);
  if (i >= kOverlayCount) {
    *why = "no such overlay";
    return OverlayStatus::kRefused;
  }
  Overlay& o = overlays_[i];
  if (o.at == page.value()) return OverlayStatus::kPlaced;
  if ((*why = refusal(id, page)) != nullptr) return OverlayStatus::kRefused;
  // Where nothing is mapped yet (high MMIO, on demand) the chunk around the
  // page is mapped first, from the on-demand budget: when the overlay moves
  // on, its page folds back into the chunk's large page instead of leaving
  // tables behind that map that one page.
  PageTables::Translation now{};
  bool reclaimed = false;
  if (page.value() >= mapped_until_ && !tables_.translate(page, &now) &&
      !fill_on_demand(page, &reclaimed)) {
    *why = "out of page-table pages";
    return OverlayStatus::kFailed;
  }
  // The new mapping first: if it cannot be made, nothing has changed and
  // the overlay stays where it was.
  if (!tables_.map(page, o.backing, kPageSize, MapAttr{o.perms, arch::MemType::kWb})) {
    *why = "out of page-table pages";
    return OverlayStatus::kFailed;
  }
  const uint64_t old = o.at;
  __atomic_store_n(&o.at, page.value(), __ATOMIC_RELEASE);
  // The old page's leaf exists (4 KiB), so restoring it allocates nothing;
  // the tables the overlay split fold back into their large page here.
  if (old != kNowhere) restore_identity(Gpa(old));
  return OverlayStatus::kPlaced;
}

bool GuestEpt::remove(OverlayId id) {
  const auto i = static_cast<uint32_t>(id);
  if (i >= kOverlayCount || overlays_[i].at == kNowhere) return false;
  const uint64_t old = overlays_[i].at;
  __atomic_store_n(&overlays_[i].at, kNowhere, __ATOMIC_RELEASE);
  restore_identity(Gpa(old));
  return true;
}

bool GuestEpt::protect_apic_page(Gpa page) {
  const GpaKind k = layout_.kind(page);
  if (k == GpaKind::kBeyondWidth || k == GpaKind::kHidden || is_overlay_page(page)) return false;
  const uint64_t old = apic_;
  __atomic_store_n(&apic_, page.page_base().value(), __ATOMIC_RELEASE);
  if (restore_identity(page.page_base())) {
    if (old != kNowhere && old != apic_) restore_identity(Gpa(old));
    return true;
  }
  __atomic_store_n(&apic_, old, __ATOMIC_RELEASE);
  return false;
}

bool GuestEpt::is_guest_ram(Gpa gpa, uint64_t len) const {
  if (!range_is_guest_ram(layout_, gpa, len)) return false;
  const uint64_t first = gpa.page_base().value();
  const uint64_t last = (gpa + (len - 1)).page_base().value();
  const Optional<Gpa> apic = apic_page();
  for (uint64_t p = first;; p += kPageSize) {
    if (is_overlay_page(Gpa(p)) || apic == Optional<Gpa>(Gpa(p))) return false;
    if (p == last) return true;
  }
}

EptFaultInfo GuestEpt::classify(Gpa gpa, uint64_t q) {
  switch (layout_.kind(gpa)) {
    case GpaKind::kBeyondWidth:
      return {EptFault::kInjectGp, "beyond the guest's physical address width"};
    case GpaKind::kHidden:
      return {EptFault::kInjectGp, "microhv's memory"};
    case GpaKind::kRam:
    case GpaKind::kMmio:
      break;
  }
  const Gpa page = gpa.page_base();
  const bool apic = apic_page() == Optional<Gpa>(page);
  if (apic && (q & ept_qual::kWrite) != 0) {
    return {EptFault::kEmulateApicWrite, "a write to the local APIC page"};
  }
  const uint8_t needed = static_cast<uint8_t>(((q & ept_qual::kRead) != 0 ? kPermR : 0) |
                                              ((q & ept_qual::kWrite) != 0 ? kPermW : 0) |
                                              ((q & ept_qual::kFetch) != 0 ? kPermX : 0));
  const uint8_t allowed_then = static_cast<uint8_t>((q >> 3) & 7);
  if (needed == 0 || (allowed_then & needed) == needed) {
    return {EptFault::kStop, "an EPT violation for an access the entry allowed"};
  }
  PageTables::Translation now{};
  const bool present = tables_.translate(gpa, &now);
  if (present && (now.attr.perms & needed) == needed) {
    return {EptFault::kRetry, "EPT allows the access now (it changed since)"};
  }
  if (is_overlay_page(page)) {
    return {EptFault::kInjectGp, (q & ept_qual::kWrite) != 0 ? "a write to an overlay page"
                                                             : "an access an overlay page denies"};
  }
  if (apic) return {EptFault::kInjectGp, "an instruction fetch from the local APIC page"};
  if (!present && gpa.value() >= mapped_until_) {
    return {EptFault::kMapOnDemand, "MMIO above the eager map, mapped on demand"};
  }
  return {EptFault::kStop, present ? "an access EPT denies on a page microhv maps for the guest"
                                   : "a guest page microhv maps is not present"};
}

uint64_t GuestEpt::chunk_size() const {
  return arch::level_page_size(tables_.max_leaf_level() + 1);
}

void GuestEpt::chunk_of(Gpa gpa, uint64_t* from, uint64_t* to) const {
  const uint64_t top = layout_.top();
  const uint64_t chunk = chunk_size();
  *from = align_down(gpa.value(), chunk);
  *to = top - *from > chunk ? *from + chunk : top;
  if (*from < mapped_until_) *from = mapped_until_;
}

bool GuestEpt::map_chunk(Gpa gpa) {
  uint64_t from = 0, to = 0;
  chunk_of(gpa, &from, &to);
  return map_identity(tables_, layout_, from, to) && apply_special(from, to);
}

void GuestEpt::reclaim_on_demand() {
  const uint64_t top = layout_.top();
  const uint64_t before = tables_.tables_allocated();
  tables_.unmap(mapped_until_, top - mapped_until_);  // frees tables only: cannot fail
  // The special pages up there get their chunks back at once (an overlay's
  // chunk is always mapped: its page folds back when it leaves). Tables
  // were just freed, so this cannot run out; if it did, the page alone.
  auto remap = [&](uint64_t at) {
    if (at == kNowhere || at < mapped_until_ || at >= top) return;
    if (!map_chunk(Gpa(at))) restore_identity(Gpa(at));
  };
  for (const Overlay& o : overlays_) remap(o.at);
  remap(apic_);
  on_demand_tables_ +=
      static_cast<int64_t>(tables_.tables_allocated()) - static_cast<int64_t>(before);
  if (on_demand_tables_ < 0) on_demand_tables_ = 0;
  ++reclaims_;
}

bool GuestEpt::fill_on_demand(Gpa gpa, bool* reclaimed) {
  *reclaimed = false;
  if (gpa.value() < mapped_until_ || gpa.value() >= layout_.top()) return false;
  // One chunk needs a table per level at most, unless MTRR boundaries split it.
  if (on_demand_tables_ + 3 > static_cast<int64_t>(kOnDemandTables)) {
    reclaim_on_demand();
    *reclaimed = true;
  }
  for (;;) {
    const uint64_t before = tables_.tables_allocated();
    const bool ok = map_chunk(gpa);
    on_demand_tables_ +=
        static_cast<int64_t>(tables_.tables_allocated()) - static_cast<int64_t>(before);
    if (ok) return true;
    if (*reclaimed) return false;
    reclaim_on_demand();
    *reclaimed = true;
  }
}

}  // namespace microhv::vmx
