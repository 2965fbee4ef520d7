// The initial VMCS of a VP, as portable code (unit-tested in
// tests/unit/vmx_vmcs_setup_test.cpp): the controls from the capability
// MSRs, the host state every VM exit returns to, and the guest state -- the
// firmware on that CPU exactly as microhv_virtualize captured it. The back
// end gathers the values (vmx/hw/launch.cpp) and this writes them through
// VmcsAccess; nothing here touches hardware.
#pragma once

#include <stdint.h>

#include "vmx/controls.hpp"
#include "vmx/launch.hpp"
#include "vmx/vmcs_access.hpp"

namespace microhv::vmx {

// What a VM exit loads (SDM Vol. 3C 25.5, 28.5): microhv's own CR3, this
// CPU's GDT, TSS, IDT, stack and GS base (the per-CPU state), RIP = the exit
// stub. Data selectors are 0; FS base 0; SYSENTER unused.
struct HostState {
  uint64_t cr0, cr3, cr4;
  uint16_t cs, tr;
  uint64_t tr_base, gdtr_base, idtr_base, gs_base;
  uint64_t efer, pat;
  uint64_t rsp, rip;
};

struct VmcsSetup {
  const ControlSet& controls;
  const VmxCapabilities& caps;
  uint64_t msr_bitmap, io_bitmap_a, io_bitmap_b;  // host-physical pages
  uint64_t eptp;
  uint16_t vpid;  // never 0: VPID 0 is the host's (SDM 28.1)
  HostState host;
  const GuestStart& guest;
  uint64_t guest_rsp, guest_rip, guest_rflags;
  // The firmware's GDT (its GDTR base, identity-mapped): the hidden parts of
  // the guest's segment registers are decoded from it.
  const uint64_t* guest_gdt;
};

// The VPID of VP `index`.
constexpr uint16_t vpid_of(uint32_t vp_index) {
  return static_cast<uint16_t>(1 + vp_index);
}

// Writes every field microhv's VMs depend on into the current VMCS. False
// when a VMWRITE failed (each failure is reported by the VmcsAccess).
[[nodiscard]] bool write_initial_vmcs(VmcsAccess& vmcs, const VmcsSetup& s);

}  // namespace microhv::vmx
