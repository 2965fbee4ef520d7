// Captures the firmware's CPU state on the calling CPU (control registers,
// EFER, PAT, DEBUGCTL, SYSENTER, FS/GS base, GDTR/IDTR, selectors): what the
// CPU will look like as a guest, written into the VMCS by
// vmx/vmcs_setup.cpp. Runs natively, before microhv_virtualize.
#pragma once

#include "vmx/launch.hpp"

namespace microhv::boot {

void capture_guest_state(vmx::GuestStart* g);

}  // namespace microhv::boot
