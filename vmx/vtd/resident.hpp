// What the take-over leaves in microhv's pool about DMA remapping, for the
// host: protect()'s result (the units and the tables), the fault log, when
// to poll next, and the units' register windows that EPT keeps from the
// guest. The EFI side builds it (boot/dma/dma_guard.cpp); the host adopts it
// (vmx/hw/dma.cpp). Plain data apart from the unit accessors, which
// rebind_units() points at the host's own (vmx/vtd/protect.hpp). Portable.
#pragma once

#include <stdint.h>

#include "vmx/ept.hpp"
#include "vmx/vtd/protect.hpp"

namespace microhv::vtd {

struct ResidentVtd {
  ProtectResult result;
  FaultLog faults;
  uint64_t next_poll_tsc = 0;
  // Filled by note_register_windows().
  vmx::HiddenRange windows[kMaxUnits];
  uint32_t window_count = 0;
};

// The register windows of every unit the DMAR lists -- used, refused or
// failed alike -- when at least one unit translates: the guest must not
// reprogram or turn off the units that protect microhv, nor start the
// others. When none translates (no hardware, iommu = off, nothing usable)
// microhv relies on none and leaves all of them to the guest, as the
// machine had them. Returns the number of windows.
uint32_t note_register_windows(ResidentVtd& vtd);

// Whether the host should poll the fault records now (at most once per
// `period` TSC ticks; the first call polls), and if so when next.
bool fault_poll_due(ResidentVtd& vtd, uint64_t now_tsc, uint64_t period);

}  // namespace microhv::vtd
