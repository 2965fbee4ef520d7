// The EPT checker (vmx/entry_check/ept_check.hpp, SDM Vol. 3C 29.3.3.1):
// the guest EPT microhv builds with the page sizes the feature decision
// allows has no misconfiguration on any accepted capability set, and each
// kind of misconfiguration is found.
#include <catch2/catch.hpp>
#include <vector>

#include "tests/unit/vmx_entry_check_ept_memory.hpp"
#include "vmx/entry_check/cap_matrix.hpp"
#include "vmx/entry_check/ept_check.hpp"
#include "vmx/features.hpp"

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::test;

TEST_CASE("ept check: the guest EPT built with the decided page sizes is valid everywhere") {
  for (uint32_t i = 0; i < capability_matrix_size(); ++i) {
    const MatrixEntry& e = capability_matrix(i);
    const FeatureDecision d = decide_features(e.caps.msrs);
    if (!d.usable()) continue;
    INFO(e.name);
    EptArena mem;
    const uint64_t eptp = build_test_guest_ept(mem, d.ept_max_leaf_level, e.caps);
    const EptCheckReport r = check_ept(mem, eptp, e.caps);
    INFO(describe(r));
    CHECK(r.ok());
    CHECK(r.entries_checked > 8);
  }
}

TEST_CASE("ept check: each misconfiguration is reported") {
  const MatrixEntry* arr = find_capability_set("bochs:corei5_arrandale_m520");  // 2M, no 1G
  REQUIRE(arr != nullptr);
  struct Case {
    uint64_t entry;
    unsigned level;
    const char* what;
  } const cases[] = {
      {0x200000 | 2 | (6 << 3) | (1 << 7), 2, "write permission without read"},
      {0x200000 | 7 | (2 << 3) | (1 << 7), 2, "reserved EPT memory type"},
      {0x40000000 | 7 | (6 << 3) | (1 << 7), 3, "1-GByte page without EPT_VPID_CAP bit 17"},
      {0x201000 | 7 | (6 << 3) | (1 << 7), 2, "not aligned"},
      {(1ull << 40) | 7 | (6 << 3), 1, "above MAXPHYADDR"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    EptArena mem;
    const uint64_t eptp = mem.single_entry_ept(c.entry, c.level);
    const EptCheckReport r = check_ept(mem, eptp, arr->caps);
    REQUIRE(r.count == 1);
    CHECK(std::string(r.issues[0].what).find(c.what) != std::string::npos);
    CHECK(r.issues[0].level == c.level);
  }
  // Execute-only is legal only with EPT_VPID_CAP bit 0.
  CapabilitySet no_x = arr->caps;
  no_x.msrs.ept_vpid_cap &= ~ept_cap::kExecuteOnly;
  EptArena mem;
  const uint64_t eptp = mem.single_entry_ept(0x5000 | 4 | (6 << 3), 1);
  CHECK(check_ept(mem, eptp, arr->caps).ok());
  CHECK(check_ept(mem, eptp, no_x).count == 1);
}
