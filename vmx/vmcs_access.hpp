// The one way portable code touches the current VMCS: VMREAD/VMWRITE by
// field. The back end implements it with the VMX instructions (vmx/hw/);
// host tests use a fake that holds the fields in a map.
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx {

class VmcsAccess {
 public:
  virtual uint64_t read(Field f) = 0;
  virtual void write(Field f, uint64_t value) = 0;

 protected:
  ~VmcsAccess() = default;
};

// Writes one guest segment register: selector, base, limit and access
// rights. `selector` names it (kGuestEsSel .. kGuestTrSel); the four fields of
// each segment follow the same ES..TR order in every field group (SDM Vol.
// 3C Appendix B).
inline void write_guest_segment(VmcsAccess& vmcs, Field selector_field, uint16_t selector,
                                uint64_t base, uint32_t limit, uint32_t access) {
  const uint32_t i = (encoding(selector_field) - encoding(Field::kGuestEsSel)) / 2;
  vmcs.write(selector_field, selector);
  vmcs.write(static_cast<Field>(encoding(Field::kGuestEsBase) + 2 * i), base);
  vmcs.write(static_cast<Field>(encoding(Field::kGuestEsLimit) + 2 * i), limit);
  vmcs.write(static_cast<Field>(encoding(Field::kGuestEsAccess) + 2 * i), access);
}

}  // namespace microhv::vmx
