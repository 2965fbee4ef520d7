// Architectural MSR numbers microhv uses (Intel SDM Vol. 4, Table 2-2) and
// the IA32_FEATURE_CONTROL bits (SDM Vol. 3C 24.7). The local APIC's x2APIC
// MSRs are in arch/apic.hpp, the synthetic Hyper-V MSRs in
// hypercall/tlfs/tlfs.hpp. Facts only, portable.
#pragma once

#include <stdint.h>

namespace microhv::arch::msr {

inline constexpr uint32_t kApicBase = 0x1B;  // bits: arch/apic.hpp
inline constexpr uint32_t kFeatureControl = 0x3A;
inline constexpr uint32_t kSysenterCs = 0x174;
inline constexpr uint32_t kSysenterEsp = 0x175;
inline constexpr uint32_t kSysenterEip = 0x176;
inline constexpr uint32_t kDebugctl = 0x1D9;
inline constexpr uint32_t kPat = 0x277;
// VMX capability MSRs (SDM Vol. 3D Appendix A).
inline constexpr uint32_t kVmxBasic = 0x480;
inline constexpr uint32_t kVmxPinbased = 0x481;
inline constexpr uint32_t kVmxProcbased = 0x482;
inline constexpr uint32_t kVmxExit = 0x483;
inline constexpr uint32_t kVmxEntry = 0x484;
inline constexpr uint32_t kVmxMisc = 0x485;
inline constexpr uint32_t kVmxCr0Fixed0 = 0x486;
inline constexpr uint32_t kVmxCr0Fixed1 = 0x487;
inline constexpr uint32_t kVmxCr4Fixed0 = 0x488;
inline constexpr uint32_t kVmxCr4Fixed1 = 0x489;
inline constexpr uint32_t kVmxProcbased2 = 0x48B;
inline constexpr uint32_t kVmxEptVpidCap = 0x48C;
inline constexpr uint32_t kVmxTruePinbased = 0x48D;
inline constexpr uint32_t kVmxTrueProcbased = 0x48E;
inline constexpr uint32_t kVmxTrueExit = 0x48F;
inline constexpr uint32_t kVmxTrueEntry = 0x490;
inline constexpr uint32_t kEfer = 0xC0000080;
inline constexpr uint32_t kFsBase = 0xC0000100;
inline constexpr uint32_t kGsBase = 0xC0000101;

// IA32_FEATURE_CONTROL (exists only when CPUID.1:ECX.VMX or SMX is 1).
namespace feature_control {
inline constexpr uint64_t kLock = 1ull << 0;
inline constexpr uint64_t kVmxInsideSmx = 1ull << 1;
inline constexpr uint64_t kVmxOutsideSmx = 1ull << 2;
}  // namespace feature_control

}  // namespace microhv::arch::msr
