// The current VMCS through the VMX instructions, with every failure reported
// (VMfailInvalid, or VMfailValid with the VM-instruction error number and its
// meaning), and the VMCS dump microhv prints when it stops a guest.
#pragma once

#include "vmx/hw/instructions.hpp"
#include "vmx/vmcs_access.hpp"

namespace microhv::vmx::hw {

// Logs "<what> failed: ..." with VM_INSTRUCTION_ERROR when the VMCS is valid.
// `field` (an encoding) is named for VMREAD/VMWRITE.
void report_vmx_failure(const char* what, VmxStatus s, uint32_t field = ~0u);
// True on VMsucceed; otherwise reports and returns false.
bool check(VmxStatus s, const char* what);

class HwVmcs final : public VmcsAccess {
 public:
  // Inline: the exit path's VMREADs cost the instruction and a flag test;
  // a failure is reported out of line.
  bool read(Field f, uint64_t* value) override {
    const VmxStatus s = vmread(f, value);
    return s == VmxStatus::kOk || failed("VMREAD", s, f);
  }
  bool write(Field f, uint64_t value) override {
    const VmxStatus s = vmwrite(f, value);
    return s == VmxStatus::kOk || failed("VMWRITE", s, f);
  }
  // Failed VMREADs and VMWRITEs so far on this CPU.
  uint32_t failures() const { return failures_; }

 private:
  // Counts and reports the failure; returns false.
  bool failed(const char* what, VmxStatus s, Field f);
  uint32_t failures_ = 0;
};

// Every field of the dump list (arch/vmx/vmcs_names.hpp), "<unsupported>"
// where VMREAD fails.
void dump_vmcs();

}  // namespace microhv::vmx::hw
