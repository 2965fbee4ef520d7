// A guest EPT on fake memory for host tests: a small machine's layout
// (RAM below 640 KiB and from 1 MiB to 256 MiB, microhv's memory hidden at
// 0xDEA9000, MMIO elsewhere, a 40-bit guest), the real GuestEpt on it, and
// the EptFaults answers the back end would give (without the lock and
// the shoot-down, which it counts).
#pragma once

#include <catch2/catch.hpp>
#include <memory>

#include "tests/unit/fake_phys.hpp"
#include "vmx/exits.hpp"
#include "vmx/guest_ept.hpp"

namespace microhv::test {

inline constexpr uint64_t kRigHiddenBase = 0xDEA9000, kRigHiddenSize = 0x280000;
inline constexpr uint64_t kRigOverlayBacking = 0x7777000;  // "microhv's" hypercall page
inline constexpr uint64_t kRigTscBacking = 0x7778000;      // and its reference TSC page

struct EptRig final : public vmx::EptFaults {
  explicit EptRig(unsigned address_bits = 40, unsigned max_leaf = 3,
                  const vmx::MtrrSnapshot* mtrrs = nullptr, size_t table_limit = 4096)
      : mem(table_limit), limit_(table_limit) {
    regions[0] = {Hpa(0), 0xA0000, true};
    regions[1] = {Hpa(0x100000), 0xFF00000, true};
    regions[2] = {Hpa(0xFEC00000), 0x1000, false};
    layout.regions = regions;
    layout.region_count = vmx::normalize_regions(regions, 3);
    layout.mtrrs = mtrrs;
    layout.address_bits = address_bits;
    layout.low_limit = vmx::identity_limit(regions, layout.region_count, address_bits);
    REQUIRE(layout.hide(Hpa(kRigHiddenBase), kRigHiddenSize));
    ept = std::make_unique<vmx::GuestEpt>(layout, mem, mem, max_leaf);
    ept->set_overlay_backing(OverlayId::kHypercallPage, Hpa(kRigOverlayBacking),
                             vmx::kPermR | vmx::kPermX);
    ept->set_overlay_backing(OverlayId::kReferenceTscPage, Hpa(kRigTscBacking), vmx::kPermR);
    REQUIRE(ept->build());
  }

  EptRig(const EptRig&) = delete;  // the layout and the GuestEpt point into it
  EptRig& operator=(const EptRig&) = delete;

  vmx::EptFaultInfo on_violation(Gpa gpa, uint64_t qualification) override {
    vmx::EptFaultInfo f = ept->classify(gpa, qualification);
    if (f.action != vmx::EptFault::kMapOnDemand) return f;
    bool reclaimed = false;
    if (!ept->fill_on_demand(gpa, &reclaimed)) return {vmx::EptFault::kStop, "out of tables"};
    shoot_downs += reclaimed ? 1 : 0;
    return {vmx::EptFault::kRetry, f.what};
  }
  unsigned walk(Gpa gpa, uint64_t entries[4]) override {
    return ept->tables().walk_entries(gpa.value(), entries);
  }

  // Pages the pool can still hand out: fresh ones plus the free lists.
  uint64_t pool_free() const { return (mem_limit() - mem.pages.size()) + ept->tables_free(); }
  size_t mem_limit() const { return limit_; }

  FakePhys mem;
  vmx::MemRegion regions[3];
  vmx::EptLayout layout;
  std::unique_ptr<vmx::GuestEpt> ept;
  int shoot_downs = 0;

 private:
  size_t limit_ = 4096;
};

}  // namespace microhv::test
