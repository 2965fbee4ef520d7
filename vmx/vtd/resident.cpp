#include "vmx/vtd/resident.hpp"

namespace microhv::vtd {

uint32_t note_register_windows(ResidentVtd& vtd) {
  const ProtectResult& r = vtd.result;
  vtd.window_count = 0;
  if (r.units_enabled == 0) return 0;
  for (uint32_t i = 0; i < r.unit_count && i < kMaxUnits; ++i) {
    const UnitState& u = r.units[i];
    vtd.windows[vtd.window_count++] = vmx::HiddenRange{u.register_base, u.register_bytes};
  }
  return vtd.window_count;
}

bool fault_poll_due(ResidentVtd& vtd, uint64_t now_tsc, uint64_t period) {
  if (vtd.result.units_enabled == 0 || now_tsc < vtd.next_poll_tsc) return false;
  vtd.next_poll_tsc = now_tsc + period;
  return true;
}

}  // namespace microhv::vtd
