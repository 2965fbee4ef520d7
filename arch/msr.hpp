// Architectural MSR numbers microhv uses or rules on (Intel SDM Vol. 4,
// Table 2-2 "IA-32 Architectural MSRs", and the model-specific tables where
// noted), the IA32_FEATURE_CONTROL bits (SDM Vol. 3C 24.7), the MTRR
// formats (SDM Vol. 3A 12.11) and the IA32_DEBUGCTL bits (SDM Vol. 3B
// 18.4.1). The local APIC's x2APIC MSRs are in arch/apic.hpp, the synthetic
// Hyper-V MSRs in hypercall/tlfs/tlfs.hpp. Facts only, portable.
#pragma once

#include <stdint.h>

namespace microhv::arch::msr {

inline constexpr uint32_t kTsc = 0x10;
inline constexpr uint32_t kPlatformId = 0x17;
inline constexpr uint32_t kApicBase = 0x1B;  // bits: arch/apic.hpp
inline constexpr uint32_t kTestCtrl = 0x33;  // split-lock detection (model-specific)
inline constexpr uint32_t kSmiCount = 0x34;
inline constexpr uint32_t kFeatureControl = 0x3A;
inline constexpr uint32_t kTscAdjust = 0x3B;
inline constexpr uint32_t kSpecCtrl = 0x48;
inline constexpr uint32_t kPredCmd = 0x49;
inline constexpr uint32_t kBiosUpdtTrig = 0x79;  // microcode update trigger
inline constexpr uint32_t kBiosSignId = 0x8B;    // microcode revision
inline constexpr uint32_t kSmmMonitorCtl = 0x9B;
inline constexpr uint32_t kSmbase = 0x9E;
inline constexpr uint32_t kPmc0 = 0xC1;
inline constexpr uint32_t kPlatformInfo = 0xCE;  // model-specific; bit 31: CPUID faulting
inline constexpr uint32_t kCoreCapabilities = 0xCF;
inline constexpr uint32_t kUmwaitControl = 0xE1;
inline constexpr uint32_t kPkgCstConfigControl = 0xE2;
inline constexpr uint32_t kPmgIoCaptureBase = 0xE4;
inline constexpr uint32_t kMperf = 0xE7;
inline constexpr uint32_t kAperf = 0xE8;
inline constexpr uint32_t kMtrrCap = 0xFE;
inline constexpr uint32_t kArchCapabilities = 0x10A;
inline constexpr uint32_t kFlushCmd = 0x10B;
inline constexpr uint32_t kTsxCtrl = 0x122;
inline constexpr uint32_t kMcuOptCtrl = 0x123;
inline constexpr uint32_t kMiscFeatureEnables = 0x140;  // bit 0: CPUID faulting
inline constexpr uint32_t kSysenterCs = 0x174;
inline constexpr uint32_t kSysenterEsp = 0x175;
inline constexpr uint32_t kSysenterEip = 0x176;
inline constexpr uint32_t kMcgCap = 0x179;
inline constexpr uint32_t kMcgStatus = 0x17A;
inline constexpr uint32_t kMcgCtl = 0x17B;
inline constexpr uint32_t kPerfEvtSel0 = 0x186;
inline constexpr uint32_t kPerfStatus = 0x198;
inline constexpr uint32_t kThermStatus = 0x19C;
inline constexpr uint32_t kMiscEnable = 0x1A0;
inline constexpr uint32_t kTemperatureTarget = 0x1A2;
inline constexpr uint32_t kOffcoreRsp0 = 0x1A6;
inline constexpr uint32_t kTurboRatioLimit = 0x1AD;
inline constexpr uint32_t kEnergyPerfBias = 0x1B0;
inline constexpr uint32_t kPackageThermInterrupt = 0x1B2;
inline constexpr uint32_t kXfd = 0x1C4;
inline constexpr uint32_t kXfdErr = 0x1C5;
inline constexpr uint32_t kLbrSelect = 0x1C8;
inline constexpr uint32_t kLbrTos = 0x1C9;
inline constexpr uint32_t kDebugctl = 0x1D9;
inline constexpr uint32_t kSmrrPhysBase = 0x1F2;
inline constexpr uint32_t kSmrrPhysMask = 0x1F3;
inline constexpr uint32_t kPowerCtl = 0x1FC;
inline constexpr uint32_t kMtrrPhysBase0 = 0x200;  // PHYSBASEn = 0x200 + 2n, PHYSMASKn = 0x201 + 2n
inline constexpr uint32_t kMtrrFix64k00000 = 0x250;
inline constexpr uint32_t kMtrrFix16k80000 = 0x258;
inline constexpr uint32_t kMtrrFix16kA0000 = 0x259;
inline constexpr uint32_t kMtrrFix4kC0000 = 0x268;  // .. 0x26F (F8000)
inline constexpr uint32_t kMcCtl2Base = 0x280;      // IA32_MCi_CTL2: 0x280 + i
inline constexpr uint32_t kPat = 0x277;
inline constexpr uint32_t kMtrrDefType = 0x2FF;
inline constexpr uint32_t kFixedCtr0 = 0x309;
inline constexpr uint32_t kPerfCapabilities = 0x345;
inline constexpr uint32_t kFixedCtrCtrl = 0x38D;
inline constexpr uint32_t kPerfGlobalStatusSet = 0x391;
inline constexpr uint32_t kPerfGlobalInuse = 0x392;
inline constexpr uint32_t kPebsEnable = 0x3F1;
inline constexpr uint32_t kPebsFrontend = 0x3F7;
inline constexpr uint32_t kMc0Ctl = 0x400;  // IA32_MCi_CTL/STATUS/ADDR/MISC: 0x400 + 4i ..
inline constexpr uint32_t kMcLast = 0x47F;
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
inline constexpr uint32_t kVmxLast = 0x493;  // VMX_PROCBASED_CTLS3 (the newest)
inline constexpr uint32_t kPmcA0 = 0x4C1;    // full-width IA32_A_PMCi
inline constexpr uint32_t kMcgExtCtl = 0x4D0;
inline constexpr uint32_t kRtitOutputBase = 0x560;
inline constexpr uint32_t kRtitOutputMaskPtrs = 0x561;
inline constexpr uint32_t kRtitCtl = 0x570;
inline constexpr uint32_t kRtitCr3Match = 0x572;
inline constexpr uint32_t kRtitAddr0A = 0x580;
inline constexpr uint32_t kRtitAddr3B = 0x587;
inline constexpr uint32_t kDsArea = 0x600;
inline constexpr uint32_t kAtomCoreRatios = 0x66A;  // .. 0x66D (Silvermont)
inline constexpr uint32_t kUCet = 0x6A0;
inline constexpr uint32_t kInterruptSspTable = 0x6A8;
inline constexpr uint32_t kTscDeadline = 0x6E0;
inline constexpr uint32_t kPkrs = 0x6E1;
inline constexpr uint32_t kPmEnable = 0x770;  // HWP: 0x770 .. 0x777
inline constexpr uint32_t kHwpStatus = 0x777;
inline constexpr uint32_t kBndcfgs = 0xD90;
inline constexpr uint32_t kXss = 0xDA0;
inline constexpr uint32_t kHwFeedbackPtr = 0x17D0;
inline constexpr uint32_t kHwFeedbackConfig = 0x17D1;
inline constexpr uint32_t kEfer = 0xC0000080;
inline constexpr uint32_t kStar = 0xC0000081;
inline constexpr uint32_t kFmask = 0xC0000084;
inline constexpr uint32_t kFsBase = 0xC0000100;
inline constexpr uint32_t kGsBase = 0xC0000101;
inline constexpr uint32_t kKernelGsBase = 0xC0000102;
inline constexpr uint32_t kTscAux = 0xC0000103;
inline constexpr uint32_t kAmdDeCfg = 0xC0011029;  // AMD only

// IA32_FEATURE_CONTROL (exists only when CPUID.1:ECX.VMX or SMX is 1).
namespace feature_control {
inline constexpr uint64_t kLock = 1ull << 0;
inline constexpr uint64_t kVmxInsideSmx = 1ull << 1;
inline constexpr uint64_t kVmxOutsideSmx = 1ull << 2;
}  // namespace feature_control

// IA32_MISC_ENABLE bits the policy rules on (SDM Vol. 4 Table 2-2).
namespace misc_enable {
inline constexpr uint64_t kPerfMonAvailable = 1ull << 7;  // read-only
inline constexpr uint64_t kBtsUnavailable = 1ull << 11;   // read-only
inline constexpr uint64_t kPebsUnavailable = 1ull << 12;  // read-only
inline constexpr uint64_t kMonitorFsm = 1ull << 18;       // MONITOR/MWAIT enabled
}  // namespace misc_enable

// IA32_DEBUGCTL (SDM Vol. 3B 18.4.1, Figure 18-3).
namespace debugctl {
inline constexpr uint64_t kLbr = 1ull << 0;
inline constexpr uint64_t kBtf = 1ull << 1;
inline constexpr uint64_t kBusLockDetect = 1ull << 2;
}  // namespace debugctl

// MTRRs (SDM Vol. 3A 12.11.1-12.11.3).
namespace mtrr {
inline constexpr uint64_t kCapVcntMask = 0xFF;    // IA32_MTRRCAP: variable ranges
inline constexpr uint64_t kCapFixed = 1ull << 8;  // fixed-range MTRRs exist
inline constexpr uint64_t kCapWc = 1ull << 10;
inline constexpr uint64_t kCapSmrr = 1ull << 11;
inline constexpr uint64_t kDefTypeMask = 0xFF;  // IA32_MTRR_DEF_TYPE: default type
inline constexpr uint64_t kDefFixedEnable = 1ull << 10;
inline constexpr uint64_t kDefEnable = 1ull << 11;
inline constexpr uint64_t kMaskValid = 1ull << 11;  // IA32_MTRR_PHYSMASKn
inline constexpr uint32_t kFixedCount = 11;         // 1 x 64K, 2 x 16K, 8 x 4K
// Memory types an MTRR may hold: UC 0, WC 1, WT 4, WP 5, WB 6 (2, 3, 7+ reserved).
constexpr bool valid_type(uint64_t type) {
  return type == 0 || type == 1 || type == 4 || type == 5 || type == 6;
}
}  // namespace mtrr

}  // namespace microhv::arch::msr
