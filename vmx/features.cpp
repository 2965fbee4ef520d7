#include "vmx/features.hpp"

#include "arch/vmx/vmcs.hpp"
#include "vmx/entry_check/capabilities.hpp"

namespace microhv::vmx {
namespace {

constexpr const char* kNoSecondary =
    "VT-x lacks secondary processor-based controls (IA32_VMX_PROCBASED_CTLS bit 31, allowed-1 "
    "at MSR bit 63): microhv needs EPT and unrestricted guest from them; use a newer CPU or "
    "enable them in the hypervisor below";
constexpr const char* kNoEpt =
    "VT-x lacks EPT (IA32_VMX_PROCBASED_CTLS2 bit 1, allowed-1 at MSR bit 33): microhv needs "
    "it; use a newer CPU or enable it in the hypervisor below";
constexpr const char* kNoUnrestricted =
    "VT-x lacks unrestricted guest (IA32_VMX_PROCBASED_CTLS2 bit 7, allowed-1 at MSR bit 39): "
    "microhv needs it; use a newer CPU or enable it in the hypervisor below";
constexpr const char* kNoEptWalk4 =
    "VT-x lacks 4-level EPT page walks (IA32_VMX_EPT_VPID_CAP bit 6): microhv needs them; use "
    "a newer CPU or enable them in the hypervisor below";
constexpr const char* kNoEptMemType =
    "VT-x allows neither WB nor UC EPT paging structures (IA32_VMX_EPT_VPID_CAP bits 14 and 8): "
    "microhv needs one; use another CPU or hypervisor below";
constexpr const char* kNoInvept =
    "VT-x lacks INVEPT with a single-context or all-context type (IA32_VMX_EPT_VPID_CAP bits "
    "20, 25, 26): microhv needs it to change EPT safely; use a newer CPU or enable it in the "
    "hypervisor below";
constexpr const char* kBadControls =
    "VT-x cannot provide the VMX controls microhv needs (NMI exiting with virtual NMIs, MSR and "
    "I/O bitmaps, EFER/PAT/debug-control load and save, 64-bit host) without also forcing "
    "exits it does not handle (IA32_VMX_(TRUE_)PINBASED/PROCBASED/EXIT/ENTRY_CTLS; without "
    "IA32_VMX_BASIC bit 55 CR3-load/store exiting is forced on); use a newer CPU or another "
    "hypervisor below";

constexpr uint32_t allowed1(uint64_t cap_msr) {
  return static_cast<uint32_t>(cap_msr >> 32);
}

// The refusal for what microhv cannot run without, or nullptr.
const char* missing_requirement(const VmxCapabilities& caps, const ControlSet& controls) {
  if ((allowed1(control_caps(caps).proc) & proc::kActivateSecondary) == 0) return kNoSecondary;
  const uint32_t secondary = allowed1(caps.procbased2);
  if ((secondary & proc2::kEnableEpt) == 0) return kNoEpt;
  if ((secondary & proc2::kUnrestrictedGuest) == 0) return kNoUnrestricted;
  const uint64_t ept = caps.ept_vpid_cap;
  if ((ept & ept_cap::kPageWalk4) == 0) return kNoEptWalk4;
  if ((ept & (ept_cap::kMemTypeWb | ept_cap::kMemTypeUc)) == 0) return kNoEptMemType;
  if ((ept & ept_cap::kInvept) == 0 ||
      (ept & (ept_cap::kInveptSingle | ept_cap::kInveptAll)) == 0) {
    return kNoInvept;
  }
  // The secondary controls are decided here, feature by feature; the rest
  // must come out of compute_controls() without a missing or forced bit.
  if (!controls.pin.ok() || !controls.proc.ok() || !controls.exit.ok() || !controls.entry.ok()) {
    return kBadControls;
  }
  return nullptr;
}

}  // namespace

unsigned ept_leaf_level(uint64_t ept_vpid_cap) {
  return (ept_vpid_cap & ept_cap::kPage1G) != 0   ? 3
         : (ept_vpid_cap & ept_cap::kPage2M) != 0 ? 2
                                                  : 1;
}

FeatureDecision decide_features(const VmxCapabilities& caps) {
  FeatureDecision d;
  d.controls = compute_controls(caps, true);
  d.refusal = missing_requirement(caps, d.controls);
  if (d.refusal != nullptr) return d;

  const uint64_t ept = caps.ept_vpid_cap;
  d.ept_max_leaf_level = ept_leaf_level(ept);
  d.ept_memtype_wb = (ept & ept_cap::kMemTypeWb) != 0;
  d.invept =
      (ept & ept_cap::kInveptSingle) != 0 ? InveptType::kSingleContext : InveptType::kAllContexts;

  const uint32_t secondary = allowed1(caps.procbased2);
  d.unrestricted_guest = true;
  if ((secondary & proc2::kEnableVpid) != 0 && (ept & ept_cap::kInvvpid) != 0) {
    if ((ept & ept_cap::kInvvpidSingle) != 0) {
      d.invvpid = InvvpidType::kSingleContext;
    } else if ((ept & ept_cap::kInvvpidAll) != 0) {
      d.invvpid = InvvpidType::kAllContexts;
    }
    d.vpid = d.invvpid != InvvpidType::kNone;
  }

  d.activity_hlt = (caps.misc & misc::kActivityHlt) != 0;
  d.activity_shutdown = (caps.misc & misc::kActivityShutdown) != 0;
  d.activity_wait_for_sipi = (caps.misc & misc::kActivityWaitForSipi) != 0;

  d.xsaves = (secondary & proc2::kEnableXsaves) != 0;
  d.rdtscp = (secondary & proc2::kEnableRdtscp) != 0;
  d.invpcid = (secondary & proc2::kEnableInvpcid) != 0;
  d.user_wait_pause = (secondary & proc2::kEnableUserWaitPause) != 0;

  const ControlCaps cc = control_caps(caps);
  d.preemption_timer = control_allowed(cc.pin, pin::kPreemptionTimer);
  d.preemption_timer_rate = static_cast<uint8_t>(caps.misc & misc::kPreemptionRateMask);
  d.mtf = control_allowed(cc.proc, proc::kMonitorTrapFlag);
  d.monitor_mwait_exiting = control_allowed(cc.proc, kMonitorMwaitExiting);
  return d;
}

}  // namespace microhv::vmx
