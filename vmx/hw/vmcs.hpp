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
  bool read(Field f, uint64_t* value) override;
  bool write(Field f, uint64_t value) override;
  // Failed VMREADs and VMWRITEs so far on this CPU.
  uint32_t failures() const { return failures_; }

 private:
  uint32_t failures_ = 0;
};

// Every field of the dump list (arch/vmx/vmcs_names.hpp), "<unsupported>"
// where VMREAD fails.
void dump_vmcs();

}  // namespace microhv::vmx::hw
