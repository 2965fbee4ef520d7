#include "vmx/msr_policy.hpp"

#include "arch/apic.hpp"
#include "arch/msr.hpp"
#include "hypercall/tlfs/tlfs.hpp"

namespace microhv::vmx {
namespace {

namespace msr = arch::msr;
using R = MsrRead;
using W = MsrWrite;
using E = MsrEmulation;

// Section numbers follow the SDM editions of 2023 and later (local APIC:
// Vol. 3A chapter 11, memory cache control: chapter 12).
//
// The guest is the machine's operating system: it keeps what an OS needs
// and cannot use against microhv (its own system-call, segment, power and
// machine-check MSRs pass through). Everything that writes to physical
// memory behind EPT's back (Intel PT, DS/PEBS/BTS, the hardware feedback
// table), changes microhv's own execution (MTRRs, split-lock detection, CET,
// microcode, SMM, VMX) or its clock (the TSC) is emulated or refused. Rows
// are sorted by `first` and do not overlap (the unit test checks both).
constexpr MsrRule kRules[] = {
    {msr::kTsc, msr::kTsc, R::kPass, W::kEmulate, E::kTsc, "IA32_TSC",
     "reads get TSC + this VP's VMCS TSC offset from the hardware; a write moves only the offset, "
     "so the real TSC (microhv's clock, TIME_REF_COUNT) never jumps",
     "SDM Vol. 3C 26.3 (RDMSR with TSC offsetting), Vol. 3B 18.17"},
    {msr::kPlatformId, msr::kPlatformId, R::kPass, W::kGp, E::kNone, "IA32_PLATFORM_ID",
     "read-only platform id (microcode selection)", "SDM Vol. 4 Table 2-2"},
    {msr::kApicBase, msr::kApicBase, R::kEmulate, W::kEmulate, E::kApicBase, "IA32_APIC_BASE",
     "enable/disable and xAPIC<->x2APIC follow the SDM's transitions (invalid ones #GP); "
     "relocating the APIC page is refused with #GP (it could cover microhv's memory); BSP is "
     "read-only",
     "SDM Vol. 3A 11.4.4, 11.12.5"},
    {msr::kTestCtrl, msr::kTestCtrl, R::kGp, W::kGp, E::kNone, "MSR_TEST_CTRL",
     "split-lock detection would raise #AC in microhv's own code as well", "SDM Vol. 4 Table 2-2"},
    {msr::kSmiCount, msr::kSmiCount, R::kGp, W::kGp, E::kNone, "MSR_SMI_COUNT",
     "SMM is not the guest's", "SDM Vol. 4 Table 2-12"},
    {msr::kFeatureControl, msr::kFeatureControl, R::kEmulate, W::kGp, E::kFeatureControl,
     "IA32_FEATURE_CONTROL",
     "reads locked with VMX and SGX off (CPUID hides VMX, SMX, SGX); writes to a locked "
     "FEATURE_CONTROL #GP",
     "SDM Vol. 3C 24.7"},
    {msr::kTscAdjust, msr::kTscAdjust, R::kEmulate, W::kEmulate, E::kTscAdjust, "IA32_TSC_ADJUST",
     "kept per VP with the TSC offset: a write adds its difference to the guest's TSC, a TSC write "
     "adds its difference here",
     "SDM Vol. 3B 18.17.3"},
    {msr::kSpecCtrl, msr::kPredCmd, R::kPass, W::kPass, E::kNone, "IA32_SPEC_CTRL, IA32_PRED_CMD",
     "the guest's speculation controls (microhv runs with them; it has no other tenant)",
     "SDM Vol. 4 Table 2-2"},
    {msr::kBiosUpdtTrig, msr::kBiosUpdtTrig, R::kGp, W::kIgnore, E::kNone, "IA32_BIOS_UPDT_TRIG",
     "microcode updates are ignored (as KVM does): the update address is the guest's linear "
     "address, which means something else in VMX root, and the CPU under microhv must not change; "
     "the guest sees the revision unchanged",
     "SDM Vol. 3A 10.11.6"},
    {msr::kBiosSignId, msr::kBiosSignId, R::kPass, W::kIgnore, E::kNone, "IA32_BIOS_SIGN_ID",
     "the microcode revision; the CPU reloads it at every CPUID, which microhv executes",
     "SDM Vol. 3A 10.11.7.1"},
    {msr::kSmmMonitorCtl, msr::kSmmMonitorCtl, R::kGp, W::kGp, E::kNone, "IA32_SMM_MONITOR_CTL",
     "dual-monitor SMM treatment belongs to the VMM", "SDM Vol. 3C 32.15.5"},
    {msr::kSmbase, msr::kSmbase, R::kGp, W::kGp, E::kNone, "IA32_SMBASE", "SMM is not the guest's",
     "SDM Vol. 4 Table 2-2"},
    {msr::kPmc0, msr::kPmc0 + 7, R::kGp, W::kGp, E::kNone, "IA32_PMC0-7",
     "the PMU is not offered (CPUID.0AH reads 0): its counters run in VMX root too and PEBS writes "
     "to physical memory",
     "SDM Vol. 3B 20.2"},
    {msr::kPlatformInfo, msr::kPlatformInfo, R::kEmulate, W::kGp, E::kPlatformInfo,
     "MSR_PLATFORM_INFO", "ratios read through; bit 31 (CPUID faulting) reads 0",
     "SDM Vol. 4 Table 2-12"},
    {msr::kCoreCapabilities, msr::kCoreCapabilities, R::kGp, W::kGp, E::kNone,
     "IA32_CORE_CAPABILITIES",
     "not enumerated (CPUID.7.0:EDX[30] reads 0): it advertises split-lock "
     "detection",
     "SDM Vol. 4 Table 2-2"},
    {msr::kUmwaitControl, msr::kUmwaitControl, R::kPass, W::kPass, E::kNone, "IA32_UMWAIT_CONTROL",
     "the guest's TPAUSE/UMWAIT limit; microhv does not use them", "SDM Vol. 4 Table 2-2"},
    {msr::kPkgCstConfigControl, msr::kPkgCstConfigControl, R::kPass, W::kPass, E::kNone,
     "MSR_PKG_CST_CONFIG_CONTROL", "C-state configuration: the guest manages the platform's power",
     "SDM Vol. 4 Table 2-12"},
    {msr::kPmgIoCaptureBase, msr::kPmgIoCaptureBase, R::kPass, W::kPass, E::kNone,
     "MSR_PMG_IO_CAPTURE_BASE", "C-state I/O redirection: the guest's power management",
     "SDM Vol. 4 Table 2-12"},
    {msr::kMperf, msr::kAperf, R::kPass, W::kPass, E::kNone, "IA32_MPERF, IA32_APERF",
     "frequency feedback counters", "SDM Vol. 3B 15.2"},
    {msr::kMtrrCap, msr::kMtrrCap, R::kEmulate, W::kGp, E::kMtrrCap, "IA32_MTRRCAP",
     "the real capabilities without SMRR (bit 11); read-only", "SDM Vol. 3A 12.11.1"},
    {msr::kArchCapabilities, msr::kArchCapabilities, R::kPass, W::kGp, E::kNone,
     "IA32_ARCH_CAPABILITIES", "the real CPU's vulnerability enumeration; read-only",
     "SDM Vol. 4 Table 2-2"},
    {msr::kFlushCmd, msr::kFlushCmd, R::kPass, W::kPass, E::kNone, "IA32_FLUSH_CMD",
     "L1D flush command (write-only)", "SDM Vol. 4 Table 2-2"},
    {msr::kTsxCtrl, msr::kMcuOptCtrl, R::kPass, W::kPass, E::kNone,
     "IA32_TSX_CTRL, IA32_MCU_OPT_CTRL", "the guest's TSX and SRBDS mitigation controls",
     "SDM Vol. 4 Table 2-2"},
    {msr::kMiscFeatureEnables, msr::kMiscFeatureEnables, R::kEmulate, W::kEmulate,
     E::kMiscFeatureEnables, "MSR_MISC_FEATURE_ENABLES",
     "reads 0; CPUID faulting and ring-3 MWAIT are not offered, so setting them #GPs",
     "SDM Vol. 4 Table 2-12"},
    {msr::kSysenterCs, msr::kSysenterEip, R::kPass, W::kPass, E::kVmcsField,
     "IA32_SYSENTER_CS/ESP/EIP", "guest state in the VMCS, switched at every entry and exit",
     "SDM Vol. 3C 25.4.1, 28.3.1"},
    {msr::kMcgCap, msr::kMcgCap, R::kPass, W::kGp, E::kNone, "IA32_MCG_CAP",
     "machine-check capabilities; read-only (the guest owns machine-check handling)",
     "SDM Vol. 3B 16.3.1.1"},
    {msr::kMcgStatus, msr::kMcgCtl, R::kPass, W::kPass, E::kNone, "IA32_MCG_STATUS, IA32_MCG_CTL",
     "machine-check global state: the guest handles #MC", "SDM Vol. 3B 16.3.1"},
    {msr::kPerfEvtSel0, msr::kPerfEvtSel0 + 7, R::kGp, W::kGp, E::kNone, "IA32_PERFEVTSEL0-7",
     "the PMU is not offered", "SDM Vol. 3B 20.2"},
    {msr::kPerfStatus, msr::kThermStatus + 1, R::kPass, W::kPass, E::kNone,
     "IA32_PERF_STATUS/CTL, CLOCK_MODULATION, THERM_INTERRUPT/STATUS, MSR_THERM2_CTL",
     "P-states and thermal interrupts: the guest manages the platform's power (through its own "
     "LVT)",
     "SDM Vol. 3B 15.3, 15.8"},
    {msr::kMiscEnable, msr::kMiscEnable, R::kEmulate, W::kEmulate, E::kMiscEnable,
     "IA32_MISC_ENABLE",
     "a per-VP copy: writes are kept but change nothing (bits 18, 22 and 34 would change what "
     "CPUID reports to microhv too); PMU available and MONITOR FSM read 0, BTS and PEBS "
     "unavailable read 1",
     "SDM Vol. 4 Table 2-2"},
    {msr::kTemperatureTarget, msr::kTemperatureTarget, R::kPass, W::kPass, E::kNone,
     "MSR_TEMPERATURE_TARGET", "thermal: the guest's", "SDM Vol. 4 Table 2-12"},
    {msr::kOffcoreRsp0, msr::kOffcoreRsp0 + 1, R::kGp, W::kGp, E::kNone, "MSR_OFFCORE_RSP_0/1",
     "the PMU is not offered", "SDM Vol. 4 Table 2-12"},
    {msr::kTurboRatioLimit, msr::kTurboRatioLimit + 2, R::kPass, W::kPass, E::kNone,
     "MSR_TURBO_RATIO_LIMIT*", "turbo ratios: the guest's power management",
     "SDM Vol. 4 Table 2-12"},
    {msr::kEnergyPerfBias, msr::kPackageThermInterrupt, R::kPass, W::kPass, E::kNone,
     "IA32_ENERGY_PERF_BIAS, IA32_PACKAGE_THERM_STATUS/INTERRUPT",
     "energy bias and package thermal interrupts: the guest's", "SDM Vol. 3B 15.3.4, 15.8.6"},
    {msr::kXfd, msr::kXfdErr, R::kPass, W::kPass, E::kNone, "IA32_XFD, IA32_XFD_ERR",
     "extended-feature disable for the guest's XSAVE state; microhv never uses XSAVE state",
     "SDM Vol. 1 13.14"},
    {msr::kLbrSelect, msr::kLbrTos, R::kGp, W::kGp, E::kNone, "MSR_LBR_SELECT, MSR_LASTBRANCH_TOS",
     "the LBR stack is not offered (DEBUGCTL.LBR is dropped)", "SDM Vol. 3B 19.4.8"},
    {msr::kDebugctl, msr::kDebugctl, R::kEmulate, W::kEmulate, E::kDebugctl, "IA32_DEBUGCTL",
     "guest state in the VMCS (cleared on exit), read and written there (exact on hardware; Bochs "
     "2.7 answers a guest RDMSR without the VMCS value); writes keep BTF and bus-lock detection "
     "(if CPUID has "
     "it), drop LBR like KVM, and #GP on the rest: BTS writes trace records to the DS area, "
     "TR/BTINT and the freeze bits belong to the hidden PMU",
     "SDM Vol. 3B 18.4.1, Vol. 3C 28.3.1"},
    {msr::kSmrrPhysBase, msr::kSmrrPhysMask, R::kGp, W::kGp, E::kNone,
     "IA32_SMRR_PHYSBASE/PHYSMASK", "SMM range registers: not the guest's (MTRRCAP.SMRR reads 0)",
     "SDM Vol. 3A 12.11.2.4"},
    {msr::kPowerCtl, msr::kPowerCtl, R::kPass, W::kPass, E::kNone, "MSR_POWER_CTL",
     "C1E promotion: the guest's power management", "SDM Vol. 4 Table 2-12"},
    {msr::kMtrrPhysBase0, msr::kMtrrPhysBase0 + 0x1F, R::kEmulate, W::kEmulate, E::kMtrrVariable,
     "IA32_MTRR_PHYSBASE0-15/PHYSMASK0-15",
     "a per-VP copy, checked like the hardware (type, reserved bits, only MTRRCAP.VCNT pairs); "
     "with EPT the MTRRs have no effect on guest accesses, so storing them is exact, and the real "
     "ones keep microhv's memory types",
     "SDM Vol. 3A 12.11.2.3, Vol. 3C 29.3.7.2"},
    {msr::kMtrrFix64k00000, msr::kMtrrFix64k00000, R::kEmulate, W::kEmulate, E::kMtrrFixed,
     "IA32_MTRR_FIX64K_00000", "a per-VP copy (as the variable ranges)", "SDM Vol. 3A 12.11.2.2"},
    {msr::kMtrrFix16k80000, msr::kMtrrFix16kA0000, R::kEmulate, W::kEmulate, E::kMtrrFixed,
     "IA32_MTRR_FIX16K_*", "a per-VP copy", "SDM Vol. 3A 12.11.2.2"},
    {msr::kMtrrFix4kC0000, msr::kMtrrFix4kC0000 + 7, R::kEmulate, W::kEmulate, E::kMtrrFixed,
     "IA32_MTRR_FIX4K_*", "a per-VP copy", "SDM Vol. 3A 12.11.2.2"},
    {msr::kPat, msr::kPat, R::kPass, W::kPass, E::kVmcsField, "IA32_PAT",
     "guest state in the VMCS (load/save PAT); the hardware checks the types",
     "SDM Vol. 3A 12.12.2, Vol. 3C 28.3.1"},
    {msr::kMcCtl2Base, msr::kMcCtl2Base + 0x1F, R::kPass, W::kPass, E::kNone, "IA32_MC0-31_CTL2",
     "corrected machine-check interrupt control: the guest's", "SDM Vol. 3B 16.3.2.5"},
    {msr::kMtrrDefType, msr::kMtrrDefType, R::kEmulate, W::kEmulate, E::kMtrrDefType,
     "IA32_MTRR_DEF_TYPE", "a per-VP copy (reserved bits and the default type checked)",
     "SDM Vol. 3A 12.11.2.1"},
    {msr::kFixedCtr0, msr::kFixedCtr0 + 2, R::kGp, W::kGp, E::kNone, "IA32_FIXED_CTR0-2",
     "the PMU is not offered", "SDM Vol. 3B 20.2.2"},
    {msr::kPerfCapabilities, msr::kPerfCapabilities, R::kGp, W::kGp, E::kNone,
     "IA32_PERF_CAPABILITIES", "not enumerated (CPUID.1:ECX.PDCM reads 0)", "SDM Vol. 3B 20.2.4"},
    {msr::kFixedCtrCtrl, msr::kPerfGlobalInuse, R::kGp, W::kGp, E::kNone,
     "IA32_FIXED_CTR_CTRL, IA32_PERF_GLOBAL_*", "the PMU is not offered", "SDM Vol. 3B 20.2.2"},
    {msr::kPebsEnable, msr::kPebsFrontend, R::kGp, W::kGp, E::kNone,
     "IA32_PEBS_ENABLE, MSR_PEBS_LD_LAT, MSR_PEBS_FRONTEND",
     "PEBS writes records to the DS area in physical memory (CPUID hides DS, DTES64, PDCM)",
     "SDM Vol. 3B 20.3.1.1"},
    {msr::kMc0Ctl, msr::kMcLast, R::kPass, W::kPass, E::kNone, "IA32_MC0-31_CTL/STATUS/ADDR/MISC",
     "machine-check banks: the guest handles #MC (the exception bitmap leaves it to it)",
     "SDM Vol. 3B 16.3.2"},
    {msr::kVmxBasic, msr::kVmxLast, R::kGp, W::kGp, E::kNone, "IA32_VMX_* capabilities",
     "VMX is not offered (CPUID.1:ECX.VMX reads 0)", "SDM Vol. 3D Appendix A"},
    {msr::kPmcA0, msr::kPmcA0 + 7, R::kGp, W::kGp, E::kNone, "IA32_A_PMC0-7",
     "the PMU is not offered", "SDM Vol. 3B 20.2.6"},
    {msr::kMcgExtCtl, msr::kMcgExtCtl, R::kPass, W::kPass, E::kNone, "IA32_MCG_EXT_CTL",
     "local machine checks (FEATURE_CONTROL leaves LMCE off, so the CPU #GPs it)",
     "SDM Vol. 3B 16.3.1.4"},
    {msr::kRtitOutputBase, msr::kRtitOutputMaskPtrs, R::kGp, W::kGp, E::kNone,
     "IA32_RTIT_OUTPUT_BASE/MASK_PTRS",
     "Intel PT writes its trace to physical memory (CPUID.7.0:EBX[25] reads 0)",
     "SDM Vol. 3C 33.2.8"},
    {msr::kRtitCtl, msr::kRtitCr3Match, R::kGp, W::kGp, E::kNone, "IA32_RTIT_CTL/STATUS/CR3_MATCH",
     "Intel PT is not offered", "SDM Vol. 3C 33.2.8"},
    {msr::kRtitAddr0A, msr::kRtitAddr3B, R::kGp, W::kGp, E::kNone, "IA32_RTIT_ADDR0-3_A/B",
     "Intel PT is not offered", "SDM Vol. 3C 33.2.8"},
    {msr::kDsArea, msr::kDsArea, R::kGp, W::kGp, E::kNone, "IA32_DS_AREA",
     "BTS/PEBS write to the DS area (CPUID.1:EDX.DS reads 0)", "SDM Vol. 3B 19.4.9, 20.3.1.1"},
    {msr::kAtomCoreRatios, msr::kAtomCoreRatios + 3, R::kGp, W::kGp, E::kNone,
     "MSR_ATOM_CORE_RATIOS/VIDS/TURBO_RATIOS/TURBO_VIDS",
     "Atom (Silvermont) only; Linux probes them with rdmsrl_safe on every Intel CPU",
     "SDM Vol. 4 Table 2-8"},
    {msr::kUCet, msr::kInterruptSspTable, R::kGp, W::kGp, E::kNone,
     "IA32_U_CET .. "
     "IA32_INTERRUPT_SSP_TABLE_ADDR",
     "CET is not offered: S_CET is not switched at VM exit and would demand ENDBR in microhv's "
     "own code",
     "SDM Vol. 1 17.3"},
    {msr::kTscDeadline, msr::kTscDeadline, R::kEmulate, W::kEmulate, E::kTscDeadline,
     "IA32_TSC_DEADLINE",
     "the deadline is in the guest's TSC; the timer compares the real TSC, so the VP's offset is "
     "subtracted (a deadline already passed fires at once)",
     "SDM Vol. 3A 11.5.4.1"},
    {msr::kPkrs, msr::kPkrs, R::kGp, W::kGp, E::kNone, "IA32_PKRS",
     "protection keys for supervisor pages are not offered (CPUID.7.0:ECX[31] reads 0)",
     "SDM Vol. 3A 4.6.2"},
    {msr::kPmEnable, msr::kHwpStatus, R::kPass, W::kPass, E::kNone, "IA32_PM_ENABLE .. HWP_STATUS",
     "hardware P-states: the guest's power management", "SDM Vol. 3B 15.4"},
    {arch::apic::kX2apicFirstMsr, arch::apic::kX2apicIcrMsr - 1, R::kPass, W::kPass, E::kNone,
     "x2APIC registers 0x800-0x82F",
     "the guest's own APIC; the CPU #GPs them unless the APIC is in x2APIC mode, which microhv "
     "keeps equal to the guest's mode",
     "SDM Vol. 3A 11.12.1.2"},
    {arch::apic::kX2apicIcrMsr, arch::apic::kX2apicIcrMsr, R::kPass, W::kEmulate, E::kX2apicIcr,
     "x2APIC ICR",
     "INIT IPIs to VPs are emulated (vmx/smp.hpp); #GP unless the VP's APIC is in x2APIC mode or "
     "with reserved bits set",
     "SDM Vol. 3A 11.12.9"},
    {arch::apic::kX2apicIcrMsr + 1, arch::apic::kX2apicLastMsr, R::kPass, W::kPass, E::kNone,
     "x2APIC registers 0x831-0x8FF", "the guest's own APIC (as 0x800-0x82F)",
     "SDM Vol. 3A 11.12.1.2"},
    {msr::kBndcfgs, msr::kBndcfgs, R::kGp, W::kGp, E::kNone, "IA32_BNDCFGS",
     "MPX is not offered (CPUID.7.0:EBX[14] and XCR0 bits 4:3 read 0)", "SDM Vol. 1 17.3.3"},
    {msr::kXss, msr::kXss, R::kPass, W::kEmulate, E::kXss, "IA32_XSS",
     "supervisor XSAVE states are not offered (CPUID.(0DH,1):ECX/EDX read 0): XRSTORS of PT or "
     "CET state would program the refused MSRs; only 0 may be written",
     "SDM Vol. 1 13.3"},
    {msr::kHwFeedbackPtr, msr::kHwFeedbackConfig, R::kGp, W::kGp, E::kNone,
     "IA32_HW_FEEDBACK_PTR/CONFIG",
     "the hardware feedback table is written to physical memory (CPUID.6:EAX[19] reads 0)",
     "SDM Vol. 3B 15.6"},
    {tlfs::msr::kFirst, tlfs::msr::kLast, R::kEmulate, W::kEmulate, E::kSynthetic,
     "Hyper-V synthetic MSRs",
     "the TLFS core decides (each MSR exists when CPUID 0x40000003 grants it)",
     "TLFS, Hyper-V Synthetic MSRs"},
    {msr::kEfer, msr::kEfer, R::kPass, W::kPass, E::kVmcsField, "IA32_EFER",
     "guest state in the VMCS (load/save EFER); the CPU checks the reserved bits",
     "SDM Vol. 3C 28.3.1, 27.3.2.1"},
    {msr::kStar, msr::kFmask, R::kPass, W::kPass, E::kNone, "IA32_STAR/LSTAR/CSTAR/FMASK",
     "system-call MSRs: microhv never executes SYSCALL", "SDM Vol. 3A 5.8.8"},
    {msr::kFsBase, msr::kGsBase, R::kPass, W::kPass, E::kVmcsField, "IA32_FS_BASE, IA32_GS_BASE",
     "guest state in the VMCS segment bases", "SDM Vol. 3C 25.4.1"},
    {msr::kKernelGsBase, msr::kTscAux, R::kPass, W::kPass, E::kNone,
     "IA32_KERNEL_GS_BASE, IA32_TSC_AUX", "SWAPGS and RDTSCP/RDPID state: microhv uses neither",
     "SDM Vol. 3A 5.8.8, Vol. 2B RDTSCP"},
    {msr::kAmdDeCfg, msr::kAmdDeCfg, R::kGp, W::kGp, E::kNone, "MSR_AMD64_DE_CFG",
     "an AMD MSR (read on Bochs' boot path); Intel CPUs #GP it too",
     "SDM Vol. 4 (absent; AMD APM Vol. 2)"},
};

}  // namespace

const MsrRule* find_msr_rule(uint32_t msr) {
  // Binary search over the sorted, disjoint rows.
  uint32_t lo = 0, hi = static_cast<uint32_t>(sizeof(kRules) / sizeof(kRules[0]));
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (msr < kRules[mid].first) {
      hi = mid;
    } else if (msr > kRules[mid].last) {
      lo = mid + 1;
    } else {
      return &kRules[mid];
    }
  }
  return nullptr;
}

