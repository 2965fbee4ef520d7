// Which optional VT-x features microhv uses on this processor, decided from
// the capability MSRs alone (SDM Vol. 3D Appendix A), with a fallback for
// each optional one and one line naming what is missing when microhv cannot
// run at all. Portable and unit-tested over the capability matrix
// (tests/unit/vmx_features.cpp); the host logs `refusal` and stays out.
#pragma once

#include <stdint.h>

#include "vmx/controls.hpp"

namespace microhv::vmx {

// INVEPT / INVVPID operand types (SDM Vol. 3C 31.3, "INVEPT", "INVVPID").
enum class InveptType : uint8_t {
  kNone = 0,
  kSingleContext = invept_type::kSingleContext,
  kAllContexts = invept_type::kAllContexts,
};
enum class InvvpidType : uint8_t {
  kNone = 0xFF,
  kIndividualAddress = 0,
  kSingleContext = invvpid_type::kSingleContext,
  kAllContexts = invvpid_type::kAllContexts,
  kSingleContextRetainingGlobals = 3,
};

struct FeatureDecision {
  // nullptr when microhv can run; otherwise one line for the user naming
  // the missing capability, the MSR bit that says so and what to do.
  const char* refusal = nullptr;
  // When refused for the basic controls: what compute_controls() could not get.
  ControlSet controls{};

  // EPT. Largest leaf microhv may map: 3 = 1 GiB (EPT_VPID_CAP bit 17),
  // 2 = 2 MiB (bit 16), 1 = 4 KiB only. (A leaf the processor does not
  // support is an EPT misconfiguration, SDM 29.3.3.1.)
  unsigned ept_max_leaf_level = 1;
  bool ept_memtype_wb = false;  // EPTP memory type WB (bit 14), else UC (bit 8)
  // The INVEPT type microhv issues after changing EPT: single-context
  // (bit 25; microhv has one EPTP) when supported, else all-context (bit 26).
  InveptType invept = InveptType::kNone;

  // VPID (PROCBASED_CTLS2 bit 5) only with a usable INVVPID (EPT_VPID_CAP
  // bit 32 plus single-context bit 41 or all-context bit 42), which microhv
  // needs after emulated CR0/CR4 writes and INIT. Fallback: no VPID (every
  // VM entry and exit then flushes the guest's linear translations).
  bool vpid = false;
  InvvpidType invvpid = InvvpidType::kNone;

  bool unrestricted_guest = false;  // required (PROCBASED_CTLS2 bit 7)

  // Guest activity states microhv may enter (IA32_VMX_MISC bits 6-8). Without
  // wait-for-SIPI, an INITed VP is held in microhv until its SIPI arrives
  // (SIPI emulated) instead of entering the guest in that state.
  bool activity_hlt = false;
  bool activity_shutdown = false;
  bool activity_wait_for_sipi = false;

  // Instructions the guest gets natively when the control exists (else #UD).
  bool xsaves = false;           // PROCBASED_CTLS2 bit 20; needs the XSS-exiting bitmap written (0)
  bool rdtscp = false;           // bit 3
  bool invpcid = false;          // bit 12
  bool user_wait_pause = false;  // bit 26

  // VMX-preemption timer (PINBASED_CTLS bit 6) and its rate: it counts down
  // once every 2^rate TSC ticks (IA32_VMX_MISC bits 4:0).
  bool preemption_timer = false;
  uint8_t preemption_timer_rate = 0;
  // MONITOR and MWAIT exiting (PROCBASED_CTLS bits 29 and 10, both needed):
  // the guest's MONITOR/MWAIT exit and #UD, as CPUID says they do not exist.
  // Without them they run natively: a guest that ignores CPUID may then
  // sleep in a C-state where its synthetic timers do not wake it.
  bool monitor_mwait_exiting = false;
  // Monitor trap flag (PROCBASED_CTLS bit 27): string I/O on the test device
  // port is stepped natively with it; without it such I/O stops the guest.
  bool mtf = false;

  bool usable() const { return refusal == nullptr; }
};

FeatureDecision decide_features(const VmxCapabilities& caps);

// The largest EPT leaf the processor supports (FeatureDecision::ept_max_leaf_level).
unsigned ept_leaf_level(uint64_t ept_vpid_cap);

}  // namespace microhv::vmx
