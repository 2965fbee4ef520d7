// A VMCS as plain data, for the software VM-entry checker (portable, no
// allocation): every field microhv knows, its value, and whether anything
// ever wrote it. VMCLEAR leaves the fields in an implementation-specific
// state (SDM Vol. 3C 25.11.3, "Initializing a VMCS": software should VMWRITE
// every field before VM entry), so "never written" is itself a finding.
//
// The host side builds one from VMREAD plus a record of its own VMWRITEs;
// the tests build one through VmcsAccess (tests/unit/vmx_entry_check_rig.hpp).
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx {

struct FieldInfo {
  Field field;
  const char* name;  // as the SDM names it, e.g. "guest TR access rights"
};
// The fields an image holds, sorted by encoding: image_field(0) ..
// image_field(image_field_count() - 1) (an index out of range gives field 0).
uint32_t image_field_count();
const FieldInfo& image_field(uint32_t index);

// Index of `f` in that list, or -1 when the image does not hold it.
int image_field_index(Field f);
// The SDM name of `f`, or "unknown field" when the image does not hold it.
const char* field_name(Field f);

class VmcsImage {
 public:
  static constexpr uint32_t kCapacity = 160;

  // False (and nothing stored) for a field the image does not hold.
  bool write(Field f, uint64_t value);
  bool written(Field f) const;
  // 0 for a field never written (what many implementations happen to
  // return; relying on it is the bug the checker reports).
  uint64_t read(Field f) const;

 private:
  uint64_t value_[kCapacity] = {};
  bool written_[kCapacity] = {};
};

}  // namespace microhv::vmx
