// The one way portable code touches the current VMCS: VMREAD/VMWRITE by
// field. The back end implements it with the VMX instructions (vmx/hw/);
// host tests use a fake that holds the fields in a map.
//
// Failures are never silent: a failed VMREAD or VMWRITE (VMfailInvalid, or
// VMfailValid with VM_INSTRUCTION_ERROR) is reported by the implementation
// and returned as false. A caller that gets false from read() does not use
// the value: the exit handlers stop the guest (vmx/exit_handlers.hpp).
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx {

class VmcsAccess {
 public:
  [[nodiscard]] virtual bool read(Field f, uint64_t* value) = 0;
  virtual bool write(Field f, uint64_t value) = 0;

 protected:
  ~VmcsAccess() = default;
};

// Writes one guest segment register: selector, base, limit and access
// rights. `selector` names it (kGuestEsSel .. kGuestTrSel); the four fields of
// each segment follow the same ES..TR order in every field group (SDM Vol.
// 3C Appendix B). False when a VMWRITE failed.
inline bool write_guest_segment(VmcsAccess& vmcs, Field selector_field, uint16_t selector,
                                uint64_t base, uint32_t limit, uint32_t access) {
  const uint32_t i = (encoding(selector_field) - encoding(Field::kGuestEsSel)) / 2;
  bool ok = vmcs.write(selector_field, selector);
  ok = vmcs.write(static_cast<Field>(encoding(Field::kGuestEsBase) + 2 * i), base) && ok;
  ok = vmcs.write(static_cast<Field>(encoding(Field::kGuestEsLimit) + 2 * i), limit) && ok;
  ok = vmcs.write(static_cast<Field>(encoding(Field::kGuestEsAccess) + 2 * i), access) && ok;
  return ok;
}

// Writes a batch of fields and remembers whether every VMWRITE succeeded, so
// code that writes many fields checks once.
class VmcsWriter {
 public:
  explicit VmcsWriter(VmcsAccess& vmcs) : vmcs_(vmcs) {}
  void operator()(Field f, uint64_t value) { ok_ = vmcs_.write(f, value) && ok_; }
  void segment(Field selector_field, uint16_t selector, uint64_t base, uint32_t limit,
               uint32_t access) {
    ok_ = write_guest_segment(vmcs_, selector_field, selector, base, limit, access) && ok_;
  }
  bool ok() const { return ok_; }

 private:
  VmcsAccess& vmcs_;
  bool ok_ = true;
};

}  // namespace microhv::vmx