MsrRules msr_rules() {
  return MsrRules{kRules, static_cast<uint32_t>(sizeof(kRules) / sizeof(kRules[0]))};
}

namespace {

// Byte offset of the bitmap byte for `msr` in the read half (add 0x800 for
// writes), or -1 when the MSR is outside both ranges.
int bitmap_byte(uint32_t msr) {
  if (msr <= 0x1FFF) return static_cast<int>(msr / 8);
  if (msr >= 0xC0000000 && msr <= 0xC0001FFF)
    return 0x400 + static_cast<int>((msr - 0xC0000000) / 8);
  return -1;
}

void clear_bit(uint8_t* bitmap, uint32_t msr, bool write) {
  const int byte = bitmap_byte(msr);
  if (byte < 0) return;  // always exits
  bitmap[byte + (write ? 0x800 : 0)] &= static_cast<uint8_t>(~(1u << (msr % 8)));
}

}  // namespace

void build_msr_bitmap(uint8_t* bitmap) {
  for (uint32_t i = 0; i < kMsrBitmapSize; ++i) bitmap[i] = 0xFF;
  for (const MsrRule& r : kRules) {
    for (uint64_t m = r.first; m <= r.last; ++m) {
      if (r.read == MsrRead::kPass) clear_bit(bitmap, static_cast<uint32_t>(m), false);
      if (r.write == MsrWrite::kPass) clear_bit(bitmap, static_cast<uint32_t>(m), true);
    }
  }
}

bool msr_bitmap_passes(const uint8_t* bitmap, uint32_t msr, bool write) {
  const int byte = bitmap_byte(msr);
  if (byte < 0) return false;
  return (bitmap[byte + (write ? 0x800 : 0)] & (1u << (msr % 8))) == 0;
}

}  // namespace microhv::vmx
