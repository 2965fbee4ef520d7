// What a processor says about its VMX implementation: the capability MSRs
// (SDM Vol. 3D Appendix A) plus the CPUID facts the VM-entry checks need.
// Plain data and decoders, portable; the host reads the values, the tests
// take them from the capability matrix (vmx/entry_check/cap_matrix.hpp).
#pragma once

#include <stdint.h>

#include "vmx/controls.hpp"

namespace microhv::vmx {

struct CapabilitySet {
  VmxCapabilities msrs;     // 0x480-0x490 (absent ones read as 0)
  uint64_t vmfunc = 0;      // IA32_VMX_VMFUNC (0x491), 0 when it does not exist
  uint8_t maxphyaddr = 36;  // CPUID.80000008H:EAX[7:0]
  bool la57 = false;        // CPUID.(EAX=07H,ECX=0):ECX[16]: 57-bit linear addresses
};

// Which optional capability MSRs exist; reading one that does not is #GP
// (SDM Vol. 3D A.1, A.3.3, A.10, A.11):
//  - the TRUE_* controls MSRs (0x48D-0x490) when IA32_VMX_BASIC[55] = 1;
//  - IA32_VMX_PROCBASED_CTLS2 (0x48B) when the primary controls allow
//    "activate secondary controls" (bit 63 of 0x482);
//  - IA32_VMX_EPT_VPID_CAP (0x48C) only when the secondary controls allow
//    "enable EPT" or "enable VPID" (bit 33 or 37 of 0x48B);
//  - IA32_VMX_VMFUNC (0x491) only when they allow "enable VM functions"
//    (bit 45 of 0x48B).
struct PresentCapabilityMsrs {
  bool true_controls, procbased2, ept_vpid_cap, vmfunc;
};
constexpr PresentCapabilityMsrs present_capability_msrs(uint64_t basic, uint64_t procbased,
                                                        uint64_t procbased2) {
  const bool secondary = ((procbased >> 63) & 1) != 0;
  const uint32_t allowed2 = secondary ? static_cast<uint32_t>(procbased2 >> 32) : 0;
  return PresentCapabilityMsrs{((basic >> 55) & 1) != 0, secondary,
                               (allowed2 & ((1u << 1) | (1u << 5))) != 0,
                               (allowed2 & (1u << 13)) != 0};
}

// The four control MSRs VM entry checks the controls against: the TRUE_*
// forms when IA32_VMX_BASIC[55] says they exist (SDM Vol. 3D A.2).
struct ControlCaps {
  uint64_t pin, proc, exit, entry;
};
constexpr ControlCaps control_caps(const VmxCapabilities& c) {
  if ((c.basic & kBasicTrueControls) != 0) {
    return ControlCaps{c.true_pinbased, c.true_procbased, c.true_exit, c.true_entry};
  }
  return ControlCaps{c.pinbased, c.procbased, c.exit, c.entry};
}

// True when `value` sets only bits allowed1 permits and every bit allowed0
// requires (SDM Vol. 3D A.3).
constexpr bool controls_valid(uint64_t cap_msr, uint32_t value) {
  const uint32_t allowed0 = static_cast<uint32_t>(cap_msr);
  const uint32_t allowed1 = static_cast<uint32_t>(cap_msr >> 32);
  return (value & allowed0) == allowed0 && (value & ~allowed1) == 0;
}

// IA32_VMX_BASIC[56]: VM entry does not check the deliver-error-code bit of
// an injected hardware exception against its vector (SDM Vol. 3D A.1).
constexpr bool basic_any_error_code(uint64_t basic) {
  return ((basic >> 56) & 1) != 0;
}

// Whether IA32_VMX_MISC allows guest activity state `state` (0 active is
// always supported; 1 HLT, 2 shutdown, 3 wait-for-SIPI need bits 6, 7, 8).
constexpr bool activity_state_supported(uint64_t misc_msr, uint64_t state) {
  switch (state) {
    case 0:
      return true;
    case 1:
      return (misc_msr & misc::kActivityHlt) != 0;
    case 2:
      return (misc_msr & misc::kActivityShutdown) != 0;
    case 3:
      return (misc_msr & misc::kActivityWaitForSipi) != 0;
    default:
      return false;
  }
}

}  // namespace microhv::vmx
