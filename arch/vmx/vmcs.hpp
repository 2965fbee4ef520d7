// VMCS field encodings, exit reasons and control bits (Intel SDM Vol. 3C,
// Appendix B "Field Encoding in VMCS", Appendix C "VMX Basic Exit Reasons",
// chapter 25 "VM-Execution Control Fields"). Facts only; portable.
#pragma once

#include <stdint.h>

namespace microhv::vmx {

enum class Field : uint32_t {
  // 16-bit control and state fields.
  kVpid = 0x0000,
  kPostedInterruptVector = 0x0002,
  kGuestEsSel = 0x0800,
  kGuestCsSel = 0x0802,
  kGuestSsSel = 0x0804,
  kGuestDsSel = 0x0806,
  kGuestFsSel = 0x0808,
  kGuestGsSel = 0x080A,
  kGuestLdtrSel = 0x080C,
  kGuestTrSel = 0x080E,
  kHostEsSel = 0x0C00,
  kHostCsSel = 0x0C02,
  kHostSsSel = 0x0C04,
  kHostDsSel = 0x0C06,
  kHostFsSel = 0x0C08,
  kHostGsSel = 0x0C0A,
  kHostTrSel = 0x0C0C,
  // 64-bit fields.
  kIoBitmapA = 0x2000,
  kIoBitmapB = 0x2002,
  kMsrBitmap = 0x2004,
  kExitMsrStoreAddr = 0x2006,
  kExitMsrLoadAddr = 0x2008,
  kEntryMsrLoadAddr = 0x200A,
  kExecutiveVmcsPointer = 0x200C,
  kTscOffset = 0x2010,
  kVirtualApicAddress = 0x2012,
  kApicAccessAddress = 0x2014,
  kVmFunctionControls = 0x2018,
  kEptPointer = 0x201A,
  kXssExitingBitmap = 0x202C,
  kTertiaryControls = 0x2034,
  kGuestPhysicalAddress = 0x2400,
  kVmcsLinkPointer = 0x2800,
  kGuestDebugctl = 0x2802,
  kGuestPat = 0x2804,
  kGuestEfer = 0x2806,
  kGuestPerfGlobalCtrl = 0x2808,
  kGuestPdpte0 = 0x280A,
  kGuestPdpte1 = 0x280C,
  kGuestPdpte2 = 0x280E,
  kGuestPdpte3 = 0x2810,
  kHostPat = 0x2C00,
  kHostEfer = 0x2C02,
  kHostPerfGlobalCtrl = 0x2C04,
  // 32-bit fields.
  kPinControls = 0x4000,
  kProcControls = 0x4002,
  kExceptionBitmap = 0x4004,
  kPfErrorCodeMask = 0x4006,
  kPfErrorCodeMatch = 0x4008,
  kCr3TargetCount = 0x400A,
  kExitControls = 0x400C,
  kExitMsrStoreCount = 0x400E,
  kExitMsrLoadCount = 0x4010,
  kEntryControls = 0x4012,
  kEntryMsrLoadCount = 0x4014,
  kEntryInterruptionInfo = 0x4016,
  kEntryExceptionErrorCode = 0x4018,
  kEntryInstructionLength = 0x401A,
  kTprThreshold = 0x401C,
  kProcControls2 = 0x401E,
  kVmInstructionError = 0x4400,
  kExitReason = 0x4402,
  kExitInterruptionInfo = 0x4404,
  kExitInterruptionErrorCode = 0x4406,
  kIdtVectoringInfo = 0x4408,
  kIdtVectoringErrorCode = 0x440A,
  kExitInstructionLength = 0x440C,
  kExitInstructionInfo = 0x440E,
  kGuestEsLimit = 0x4800,
  kGuestCsLimit = 0x4802,
  kGuestSsLimit = 0x4804,
  kGuestDsLimit = 0x4806,
  kGuestFsLimit = 0x4808,
  kGuestGsLimit = 0x480A,
  kGuestLdtrLimit = 0x480C,
  kGuestTrLimit = 0x480E,
  kGuestGdtrLimit = 0x4810,
  kGuestIdtrLimit = 0x4812,
  kGuestEsAccess = 0x4814,
  kGuestCsAccess = 0x4816,
  kGuestSsAccess = 0x4818,
  kGuestDsAccess = 0x481A,
  kGuestFsAccess = 0x481C,
  kGuestGsAccess = 0x481E,
  kGuestLdtrAccess = 0x4820,
  kGuestTrAccess = 0x4822,
  kGuestInterruptibility = 0x4824,
  kGuestActivityState = 0x4826,
  kGuestSmbase = 0x4828,
  kGuestSysenterCs = 0x482A,
  kPreemptionTimerValue = 0x482E,
  kHostSysenterCs = 0x4C00,
  // Natural-width fields.
  kCr0Mask = 0x6000,
  kCr4Mask = 0x6002,
  kCr0ReadShadow = 0x6004,
  kCr4ReadShadow = 0x6006,
  kCr3Target0 = 0x6008,
  kCr3Target1 = 0x600A,
  kCr3Target2 = 0x600C,
  kCr3Target3 = 0x600E,
  kExitQualification = 0x6400,
  kGuestLinearAddress = 0x640A,
  kGuestCr0 = 0x6800,
  kGuestCr3 = 0x6802,
  kGuestCr4 = 0x6804,
  kGuestEsBase = 0x6806,
  kGuestCsBase = 0x6808,
  kGuestSsBase = 0x680A,
  kGuestDsBase = 0x680C,
  kGuestFsBase = 0x680E,
  kGuestGsBase = 0x6810,
  kGuestLdtrBase = 0x6812,
  kGuestTrBase = 0x6814,
  kGuestGdtrBase = 0x6816,
  kGuestIdtrBase = 0x6818,
  kGuestDr7 = 0x681A,
  kGuestRsp = 0x681C,
  kGuestRip = 0x681E,
  kGuestRflags = 0x6820,
  kGuestPendingDebug = 0x6822,
  kGuestSysenterEsp = 0x6824,
  kGuestSysenterEip = 0x6826,
  kHostCr0 = 0x6C00,
  kHostCr3 = 0x6C02,
  kHostCr4 = 0x6C04,
  kHostFsBase = 0x6C06,
  kHostGsBase = 0x6C08,
  kHostTrBase = 0x6C0A,
  kHostGdtrBase = 0x6C0C,
  kHostIdtrBase = 0x6C0E,
  kHostSysenterEsp = 0x6C10,
  kHostSysenterEip = 0x6C12,
  kHostRsp = 0x6C14,
  kHostRip = 0x6C16,
};

constexpr uint32_t encoding(Field f) {
  return static_cast<uint32_t>(f);
}

// Basic exit reasons (SDM Vol. 3D Appendix C). Bit 31 of the exit-reason
// field flags a failed VM entry; bits 15:0 are the basic reason.
namespace exit_reason {
inline constexpr uint32_t kExceptionOrNmi = 0;
inline constexpr uint32_t kExternalInterrupt = 1;
inline constexpr uint32_t kTripleFault = 2;
inline constexpr uint32_t kInit = 3;
inline constexpr uint32_t kSipi = 4;
inline constexpr uint32_t kIoSmi = 5;
inline constexpr uint32_t kOtherSmi = 6;
inline constexpr uint32_t kInterruptWindow = 7;
inline constexpr uint32_t kNmiWindow = 8;
inline constexpr uint32_t kTaskSwitch = 9;
inline constexpr uint32_t kCpuid = 10;
inline constexpr uint32_t kGetsec = 11;
inline constexpr uint32_t kHlt = 12;
inline constexpr uint32_t kInvd = 13;
inline constexpr uint32_t kInvlpg = 14;
inline constexpr uint32_t kRdpmc = 15;
inline constexpr uint32_t kRdtsc = 16;
inline constexpr uint32_t kRsm = 17;
inline constexpr uint32_t kVmcall = 18;
inline constexpr uint32_t kVmclear = 19;
inline constexpr uint32_t kVmlaunch = 20;
inline constexpr uint32_t kVmptrld = 21;
inline constexpr uint32_t kVmptrst = 22;
inline constexpr uint32_t kVmread = 23;
inline constexpr uint32_t kVmresume = 24;
inline constexpr uint32_t kVmwrite = 25;
inline constexpr uint32_t kVmxoff = 26;
inline constexpr uint32_t kVmxon = 27;
inline constexpr uint32_t kCrAccess = 28;
inline constexpr uint32_t kDrAccess = 29;
inline constexpr uint32_t kIoInstruction = 30;
inline constexpr uint32_t kRdmsr = 31;
inline constexpr uint32_t kWrmsr = 32;
inline constexpr uint32_t kEntryFailGuestState = 33;
inline constexpr uint32_t kEntryFailMsrLoading = 34;
inline constexpr uint32_t kMwait = 36;
inline constexpr uint32_t kMonitorTrapFlag = 37;
inline constexpr uint32_t kMonitor = 39;
inline constexpr uint32_t kPause = 40;
inline constexpr uint32_t kEntryFailMachineCheck = 41;
inline constexpr uint32_t kTprBelowThreshold = 43;
inline constexpr uint32_t kApicAccess = 44;
inline constexpr uint32_t kVirtualizedEoi = 45;
inline constexpr uint32_t kGdtrIdtrAccess = 46;
inline constexpr uint32_t kLdtrTrAccess = 47;
inline constexpr uint32_t kEptViolation = 48;
inline constexpr uint32_t kEptMisconfig = 49;
inline constexpr uint32_t kInvept = 50;
inline constexpr uint32_t kRdtscp = 51;
inline constexpr uint32_t kPreemptionTimer = 52;
inline constexpr uint32_t kInvvpid = 53;
inline constexpr uint32_t kWbinvd = 54;
inline constexpr uint32_t kXsetbv = 55;
inline constexpr uint32_t kApicWrite = 56;
inline constexpr uint32_t kRdrand = 57;
inline constexpr uint32_t kInvpcid = 58;
inline constexpr uint32_t kVmfunc = 59;
inline constexpr uint32_t kEncls = 60;
inline constexpr uint32_t kRdseed = 61;
inline constexpr uint32_t kPmlFull = 62;
inline constexpr uint32_t kXsaves = 63;
inline constexpr uint32_t kXrstors = 64;
inline constexpr uint32_t kUmwait = 67;
inline constexpr uint32_t kTpause = 68;
inline constexpr uint32_t kCount = 70;  // size of the dispatch table

inline constexpr uint32_t kEntryFailureBit = 1u << 31;
constexpr uint32_t basic(uint32_t raw) {
  return raw & 0xFFFF;
}
}  // namespace exit_reason

// Printable name of a basic exit reason ("?" when unknown). Portable.
const char* exit_reason_name(uint32_t basic_reason);
// Printable meaning of a VM-instruction error number (SDM Vol. 3C 31.4).
const char* vm_instruction_error_name(uint32_t error);

// ---- Control bits.
namespace pin {
inline constexpr uint32_t kExternalInterruptExiting = 1u << 0;
inline constexpr uint32_t kNmiExiting = 1u << 3;
inline constexpr uint32_t kVirtualNmis = 1u << 5;
inline constexpr uint32_t kPreemptionTimer = 1u << 6;
}  // namespace pin

namespace proc {
inline constexpr uint32_t kInterruptWindowExiting = 1u << 2;
inline constexpr uint32_t kTscOffsetting = 1u << 3;
inline constexpr uint32_t kHltExiting = 1u << 7;
inline constexpr uint32_t kInvlpgExiting = 1u << 9;
inline constexpr uint32_t kMwaitExiting = 1u << 10;
inline constexpr uint32_t kRdpmcExiting = 1u << 11;
inline constexpr uint32_t kRdtscExiting = 1u << 12;
inline constexpr uint32_t kCr3LoadExiting = 1u << 15;
inline constexpr uint32_t kCr3StoreExiting = 1u << 16;
inline constexpr uint32_t kCr8LoadExiting = 1u << 19;
inline constexpr uint32_t kCr8StoreExiting = 1u << 20;
inline constexpr uint32_t kUseTprShadow = 1u << 21;
inline constexpr uint32_t kNmiWindowExiting = 1u << 22;
inline constexpr uint32_t kMovDrExiting = 1u << 23;
inline constexpr uint32_t kUnconditionalIoExiting = 1u << 24;
inline constexpr uint32_t kUseIoBitmaps = 1u << 25;
inline constexpr uint32_t kMonitorTrapFlag = 1u << 27;
inline constexpr uint32_t kUseMsrBitmaps = 1u << 28;
inline constexpr uint32_t kMonitorExiting = 1u << 29;
inline constexpr uint32_t kPauseExiting = 1u << 30;
inline constexpr uint32_t kActivateSecondary = 1u << 31;
}  // namespace proc

namespace proc2 {
inline constexpr uint32_t kVirtualizeApicAccesses = 1u << 0;
inline constexpr uint32_t kEnableEpt = 1u << 1;
inline constexpr uint32_t kDescriptorTableExiting = 1u << 2;
inline constexpr uint32_t kEnableRdtscp = 1u << 3;
inline constexpr uint32_t kEnableVpid = 1u << 5;
inline constexpr uint32_t kWbinvdExiting = 1u << 6;
inline constexpr uint32_t kUnrestrictedGuest = 1u << 7;
inline constexpr uint32_t kEnableInvpcid = 1u << 12;
inline constexpr uint32_t kEnableXsaves = 1u << 20;
inline constexpr uint32_t kEnableUserWaitPause = 1u << 26;
}  // namespace proc2

namespace exit_ctl {
inline constexpr uint32_t kSaveDebugControls = 1u << 2;
inline constexpr uint32_t kHostAddressSpaceSize = 1u << 9;
inline constexpr uint32_t kAckInterruptOnExit = 1u << 15;
inline constexpr uint32_t kSavePat = 1u << 18;
inline constexpr uint32_t kLoadPat = 1u << 19;
inline constexpr uint32_t kSaveEfer = 1u << 20;
inline constexpr uint32_t kLoadEfer = 1u << 21;
}  // namespace exit_ctl

namespace entry_ctl {
inline constexpr uint32_t kLoadDebugControls = 1u << 2;
inline constexpr uint32_t kIa32eModeGuest = 1u << 9;
inline constexpr uint32_t kEntryToSmm = 1u << 10;
inline constexpr uint32_t kLoadPat = 1u << 14;
inline constexpr uint32_t kLoadEfer = 1u << 15;
}  // namespace entry_ctl

// Guest interruptibility state (SDM Vol. 3C 25.4.2, Table 25-3).
namespace interruptibility {
inline constexpr uint32_t kBlockingBySti = 1u << 0;
inline constexpr uint32_t kBlockingByMovSs = 1u << 1;
inline constexpr uint32_t kBlockingBySmi = 1u << 2;
inline constexpr uint32_t kBlockingByNmi = 1u << 3;
}  // namespace interruptibility

// Guest activity state (SDM Vol. 3C 25.4.2).
namespace activity {
inline constexpr uint32_t kActive = 0;
inline constexpr uint32_t kHlt = 1;
inline constexpr uint32_t kShutdown = 2;
inline constexpr uint32_t kWaitForSipi = 3;
}  // namespace activity

// VM-entry interruption-information / exit interruption / IDT-vectoring
// information format (SDM Vol. 3C 25.8.3, Table 25-17).
namespace intr_info {
inline constexpr uint32_t kVectorMask = 0xFF;
inline constexpr uint32_t kTypeShift = 8;
inline constexpr uint32_t kTypeMask = 7u << 8;
inline constexpr uint32_t kDeliverErrorCode = 1u << 11;
inline constexpr uint32_t kNmiUnblockingDueToIret = 1u << 12;
inline constexpr uint32_t kValid = 1u << 31;
}  // namespace intr_info

enum class EventType : uint8_t {
  kExternalInterrupt = 0,
  kNmi = 2,
  kHardwareException = 3,
  kSoftwareInterrupt = 4,
  kPrivilegedSoftwareException = 5,
  kSoftwareException = 6,
  kOther = 7,
};

constexpr uint32_t make_intr_info(uint8_t vector, EventType type, bool error_code) {
  return intr_info::kValid | (error_code ? intr_info::kDeliverErrorCode : 0) |
         (static_cast<uint32_t>(type) << intr_info::kTypeShift) | vector;
}

// Exception vectors.
namespace vector {
inline constexpr uint8_t kDe = 0;
inline constexpr uint8_t kDb = 1;
inline constexpr uint8_t kNmi = 2;
inline constexpr uint8_t kBp = 3;
inline constexpr uint8_t kUd = 6;
inline constexpr uint8_t kDf = 8;
inline constexpr uint8_t kTs = 10;
inline constexpr uint8_t kNp = 11;
inline constexpr uint8_t kSs = 12;
inline constexpr uint8_t kGp = 13;
inline constexpr uint8_t kPf = 14;
inline constexpr uint8_t kMc = 18;
}  // namespace vector

// Exceptions that push an error code in protected mode.
constexpr bool exception_has_error_code(uint8_t v) {
  return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

}  // namespace microhv::vmx
