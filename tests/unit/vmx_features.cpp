// Feature decisions (vmx/features.hpp) from the capability MSRs, for every
// set of the capability matrix and for single-bit variants of one: what
// microhv uses, its fallback, or the one-line refusal (SDM Vol. 3D
// Appendix A names every bit).
#include <catch2/catch.hpp>
#include <cstring>

#include "arch/vmx/vmcs.hpp"
#include "vmx/entry_check/cap_matrix.hpp"
#include "vmx/features.hpp"

using namespace microhv::vmx;

namespace {

struct Expected {
  const char* name;
  const char* refusal;  // a part of the refusal line, or nullptr when usable
  unsigned ept_leaf;    // 3 = 1 GiB, 2 = 2 MiB
  bool wait_for_sipi, xsaves, mtf;
  uint8_t timer_rate;
};

constexpr const char* kNeedsUg = "lacks unrestricted guest (IA32_VMX_PROCBASED_CTLS2 bit 7";
constexpr const char* kNeedsEpt = "lacks EPT (IA32_VMX_PROCBASED_CTLS2 bit 1";

const Expected kExpected[] = {
    {"real:core-i7-9750h", nullptr, 3, true, true, true, 7},
    {"real:ivy-bridge-306a9", nullptr, 2, true, false, true, 5},
    {"bochs:corei5_arrandale_m520", nullptr, 2, true, false, false, 0},
    {"bochs:corei7_sandy_bridge_2600k", nullptr, 2, true, false, false, 0},
    {"bochs:corei7_ivy_bridge_3770k", nullptr, 2, true, false, false, 0},
    {"bochs:corei7_haswell_4770", nullptr, 3, true, false, false, 0},
    {"bochs:broadwell_ult", nullptr, 3, true, false, false, 0},
    {"bochs:corei7_skylake_x", nullptr, 3, true, true, false, 0},
    {"bochs:corei3_cnl", nullptr, 3, true, true, false, 0},
    {"bochs:corei7_icelake_u", nullptr, 3, true, true, true, 0},
    {"bochs:tigerlake", nullptr, 3, true, true, true, 0},
    {"bochs:corei5_lynnfield_750", kNeedsUg, 0, false, false, false, 0},
    {"bochs:core2_penryn_t9600", kNeedsEpt, 0, false, false, false, 0},
    {"bochs:bx_generic", kNeedsEpt, 0, false, false, false, 0},
    {"qemu-kvm:Skylake-Server", nullptr, 3, false, false, true, 5},
    {"qemu-kvm:Cascadelake-Server", nullptr, 3, false, false, true, 5},
    {"qemu-kvm:Icelake-Server", nullptr, 3, false, false, true, 5},
    {"qemu-kvm:SapphireRapids", nullptr, 3, false, true, true, 5},
    {"qemu-kvm:Nehalem", kNeedsUg, 0, false, false, false, 0},
    {"qemu-kvm:Penryn", kNeedsEpt, 0, false, false, false, 0},
};

VmxCapabilities tigerlake() {
  const MatrixEntry* e = find_capability_set("bochs:tigerlake");
  REQUIRE(e != nullptr);
  return e->caps.msrs;
}

}  // namespace

TEST_CASE("features: every set of the capability matrix gets its expected decision") {
  REQUIRE(sizeof(kExpected) / sizeof(kExpected[0]) == capability_matrix_size());
  for (const Expected& x : kExpected) {
    const MatrixEntry* e = find_capability_set(x.name);
    REQUIRE(e != nullptr);
    const FeatureDecision d = decide_features(e->caps.msrs);
    INFO(x.name << ": " << (d.refusal != nullptr ? d.refusal : "usable"));
    if (x.refusal != nullptr) {
      REQUIRE_FALSE(d.usable());
      CHECK(std::strstr(d.refusal, x.refusal) != nullptr);
      CHECK(std::strstr(d.refusal, "microhv needs it") != nullptr);
      continue;
    }
    REQUIRE(d.usable());
    CHECK(d.unrestricted_guest);
    CHECK(d.ept_max_leaf_level == x.ept_leaf);
    CHECK(d.ept_memtype_wb);
    // Every processor here has single-context INVEPT and INVVPID.
    CHECK(d.invept == InveptType::kSingleContext);
    CHECK(d.vpid);
    CHECK(d.invvpid == InvvpidType::kSingleContext);
    CHECK(d.activity_hlt);
    CHECK(d.activity_wait_for_sipi == x.wait_for_sipi);
    CHECK(d.xsaves == x.xsaves);
    CHECK(d.mtf == x.mtf);
    CHECK(d.preemption_timer);
    CHECK(d.preemption_timer_rate == x.timer_rate);
    CHECK(d.rdtscp);
    CHECK_FALSE(d.user_wait_pause);
    CHECK(d.monitor_mwait_exiting);  // in every VT-x processor's allowed-1 settings
  }
}

