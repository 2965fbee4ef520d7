// Host-physical memory for EPT tests of the checker (a FakePhys at a fixed
// base) and the guest EPT microhv builds for a machine laid out like Bochs +
// OVMF with 224 MiB of RAM.
#pragma once

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "tests/unit/fake_phys.hpp"
#include "vmx/controls.hpp"
#include "vmx/entry_check/ept_check.hpp"
#include "vmx/guest_ept.hpp"
#include "vmx/page_tables.hpp"

namespace microhv::test {

using namespace microhv::vmx;

class EptArena final : public FakePhys {
 public:
  static constexpr uint64_t kBase = 0x7F000000;  // fake HPA of page 0

  EptArena() : FakePhys(1u << 20, kBase) {}
  Hpa new_page() {
    const Optional<Hpa> page = alloc_page();
    REQUIRE(page);
    return page.value();
  }

  // An EPT whose only present leaf is `entry` at `level` (4 KiB .. 1 GiB),
  // reached through well-formed tables; returns the EPTP.
  uint64_t single_entry_ept(uint64_t entry, unsigned level) {
    const Hpa root = new_page();
    Hpa t = root;
    for (unsigned l = 4; l > level; --l) {
      const Hpa next = new_page();
      table(t)[1] = next.value() | 7;
      t = next;
    }
    table(t)[1] = entry;
    return root.value() | (3 << 3) | 6;
  }
};

// The guest EPT as microhv builds it (GuestEpt::build), with leaves up to
// `max_leaf_level`; returns the EPTP the host would use.
inline uint64_t build_test_guest_ept(EptArena& mem, unsigned max_leaf_level,
                                     const CapabilitySet& caps) {
  MemRegion regions[] = {{Hpa(0), 0xA0000, true},
                         {Hpa(0x100000), 0xDF00000, true},
                         {Hpa(0xFEC00000), 0x1000, false},
                         {Hpa(0xFEE00000), 0x1000, false}};
  EptLayout layout;
  layout.regions = regions;
  layout.region_count = normalize_regions(regions, 4);
  layout.address_bits = guest_address_bits(caps.maxphyaddr);
  layout.low_limit = identity_limit(regions, layout.region_count, layout.address_bits);
  REQUIRE(layout.hide(Hpa(0xDE54000), 0x29E000));
  GuestEpt ept(layout, mem, mem, max_leaf_level);
  REQUIRE(ept.build());
  return make_eptp(ept.root().value(), caps.msrs.ept_vpid_cap);
}

inline std::string describe(const EptCheckReport& r) {
  std::string out;
  for (uint32_t i = 0; i < r.count && i < EptCheckReport::kMaxIssues; ++i) {
    char line[160];
    snprintf(line, sizeof(line), "  GPA 0x%llx level %u entry 0x%llx: %s\n",
             static_cast<unsigned long long>(r.issues[i].gpa), r.issues[i].level,
             static_cast<unsigned long long>(r.issues[i].entry), r.issues[i].what);
    out += line;
  }
  return out;
}

}  // namespace microhv::test
