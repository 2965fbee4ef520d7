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

#include "vmx/vmcs.hpp"

namespace microhv::vmx {

// Field encodings the checker needs that vmx/vmcs.hpp does not name (SDM
// Vol. 3D Appendix B).
namespace more_fields {
inline constexpr Field kPostedInterruptVector{0x0002};
inline constexpr Field kExecutiveVmcsPointer{0x200C};
inline constexpr Field kVirtualApicAddress{0x2012};
inline constexpr Field kApicAccessAddress{0x2014};
inline constexpr Field kVmFunctionControls{0x2018};
inline constexpr Field kXssExitingBitmap{0x202C};
inline constexpr Field kTertiaryControls{0x2034};
inline constexpr Field kGuestPerfGlobalCtrl{0x2808};
inline constexpr Field kGuestPdpte1{0x280C};
inline constexpr Field kGuestPdpte2{0x280E};
inline constexpr Field kGuestPdpte3{0x2810};
inline constexpr Field kHostPerfGlobalCtrl{0x2C04};
inline constexpr Field kPreemptionTimerValue{0x482E};
inline constexpr Field kCr3Target0{0x6008};
inline constexpr Field kCr3Target1{0x600A};
inline constexpr Field kCr3Target2{0x600C};
inline constexpr Field kCr3Target3{0x600E};
}  // namespace more_fields

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
