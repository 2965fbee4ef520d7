#include "vmx/controls.hpp"

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx {

ControlSet compute_controls(const VmxCapabilities& caps, bool ia32e_guest) {
  const bool use_true = (caps.basic & kBasicTrueControls) != 0;
  const uint64_t pin_cap = use_true ? caps.true_pinbased : caps.pinbased;
  const uint64_t proc_cap = use_true ? caps.true_procbased : caps.procbased;
  const uint64_t exit_cap = use_true ? caps.true_exit : caps.exit;
  const uint64_t entry_cap = use_true ? caps.true_entry : caps.entry;

  // Never let a default1 bit turn on behaviour microhv does not handle: the
  // guest owns interrupts, the APIC, CR3, HLT, I/O and debug registers.
  // NMI exiting is the one interrupt exit: an NMI IPI is how one CPU kicks
  // another out of the guest (vmx/smp.hpp); genuine NMIs are re-injected.
  // Virtual NMIs with it: with NMI exiting on, a guest IRET no longer
  // unblocks NMIs (SDM 26.3), so an injected NMI must set virtual-NMI
  // blocking, which the guest's IRET clears (and NMI-window exiting can
  // wait for); physical NMIs -- the kicks -- exit regardless.
  constexpr uint32_t kPinNever = pin::kExternalInterruptExiting;
  constexpr uint32_t kProcNever =
      proc::kInterruptWindowExiting | proc::kNmiWindowExiting | proc::kUnconditionalIoExiting |
      proc::kCr3LoadExiting | proc::kCr3StoreExiting | proc::kHltExiting | proc::kRdtscExiting |
      proc::kMovDrExiting | proc::kUseTprShadow | proc::kCr8LoadExiting | proc::kCr8StoreExiting;
  constexpr uint32_t kEntryNever = entry_ctl::kEntryToSmm;

  ControlSet s{};
  s.pin = adjust_controls(pin_cap, pin::kNmiExiting | pin::kVirtualNmis, 0, kPinNever);
  // TSC offsetting (optional): a guest's IA32_TSC write moves its VP's
  // offset instead of the real TSC (vmx/msr_policy.cpp). MONITOR and MWAIT
  // exiting (optional): CPUID hides them and they #UD (vmx/guest_cpuid.cpp
  // says why); a CPU that cannot exit on them leaves them native.
  s.proc = adjust_controls(proc_cap,
                           proc::kUseMsrBitmaps | proc::kUseIoBitmaps | proc::kActivateSecondary,
                           proc::kTscOffsetting | kMonitorMwaitExiting, kProcNever);
  // The secondary controls have no TRUE_ MSR and no default1 bits.
  s.proc2 = adjust_controls(caps.procbased2,
                            proc2::kEnableEpt | proc2::kEnableVpid | proc2::kUnrestrictedGuest,
                            proc2::kEnableRdtscp | proc2::kEnableInvpcid | proc2::kEnableXsaves |
                                proc2::kEnableUserWaitPause);
  s.exit =
      adjust_controls(exit_cap,
                      exit_ctl::kHostAddressSpaceSize | exit_ctl::kSaveEfer | exit_ctl::kLoadEfer |
                          exit_ctl::kSavePat | exit_ctl::kLoadPat | exit_ctl::kSaveDebugControls,
                      0, exit_ctl::kAckInterruptOnExit);
  s.entry =
      adjust_controls(entry_cap,
                      entry_ctl::kLoadEfer | entry_ctl::kLoadPat | entry_ctl::kLoadDebugControls |
                          (ia32e_guest ? entry_ctl::kIa32eModeGuest : 0),
                      0, kEntryNever);
  return s;
}

uint64_t guest_cr0(const VmxCapabilities& caps, uint64_t wanted, bool unrestricted) {
  uint64_t fixed0 = caps.cr0_fixed0;
  if (unrestricted) fixed0 &= ~(arch::cr0::kPe | arch::cr0::kPg);
  return apply_fixed(wanted, fixed0, caps.cr0_fixed1);
}

uint64_t guest_cr0_mask(const VmxCapabilities& caps, bool unrestricted) {
  uint64_t fixed0 = caps.cr0_fixed0;
  if (unrestricted) fixed0 &= ~(arch::cr0::kPe | arch::cr0::kPg);
  // Bits forced to 1 and bits that must stay 0 (within the architectural 32).
  return (fixed0 | ~caps.cr0_fixed1) & 0xFFFFFFFFull;
}

uint64_t guest_cr4_mask(const VmxCapabilities& caps) {
  return (caps.cr4_fixed0 | ~caps.cr4_fixed1) & 0xFFFFFFFFull;
}

uint64_t make_eptp(uint64_t pml4_hpa, uint64_t ept_vpid_cap) {
  const uint64_t memtype = (ept_vpid_cap & ept_cap::kMemTypeWb) != 0 ? 6 : 0;
  return (pml4_hpa & ~0xFFFull) | memtype | (3ull << 3);
}

}  // namespace microhv::vmx