TEST_CASE("features: MONITOR/MWAIT exiting from PROCBASED_CTLS bits 29 and 10, else native") {
  VmxCapabilities c = tigerlake();
  REQUIRE(decide_features(c).monitor_mwait_exiting);
  c.true_procbased &= ~(static_cast<uint64_t>(proc::kMwaitExiting) << 32);
  const FeatureDecision d = decide_features(c);
  CHECK(d.usable());  // optional: microhv still runs, with MWAIT native
  CHECK_FALSE(d.monitor_mwait_exiting);
  CHECK((d.controls.proc.value & proc::kMwaitExiting) == 0);
  CHECK((d.controls.proc.value & proc::kMonitorExiting) != 0);
}

TEST_CASE("features: EPT page sizes follow EPT_VPID_CAP bits 16 and 17") {
  VmxCapabilities c = tigerlake();
  CHECK(decide_features(c).ept_max_leaf_level == 3);
  c.ept_vpid_cap &= ~ept_cap::kPage1G;
  CHECK(decide_features(c).ept_max_leaf_level == 2);
  c.ept_vpid_cap &= ~ept_cap::kPage2M;
  CHECK(decide_features(c).ept_max_leaf_level == 1);
  c.ept_vpid_cap |= ept_cap::kPage1G;  // 1 GiB without 2 MiB: still 4 KiB below it
  CHECK(decide_features(c).ept_max_leaf_level == 3);
}

TEST_CASE("features: INVEPT and INVVPID types, with VPID dropped when INVVPID is unusable") {
  VmxCapabilities c = tigerlake();
  c.ept_vpid_cap &= ~ept_cap::kInveptSingle;
  CHECK(decide_features(c).invept == InveptType::kAllContexts);
  c.ept_vpid_cap &= ~ept_cap::kInveptAll;
  CHECK(std::strstr(decide_features(c).refusal, "INVEPT") != nullptr);

  c = tigerlake();
  c.ept_vpid_cap &= ~ept_cap::kInvvpidSingle;
  FeatureDecision d = decide_features(c);
  CHECK(d.vpid);
  CHECK(d.invvpid == InvvpidType::kAllContexts);
  c.ept_vpid_cap &= ~ept_cap::kInvvpidAll;  // individual-address only is not enough
  d = decide_features(c);
  CHECK(d.usable());
  CHECK_FALSE(d.vpid);
  CHECK(d.invvpid == InvvpidType::kNone);

  c = tigerlake();
  c.procbased2 &= ~(static_cast<uint64_t>(proc2::kEnableVpid) << 32);
  d = decide_features(c);
  CHECK(d.usable());
  CHECK_FALSE(d.vpid);
}

TEST_CASE("features: activity states and the preemption timer from IA32_VMX_MISC") {
  VmxCapabilities c = tigerlake();
  c.misc = (c.misc & ~0x1FFull) | (1ull << 6) | 3;  // HLT only, rate 3
  const FeatureDecision d = decide_features(c);
  CHECK(d.activity_hlt);
  CHECK_FALSE(d.activity_shutdown);
  CHECK_FALSE(d.activity_wait_for_sipi);
  CHECK(d.preemption_timer_rate == 3);
  c.true_pinbased &= ~(static_cast<uint64_t>(pin::kPreemptionTimer) << 32);
  CHECK_FALSE(decide_features(c).preemption_timer);
}

TEST_CASE("features: what microhv cannot run without is refused in one line") {
  VmxCapabilities c = tigerlake();
  c.ept_vpid_cap &= ~ept_cap::kPageWalk4;
  CHECK(std::strstr(decide_features(c).refusal, "4-level EPT page walks") != nullptr);

  c = tigerlake();
  c.ept_vpid_cap &= ~(ept_cap::kMemTypeWb | ept_cap::kMemTypeUc);
  CHECK(std::strstr(decide_features(c).refusal, "neither WB nor UC") != nullptr);
  c.ept_vpid_cap |= ept_cap::kMemTypeUc;
  CHECK_FALSE(decide_features(c).ept_memtype_wb);

  c = tigerlake();
  c.true_procbased &= ~(static_cast<uint64_t>(proc::kActivateSecondary) << 32);
  CHECK(std::strstr(decide_features(c).refusal, "secondary processor-based controls") != nullptr);

  // Without the TRUE_* MSRs the legacy PROCBASED_CTLS forces CR3 exiting.
  c = tigerlake();
  c.basic &= ~kBasicTrueControls;
  const FeatureDecision d = decide_features(c);
  REQUIRE_FALSE(d.usable());
  CHECK(std::strstr(d.refusal, "CR3-load/store exiting") != nullptr);
  CHECK(d.controls.proc.conflict != 0);
  for (const char* line : {d.refusal}) CHECK(std::strchr(line, '\n') == nullptr);
}
