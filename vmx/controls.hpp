// VMX control computation from the capability MSRs (SDM Vol. 3D A.3-A.5,
// Vol. 3C 25.6): a control bit may be 0 only where the allowed-0 half of the
// capability MSR (bits 31:0) is 0, and 1 only where the allowed-1 half (bits
// 63:32) is 1. microhv asks for what it wants and gets
// (wanted | allowed0) & allowed1, reading the TRUE_* MSRs when VMX_BASIC bit
// 55 says they exist (they allow clearing some "default1" bits). Required
// bits the CPU cannot set are reported, never silently dropped.
// Portable: no asm; the caller reads the MSRs.
#pragma once

#include <stdint.h>

#include "arch/vmx/capabilities.hpp"
#include "arch/vmx/vmcs.hpp"
#include "arch/x86.hpp"

namespace microhv::vmx {

// Raw capability MSR values as read from the CPU.
struct VmxCapabilities {
  uint64_t basic;      // IA32_VMX_BASIC
  uint64_t pinbased;   // IA32_VMX_PINBASED_CTLS
  uint64_t procbased;  // IA32_VMX_PROCBASED_CTLS
  uint64_t exit;       // IA32_VMX_EXIT_CTLS
  uint64_t entry;      // IA32_VMX_ENTRY_CTLS
  uint64_t true_pinbased;
  uint64_t true_procbased;
  uint64_t true_exit;
  uint64_t true_entry;
  uint64_t procbased2;    // IA32_VMX_PROCBASED_CTLS2 (0 if secondary controls are unsupported)
  uint64_t ept_vpid_cap;  // IA32_VMX_EPT_VPID_CAP (0 if unsupported)
  uint64_t misc;
  uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
};

struct ControlResult {
  uint32_t value;     // what to write into the VMCS
  uint32_t missing;   // required bits the CPU does not allow to be 1
  uint32_t conflict;  // forbidden bits the CPU forces to 1 (allowed-0 bits)
  constexpr bool ok() const { return missing == 0 && conflict == 0; }
};

// (required | optional | allowed0) & allowed1. `missing` names the required
// bits that allowed1 refuses, `conflict` the forbidden bits that allowed0
// forces on. Optional bits are dropped silently when unsupported.
constexpr ControlResult adjust_controls(uint64_t cap_msr, uint32_t required, uint32_t optional,
                                        uint32_t forbidden = 0) {
  const uint32_t allowed0 = static_cast<uint32_t>(cap_msr);        // 1 here: must be 1
  const uint32_t allowed1 = static_cast<uint32_t>(cap_msr >> 32);  // 0 here: must be 0
  const uint32_t value = (required | optional | allowed0) & allowed1;
  return ControlResult{value, required & ~allowed1, value & forbidden};
}

// True when the capability MSR lets `bit` be 1.
constexpr bool control_allowed(uint64_t cap_msr, uint32_t bit) {
  return (static_cast<uint32_t>(cap_msr >> 32) & bit) == bit;
}

// MONITOR exiting (PROCBASED_CTLS bit 29) and MWAIT exiting (bit 10).
inline constexpr uint32_t kMonitorMwaitExiting = proc::kMonitorExiting | proc::kMwaitExiting;

// The complete control set microhv runs guests with.
struct ControlSet {
  ControlResult pin, proc, proc2, exit, entry;
  bool ok() const { return pin.ok() && proc.ok() && proc2.ok() && exit.ok() && entry.ok(); }
};

// Chooses the capability MSR per VMX_BASIC bit 55 and computes every control.
// `ia32e_guest`: the guest starts in IA-32e mode (EFER.LMA = 1).
// Policy (see vmx/README.md): NMI exiting (the cross-CPU kick) with virtual
// NMIs, but no external-interrupt exiting (the guest owns the interrupt hardware), MSR and
// I/O bitmaps, secondary controls with
// EPT + VPID + unrestricted guest required; RDTSCP, INVPCID, XSAVES and user
// wait/pause enabled when the CPU has them (if left 0 those instructions #UD
// in the guest); MONITOR/MWAIT exiting when the CPU has it (the guest gets
// #UD for both); EFER/PAT/debug controls saved and loaded; host 64-bit.
ControlSet compute_controls(const VmxCapabilities& caps, bool ia32e_guest);

// Fixed CR0/CR4 bits (SDM Vol. 3D A.7, A.8): bits set in FIXED0 must be 1,
// bits clear in FIXED1 must be 0. With unrestricted guest, CR0.PE and CR0.PG
// of the guest are exempt (SDM 27.3.1.1).

constexpr uint64_t apply_fixed(uint64_t value, uint64_t fixed0, uint64_t fixed1) {
  return (value | fixed0) & fixed1;
}
// The guest CR0 that satisfies the VM-entry checks, and the bits microhv must
// own (guest/host mask): the ones the guest may not change freely.
uint64_t guest_cr0(const VmxCapabilities& caps, uint64_t wanted, bool unrestricted);
uint64_t guest_cr0_mask(const VmxCapabilities& caps, bool unrestricted);
uint64_t guest_cr4_mask(const VmxCapabilities& caps);

// EPT pointer: WB paging-structure memory type when supported (else UC),
// 4-level walk, A/D flags off.
uint64_t make_eptp(uint64_t pml4_hpa, uint64_t ept_vpid_cap);

}  // namespace microhv::vmx
