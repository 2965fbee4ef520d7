// Printable names for exit reasons, VM-instruction errors and the VMCS
// fields the back end dumps when something goes wrong.
#include "vmx/vmcs_names.hpp"

namespace microhv::vmx {

const char* exit_reason_name(uint32_t r) {
  static constexpr const char* kNames[] = {
      "exception or NMI", "external interrupt", "triple fault", "INIT", "SIPI", "I/O SMI", "other SMI",
      "interrupt window", "NMI window", "task switch", "CPUID", "GETSEC", "HLT", "INVD", "INVLPG", "RDPMC",
      "RDTSC", "RSM", "VMCALL", "VMCLEAR", "VMLAUNCH", "VMPTRLD", "VMPTRST", "VMREAD", "VMRESUME", "VMWRITE",
      "VMXOFF", "VMXON", "control-register access", "MOV DR", "I/O instruction", "RDMSR", "WRMSR",
      "VM-entry failure: invalid guest state", "VM-entry failure: MSR loading", "?", "MWAIT",
      "monitor trap flag", "?", "MONITOR", "PAUSE", "VM-entry failure: machine check", "?",
      "TPR below threshold", "APIC access", "virtualized EOI", "GDTR/IDTR access", "LDTR/TR access",
      "EPT violation", "EPT misconfiguration", "INVEPT", "RDTSCP", "preemption timer", "INVVPID", "WBINVD",
      "XSETBV", "APIC write", "RDRAND", "INVPCID", "VMFUNC", "ENCLS", "RDSEED", "page-modification log full",
      "XSAVES", "XRSTORS", "?", "SPP", "UMWAIT", "TPAUSE", "LOADIWKEY"};
  return r < sizeof(kNames) / sizeof(kNames[0]) ? kNames[r] : "?";
}

const char* vm_instruction_error_name(uint32_t e) {
  static constexpr const char* kNames[] = {
      "none",
      "VMCALL executed in VMX root operation",
      "VMCLEAR with invalid physical address",
      "VMCLEAR with VMXON pointer",
      "VMLAUNCH with non-clear VMCS",
      "VMRESUME with non-launched VMCS",
      "VMRESUME after VMXOFF",
      "VM entry with invalid control field(s)",
      "VM entry with invalid host-state field(s)",
      "VMPTRLD with invalid physical address",
      "VMPTRLD with VMXON pointer",
      "VMPTRLD with incorrect VMCS revision identifier",
      "VMREAD/VMWRITE from/to unsupported VMCS component",
      "VMWRITE to read-only VMCS component",
      "?",
      "VMXON executed in VMX root operation",
      "VM entry with invalid executive-VMCS pointer",
      "VM entry with non-launched executive VMCS",
      "VM entry with executive-VMCS pointer not VMXON pointer",
      "VMCALL with non-clear VMCS",
      "VMCALL with invalid VM-exit control fields",
      "?",
      "VMCALL with incorrect MSEG revision identifier",
      "VMXOFF under dual-monitor treatment",
      "VMCALL with invalid SMM-monitor features",
      "VM entry with invalid VM-execution control fields in executive VMCS",
      "VM entry with events blocked by MOV SS",
      "?",
      "invalid operand to INVEPT/INVVPID",
  };
  return e < sizeof(kNames) / sizeof(kNames[0]) ? kNames[e] : "?";
}

const FieldName kDumpFields[] = {
#define F(x) {Field::x, #x}
    F(kPinControls), F(kProcControls), F(kProcControls2), F(kExitControls), F(kEntryControls),
    F(kExceptionBitmap), F(kEntryInterruptionInfo), F(kEntryExceptionErrorCode), F(kEntryInstructionLength),
    F(kVmInstructionError), F(kExitReason), F(kExitQualification), F(kExitInterruptionInfo),
    F(kExitInterruptionErrorCode), F(kIdtVectoringInfo), F(kIdtVectoringErrorCode), F(kExitInstructionLength),
    F(kGuestPhysicalAddress), F(kGuestLinearAddress), F(kEptPointer), F(kVpid), F(kMsrBitmap),
    F(kCr0Mask), F(kCr0ReadShadow), F(kCr4Mask), F(kCr4ReadShadow),
    F(kGuestCr0), F(kGuestCr3), F(kGuestCr4), F(kGuestDr7), F(kGuestRip), F(kGuestRsp), F(kGuestRflags),
    F(kGuestEfer), F(kGuestPat), F(kGuestDebugctl), F(kGuestInterruptibility), F(kGuestActivityState),
    F(kGuestPendingDebug), F(kVmcsLinkPointer),
    F(kGuestCsSel), F(kGuestCsBase), F(kGuestCsLimit), F(kGuestCsAccess),
    F(kGuestSsSel), F(kGuestSsBase), F(kGuestSsLimit), F(kGuestSsAccess),
    F(kGuestDsSel), F(kGuestDsBase), F(kGuestDsLimit), F(kGuestDsAccess),
    F(kGuestEsSel), F(kGuestEsBase), F(kGuestEsLimit), F(kGuestEsAccess),
    F(kGuestFsSel), F(kGuestFsBase), F(kGuestFsLimit), F(kGuestFsAccess),
    F(kGuestGsSel), F(kGuestGsBase), F(kGuestGsLimit), F(kGuestGsAccess),
    F(kGuestLdtrSel), F(kGuestLdtrBase), F(kGuestLdtrLimit), F(kGuestLdtrAccess),
    F(kGuestTrSel), F(kGuestTrBase), F(kGuestTrLimit), F(kGuestTrAccess),
    F(kGuestGdtrBase), F(kGuestGdtrLimit), F(kGuestIdtrBase), F(kGuestIdtrLimit),
    F(kGuestSysenterCs), F(kGuestSysenterEsp), F(kGuestSysenterEip),
    F(kHostCr0), F(kHostCr3), F(kHostCr4), F(kHostRip), F(kHostRsp), F(kHostCsSel), F(kHostSsSel),
    F(kHostDsSel), F(kHostEsSel), F(kHostFsSel), F(kHostGsSel), F(kHostTrSel), F(kHostTrBase),
    F(kHostGdtrBase), F(kHostIdtrBase), F(kHostFsBase), F(kHostGsBase), F(kHostEfer), F(kHostPat),
#undef F
};
const uint32_t kDumpFieldCount = sizeof(kDumpFields) / sizeof(kDumpFields[0]);

}  // namespace microhv::vmx
