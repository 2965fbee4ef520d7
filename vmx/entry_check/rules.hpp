// The VM-entry rules the software checker knows, each with the SDM section
// that states it. Sections follow the Intel SDM Vol. 3C (order no. 325462)
// editions from 2022 on: chapter 25 "Virtual Machine Control Structures",
// chapter 27 "VM Entries", chapter 29 "VMX Support for Address
// Translation". (Editions up to 2021 carry the same text one chapter
// earlier: 24, 26, 28.)
#pragma once

#include <stdint.h>

namespace microhv::vmx {

// X(name, section, what the rule requires)
#define MICROHV_VM_ENTRY_RULES(X)                                                                 \
  X(kFieldNeverWritten, "25.11.3",                                                                \
    "field never written: the processor uses it, and it relies on its reset value")               \
  /* 27.2.1.1 VM-execution control fields */                                                      \
  X(kPinControls, "27.2.1.1",                                                                     \
    "pin-based controls must respect IA32_VMX_(TRUE_)PINBASED_CTLS allowed-0/allowed-1")          \
  X(kProcControls, "27.2.1.1",                                                                    \
    "primary processor-based controls must respect IA32_VMX_(TRUE_)PROCBASED_CTLS")               \
  X(kProc2Controls, "27.2.1.1",                                                                   \
    "secondary processor-based controls must respect IA32_VMX_PROCBASED_CTLS2")                   \
  X(kCr3TargetCount, "27.2.1.1", "CR3-target count must not exceed IA32_VMX_MISC[24:16]")         \
  X(kIoBitmapAddress, "27.2.1.1",                                                                 \
    "I/O bitmap addresses must be 4-KByte aligned and within MAXPHYADDR")                         \
  X(kMsrBitmapAddress, "27.2.1.1",                                                                \
    "MSR-bitmap address must be 4-KByte aligned and within MAXPHYADDR")                           \
  X(kVirtualNmisNeedNmiExiting, "27.2.1.1", "\"virtual NMIs\" requires \"NMI exiting\"")          \
  X(kNmiWindowNeedsVirtualNmis, "27.2.1.1", "\"NMI-window exiting\" requires \"virtual NMIs\"")   \
  X(kVpidZero, "27.2.1.1", "\"enable VPID\" requires a nonzero VPID")                             \
  X(kEptpMemoryType, "27.2.1.1",                                                                  \
    "EPTP memory type must be UC (EPT_VPID_CAP bit 8) or WB (bit 14)")                            \
  X(kEptpWalkLength, "27.2.1.1",                                                                  \
    "EPTP page-walk length must be 4 (EPT_VPID_CAP bit 6) or 5 (bit 7) levels")                   \
  X(kEptpAccessDirty, "27.2.1.1",                                                                 \
    "EPTP bit 6 (accessed/dirty flags) requires EPT_VPID_CAP bit 21")                             \
  X(kEptpReservedBits, "27.2.1.1",                                                                \
    "EPTP bits 11:8 (and 7 without CET) and bits above MAXPHYADDR must be 0")                     \
  X(kUnrestrictedNeedsEpt, "27.2.1.1", "\"unrestricted guest\" requires \"enable EPT\"")          \
  /* 27.2.1.2 VM-exit control fields */                                                           \
  X(kExitControls, "27.2.1.2", "VM-exit controls must respect IA32_VMX_(TRUE_)EXIT_CTLS")         \
  X(kSavePreemptionNeedsTimer, "27.2.1.2",                                                        \
    "\"save VMX-preemption timer value\" requires \"activate VMX-preemption timer\"")             \
  X(kExitMsrAreas, "27.2.1.2",                                                                    \
    "VM-exit MSR-store/-load areas must be 16-byte aligned and within MAXPHYADDR")                \
  /* 27.2.1.3 VM-entry control fields */                                                          \
  X(kEntryControls, "27.2.1.3", "VM-entry controls must respect IA32_VMX_(TRUE_)ENTRY_CTLS")      \
  X(kEntryOutsideSmm, "27.2.1.3",                                                                 \
    "\"entry to SMM\" and \"deactivate dual-monitor treatment\" must be 0 outside SMM")           \
  X(kInjectionType, "27.2.1.3",                                                                   \
    "injected event type must not be 1 (reserved), nor 7 (other) without monitor-trap-flag "      \
    "support")                                                                                    \
  X(kInjectionVector, "27.2.1.3",                                                                 \
    "injected NMI must be vector 2, hardware exception vector <= 31, other event vector 0")       \
  X(kInjectionErrorCodeBit, "27.2.1.3",                                                           \
    "deliver-error-code must be set exactly for protected-mode #DF #TS #NP #SS #GP #PF #AC")      \
  X(kInjectionErrorCodeValue, "27.2.1.3", "injected error code bits 31:16 must be 0")             \
  X(kInjectionReservedBits, "27.2.1.3", "VM-entry interruption-information bits 30:12 must be 0") \
  X(kInjectionLength, "27.2.1.3",                                                                 \
    "software interrupt/exception length must be 1-15 (0 only with IA32_VMX_MISC[30])")           \
  X(kEntryMsrArea, "27.2.1.3",                                                                    \
    "VM-entry MSR-load area must be 16-byte aligned and within MAXPHYADDR")                       \
  /* 27.2.2 - 27.2.4 host state */                                                                \
  X(kHostCr0, "27.2.2", "host CR0 must respect IA32_VMX_CR0_FIXED0/FIXED1")                       \
  X(kHostCr4, "27.2.2",                                                                           \
    "host CR4 must respect IA32_VMX_CR4_FIXED0/FIXED1 (and CR4.CET needs CR0.WP)")                \
  X(kHostCr3, "27.2.2", "host CR3 bits 63:52 and above MAXPHYADDR must be 0")                     \
  X(kHostSysenter, "27.2.2", "host IA32_SYSENTER_ESP/EIP must be canonical")                      \
  X(kHostPat, "27.2.2", "host IA32_PAT entries must be 0, 1, 4, 5, 6 or 7")                       \
  X(kHostEfer, "27.2.2",                                                                          \
    "host IA32_EFER: no reserved bits, LMA and LME equal to \"host address-space size\"")         \
  X(kHostSelectors, "27.2.3",                                                                     \
    "host selectors need RPL 0 and TI 0; CS and TR nonzero; SS nonzero unless 64-bit host")       \
  X(kHostBases, "27.2.3", "host FS, GS, GDTR, IDTR and TR bases must be canonical")               \
  X(kHostAddressSpace, "27.2.4",                                                                  \
    "a 64-bit host needs \"host address-space size\", CR4.PAE and a canonical RIP")               \
  /* 27.3.1.1 guest control registers, debug registers, MSRs */                                   \
  X(kGuestCr0, "27.3.1.1",                                                                        \
    "guest CR0 must respect CR0_FIXED0/FIXED1 (PE/PG exempt with unrestricted guest)")            \
  X(kGuestCr0PgWithoutPe, "27.3.1.1", "guest CR0.PG requires CR0.PE")                             \
  X(kGuestCr4, "27.3.1.1", "guest CR4 must respect CR4_FIXED0/FIXED1 (and CR4.CET needs CR0.WP)") \
  X(kGuestIa32eMode, "27.3.1.1",                                                                  \
    "IA-32e mode guest needs CR0.PG and CR4.PAE; otherwise CR4.PCIDE must be 0")                  \
  X(kGuestCr3, "27.3.1.1", "guest CR3 bits 63:52 and above MAXPHYADDR must be 0")                 \
  X(kGuestDebugctl, "27.3.1.1", "guest IA32_DEBUGCTL reserved bits must be 0")                    \
  X(kGuestDr7, "27.3.1.1", "guest DR7 bits 63:32 must be 0")                                      \
  X(kGuestSysenter, "27.3.1.1", "guest IA32_SYSENTER_ESP/EIP must be canonical")                  \
  X(kGuestPat, "27.3.1.1", "guest IA32_PAT entries must be 0, 1, 4, 5, 6 or 7")                   \
  X(kGuestEfer, "27.3.1.1",                                                                       \
    "guest IA32_EFER: no reserved bits, LMA = IA-32e mode guest, LME = LMA when CR0.PG = 1")      \
  /* 27.3.1.2 guest segment registers */                                                          \
  X(kGuestSelectors, "27.3.1.2",                                                                  \
    "TR.TI and usable LDTR.TI must be 0; SS.RPL = CS.RPL (unless unrestricted or virtual-8086)")  \
  X(kGuestVirtual8086, "27.3.1.2",                                                                \
    "virtual-8086 segments: base = selector * 16, limit FFFFH, access rights F3H")                \
  X(kGuestSegmentBase, "27.3.1.2",                                                                \
    "TR/FS/GS/usable-LDTR bases canonical; CS and usable SS/DS/ES bases below 4 GiB")             \
  X(kGuestCsAccess, "27.3.1.2",                                                                   \
    "CS: accessed code (or type 3 with unrestricted guest), S=1, P=1, DPL vs SS.DPL, L/D, G, "    \
    "reserved")                                                                                   \
  X(kGuestSsAccess, "27.3.1.2",                                                                   \
    "SS: usable type 3 or 7, DPL = RPL (unless unrestricted), DPL 0 in real mode, S, P, G, "      \
    "reserved")                                                                                   \
  X(kGuestDataAccess, "27.3.1.2",                                                                 \
    "usable DS/ES/FS/GS: accessed, readable if code, S=1, P=1, DPL >= RPL, G, reserved bits")     \
  X(kGuestTrAccess, "27.3.1.2",                                                                   \
    "TR: usable busy TSS (type 11, or 3 outside IA-32e mode), S=0, P=1, G, reserved bits")        \
  X(kGuestLdtrAccess, "27.3.1.2", "usable LDTR: type 2, S=0, P=1, G, reserved bits")              \
  /* 27.3.1.3 - 27.3.1.4 */                                                                       \
  X(kGuestDescriptorTables, "27.3.1.3", "GDTR/IDTR bases canonical, limits below 64 KiB")         \
  X(kGuestRip, "27.3.1.4",                                                                        \
    "guest RIP bits 63:32 zero outside 64-bit mode, bits 63:N equal in 64-bit mode")              \
  X(kGuestRflags, "27.3.1.4", "guest RFLAGS bits 63:22, 15, 5, 3 must be 0 and bit 1 must be 1")  \
  X(kGuestRflagsVm, "27.3.1.4", "RFLAGS.VM must be 0 in IA-32e mode and when CR0.PE = 0")         \
  X(kGuestRflagsIf, "27.3.1.4", "injecting an external interrupt requires RFLAGS.IF = 1")         \
  /* 27.3.1.5 guest non-register state */                                                         \
  X(kActivityState, "27.3.1.5",                                                                   \
    "activity state must be 0-3 and supported by IA32_VMX_MISC (HLT bit 6, shutdown 7, SIPI 8)")  \
  X(kActivityHltDpl, "27.3.1.5", "HLT activity state requires SS.DPL = 0")                        \
  X(kActivityWithBlocking, "27.3.1.5", "STI or MOV-SS blocking requires the active state")        \
  X(kActivityInjection, "27.3.1.5",                                                               \
    "the injected event must not be one the activity state blocks")                               \
  X(kInterruptibility, "27.3.1.5",                                                                \
    "interruptibility: bits 31:5 zero, not STI and MOV-SS, STI only with IF, no SMI outside SMM") \
  X(kInterruptibilityInjection, "27.3.1.5",                                                       \
    "no STI/MOV-SS blocking when injecting an interrupt or NMI; no NMI blocking when injecting "  \
    "an NMI")                                                                                     \
  X(kPendingDebug, "27.3.1.5",                                                                    \
    "pending debug exceptions: reserved bits 0, BS consistent with TF/BTF under blocking or HLT") \
  X(kVmcsLinkPointer, "27.3.1.5",                                                                 \
    "VMCS link pointer must be FFFFFFFF_FFFFFFFFH (microhv has no shadow VMCS)")                  \
  /* 27.3.1.6 */                                                                                  \
  X(kGuestPdptes, "27.3.1.6",                                                                     \
    "PAE paging with EPT: present PDPTEs need bits 2:1, 8:5 and above MAXPHYADDR clear")

enum class Rule : uint8_t {
#define MICROHV_RULE_ENUM(name, section, text) name,
  MICROHV_VM_ENTRY_RULES(MICROHV_RULE_ENUM)
#undef MICROHV_RULE_ENUM
      kCount
};

struct RuleInfo {
  const char* section;  // SDM Vol. 3C section
  const char* text;
};
const RuleInfo& rule_info(Rule r);
// The rule's enumerator name without the k, e.g. "GuestTrAccess".
const char* rule_name(Rule r);

}  // namespace microhv::vmx
