// The guest's EPT while it runs (portable; the back end adds the lock, INVEPT
// and the shoot-down, vmx/hw/ept.cpp): the identity map of EptLayout, the
// overlay pages the core places (kernel/platform/overlays.hpp), the xAPIC
// page mapped read-only, high MMIO mapped on demand, and what an EPT
// violation means.
//
// Bounded: every table a guest can make microhv allocate is counted against
// a limit and reused. An overlay splits at most two large pages (a PD and a
// PT; three more in an unmapped high region) and, once it moves on, the
// identity mapping it leaves folds back into the large page and the tables
// return to the free lists (PageTables), so moving an overlay any number of
// times leaves the pool as it was. High MMIO mapped on demand holds at most
// kOnDemandTables tables; past that, all of it is unmapped (every CPU
// invalidates) and filled again as the guest touches it.
//
// The guest's view (GuestMemory): RAM it owns, minus the overlay pages and
// the xAPIC page -- an overlay hides the RAM under it from the guest, so it
// hides it from the core too (the core never reads or writes RAM the guest
// cannot see).
#pragma once

#include <stdint.h>

#include "kernel/base/optional.hpp"
#include "kernel/platform/overlays.hpp"
#include "vmx/ept.hpp"

namespace microhv::vmx {

// What an EPT violation means and what microhv does about it.
enum class EptFault : uint8_t {
  kEmulateApicWrite,  // a write to the xAPIC page (read-only in EPT): emulated
  kInjectGp,          // microhv's memory, an overlay written, beyond the guest's width: #GP(0)
  kRetry,             // EPT allows the access now (it changed since): invalidate, enter again
  kMapOnDemand,       // high MMIO not mapped yet: map it, enter again
  kStop,              // nothing microhv maps explains it: stop the guest
};
struct EptFaultInfo {
  EptFault action;
  const char* what;  // for the log line
};

// EPT violation exit qualification (SDM Vol. 3C 28.2.1, Table 28-7).
namespace ept_qual {
inline constexpr uint64_t kRead = 1ull << 0;
inline constexpr uint64_t kWrite = 1ull << 1;
inline constexpr uint64_t kFetch = 1ull << 2;
inline constexpr uint64_t kWasReadable = 1ull << 3;  // the entry's bits 2:0 at the time, in 5:3
inline constexpr uint64_t kWasWritable = 1ull << 4;
inline constexpr uint64_t kWasExecutable = 1ull << 5;
inline constexpr uint64_t kNmiUnblocking = 1ull << 12;  // the access was an IRET unblocking NMIs
}  // namespace ept_qual

class GuestEpt {
 public:
  // High MMIO tables mapped on demand before they are all reclaimed.
  static constexpr uint64_t kOnDemandTables = 64;
  // The part above low_limit is built eagerly when it costs at most this
  // many tables (1 GiB leaves and a width up to 45 bits), else on demand.
  static constexpr uint64_t kEagerHighTables = 64;

  GuestEpt(const EptLayout& layout, PageAllocator& alloc, PhysAccess& phys,
           unsigned max_leaf_level);

  // The root and the eager part. False when out of tables.
  bool build();
  Hpa root() const { return tables_.root(); }
  // Everything below this is mapped since build(); above it up to
  // layout.top() on demand.
  uint64_t mapped_until() const { return mapped_until_; }

  // The microhv page behind overlay `id` and the permissions it gets.
  void set_overlay_backing(OverlayId id, Hpa page, uint8_t perms);
  // Maps overlay `id` at `page` (first the on-demand chunk around it, when
  // nothing is mapped there yet), then restores the identity mapping where
  // it was. Refused (nothing changes) beyond the width, on microhv's memory,
  // the xAPIC page or another overlay's page: *why says which. Failed (out
  // of tables; nothing changes either: the overlay stays where it was).
  // Mapping that chunk may reclaim the on-demand tables (reclaims() moves):
  // then every CPU must invalidate, whatever the status.
  OverlayStatus place(OverlayId id, Gpa page, const char** why);
  // True when the EPT changed (the overlay was placed).
  bool remove(OverlayId id);
  // Lock-free reads (other CPUs' exit paths).
  Optional<Gpa> overlay_at(OverlayId id) const;
  bool is_overlay_page(Gpa gpa) const;

  // The xAPIC page read-only (writes exit and are emulated). False when the
  // page cannot be (beyond the width, hidden, an overlay, out of tables).
  bool protect_apic_page(Gpa page);
  Optional<Gpa> apic_page() const;

  // GuestMemory's question: [gpa, gpa+len) is RAM the guest owns and sees
  // as RAM (no overlay page, no xAPIC page, nothing hidden).
  bool is_guest_ram(Gpa gpa, uint64_t len) const;

  // What the EPT violation at `gpa` with `qualification` means (decided on
  // the tables as they are now).
  EptFaultInfo classify(Gpa gpa, uint64_t qualification);
  // Maps the on-demand chunk holding `gpa`. *reclaimed: every on-demand
  // table was unmapped first (the caller must invalidate every CPU).
  bool fill_on_demand(Gpa gpa, bool* reclaimed);

  uint64_t tables_in_use() const { return tables_.tables_allocated(); }
  uint64_t tables_free() const { return tables_.tables_free(); }
  uint64_t on_demand_tables() const { return static_cast<uint64_t>(on_demand_tables_); }
  uint64_t reclaims() const { return reclaims_; }
  PageTables& tables() { return tables_; }
  const EptLayout& layout() const { return layout_; }

 private:
  struct Overlay {
    Hpa backing{0};
    uint8_t perms = 0;
    uint64_t at = kNowhere;  // raw GPA, atomic: read without the lock
  };
  static constexpr uint64_t kNowhere = ~0ull;

  const char* refusal(OverlayId id, Gpa page) const;
  // What the page maps to now: an overlay, the xAPIC page or the identity.
  MapAttr special_attr(Gpa page, Hpa* out) const;
  bool restore_identity(Gpa page);
  // Re-applies the overlays and the xAPIC page inside [from, to).
  bool apply_special(uint64_t from, uint64_t to);
  void reclaim_on_demand();
  uint64_t chunk_size() const;
  // The part of the on-demand chunk holding `gpa` above mapped_until_.
  void chunk_of(Gpa gpa, uint64_t* from, uint64_t* to) const;
  // Identity-maps that chunk and re-applies the special pages in it.
  bool map_chunk(Gpa gpa);

  const EptLayout& layout_;
  PageTables tables_;
  uint64_t mapped_until_ = 0;
  Overlay overlays_[kOverlayCount];
  uint64_t apic_ = kNowhere;
  int64_t on_demand_tables_ = 0;
  uint64_t reclaims_ = 0;
};

// Tables an eager identity map of [from, to) needs at most with leaves up to
// `max_leaf_level` (table counts per level, no splits).
uint64_t identity_table_cost(uint64_t from, uint64_t to, unsigned max_leaf_level);

}  // namespace microhv::vmx
