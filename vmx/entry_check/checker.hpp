// Software VM-entry checker (portable, no allocation): applies the checks
// the processor makes at VMLAUNCH/VMRESUME (SDM Vol. 3C chapter 27 "VM
// Entries", 27.2 controls and host state, 27.3.1 guest state; see rules.hpp
// for the edition) to a VMCS image against a capability set, and names
// every rule that fails. A processor stops at the first failure and reports
// only "invalid control field" or "invalid guest state"; this lists them all.
//
// Scope: complete for what microhv can produce with the controls it can set
// (vmx/controls.cpp compute_controls, plus interrupt/NMI-window exiting, MTF
// and the preemption timer of the feature decisions). Out of scope, because
// microhv never enables them (the control checks still reject them if set
// against the capability MSRs, but their dependent fields are not checked):
//  - TPR shadow, APIC virtualization, virtual-interrupt delivery, posted
//    interrupts, x2APIC virtualization (the guest owns the APIC);
//  - PML, EPT-violation #VE, sub-page permissions, mode-based execute
//    control, HLAT, PASID translation, tertiary controls, VM functions and
//    EPTP switching, VMCS shadowing (and the shadow VMCS the link pointer
//    names: a non-~0 link pointer is reported outright), ENCLS/ENCLV exiting;
//  - load IA32_PERF_GLOBAL_CTRL / BNDCFGS / RTIT_CTL / CET state / PKRS /
//    LBR_CTL (entry and exit), "entry to SMM", SMM and dual-monitor
//    treatment (microhv runs no guest in SMM);
//  - the contents of memory the VMCS points to (MSR areas, PDPTEs without
//    EPT, the VMCS link pointer's target): only addresses are checked;
//  - VM entries from a host outside IA-32e mode (microhv is 64-bit code).
#pragma once

#include <stdint.h>

#include "vmx/entry_check/capabilities.hpp"
#include "vmx/entry_check/rules.hpp"
#include "vmx/entry_check/vmcs_image.hpp"

namespace microhv::vmx {

struct Violation {
  Rule rule;
  Field field;     // the field that breaks it (the first one, for multi-field rules)
  uint64_t value;  // that field's value
};

struct CheckReport {
  static constexpr uint32_t kMaxViolations = 48;
  Violation items[kMaxViolations];
  uint32_t count = 0;
  uint32_t dropped = 0;  // violations beyond kMaxViolations

  bool ok() const { return count == 0; }
  bool has(Rule r) const;
  bool has(Rule r, Field f) const;
  void add(Rule r, Field f, uint64_t value);
};

CheckReport check_vm_entry(const VmcsImage& vmcs, const CapabilitySet& caps);

}  // namespace microhv::vmx
