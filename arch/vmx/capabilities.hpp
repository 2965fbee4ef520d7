// Bits of the VMX capability MSRs microhv decides by (Intel SDM Vol. 3D
// Appendix A): IA32_VMX_BASIC (A.1), IA32_VMX_MISC (A.6) and IA32_VMX_EPT_VPID_CAP (A.10). The
// MSR numbers are in arch/msr.hpp. Facts only, portable.
#pragma once

#include <stdint.h>

namespace microhv::vmx {

// IA32_VMX_BASIC.
inline constexpr uint64_t kBasicTrueControls = 1ull << 55;  // the TRUE_* control MSRs exist
constexpr uint32_t vmcs_revision(uint64_t basic) {
  return static_cast<uint32_t>(basic) & 0x7FFFFFFF;
}
constexpr uint32_t vmcs_region_size(uint64_t basic) {
  return static_cast<uint32_t>(basic >> 32) & 0x1FFF;
}

// IA32_VMX_MISC (SDM Vol. 3D A.6).
namespace misc {
inline constexpr uint64_t kPreemptionRateMask = 0x1F;  // timer ticks every 2^rate TSC ticks
inline constexpr uint64_t kStoresLma = 1ull << 5;
inline constexpr uint64_t kActivityHlt = 1ull << 6;
inline constexpr uint64_t kActivityShutdown = 1ull << 7;
inline constexpr uint64_t kActivityWaitForSipi = 1ull << 8;
inline constexpr unsigned kCr3TargetShift = 16;  // bits 24:16
inline constexpr uint64_t kCr3TargetMask = 0x1FF;
inline constexpr uint64_t kZeroLengthInjection = 1ull << 30;
}  // namespace misc

// IA32_VMX_EPT_VPID_CAP.
namespace ept_cap {
inline constexpr uint64_t kExecuteOnly = 1ull << 0;
inline constexpr uint64_t kPageWalk4 = 1ull << 6;
inline constexpr uint64_t kPageWalk5 = 1ull << 7;
inline constexpr uint64_t kMemTypeUc = 1ull << 8;
inline constexpr uint64_t kMemTypeWb = 1ull << 14;
inline constexpr uint64_t kPage2M = 1ull << 16;
inline constexpr uint64_t kPage1G = 1ull << 17;
inline constexpr uint64_t kInvept = 1ull << 20;
inline constexpr uint64_t kAccessDirty = 1ull << 21;  // accessed/dirty flags in EPT
inline constexpr uint64_t kInveptSingle = 1ull << 25;
inline constexpr uint64_t kInveptAll = 1ull << 26;
inline constexpr uint64_t kInvvpid = 1ull << 32;
inline constexpr uint64_t kInvvpidAddress = 1ull << 40;
inline constexpr uint64_t kInvvpidSingle = 1ull << 41;
inline constexpr uint64_t kInvvpidAll = 1ull << 42;
inline constexpr uint64_t kInvvpidSingleRetainingGlobals = 1ull << 43;
}  // namespace ept_cap

// INVEPT / INVVPID types (SDM Vol. 3C 30.3, "INVEPT", "INVVPID").
namespace invept_type {
inline constexpr uint64_t kSingleContext = 1;
inline constexpr uint64_t kAllContexts = 2;
}  // namespace invept_type
namespace invvpid_type {
inline constexpr uint64_t kIndividualAddress = 0;
inline constexpr uint64_t kSingleContext = 1;
inline constexpr uint64_t kAllContexts = 2;
inline constexpr uint64_t kSingleContextRetainingGlobals = 3;
}  // namespace invvpid_type

}  // namespace microhv::vmx
