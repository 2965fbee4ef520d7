// Captures the firmware's CPU state on the calling CPU (control registers,
// EFER, PAT, DEBUGCTL, SYSENTER, FS/GS base, GDTR/IDTR, selectors): what the
// CPU will look like as a guest, written into the VMCS by
// vmx/vmcs_setup.cpp. Runs natively, before microhv_virtualize.
#pragma once

#include "vmx/launch.hpp"

namespace microhv::boot {

void capture_guest_state(vmx::GuestStart* g);

// The firmware's MTRRs on the calling CPU (SDM Vol. 3A 12.11: CPUID.1:EDX
// bit 12, then IA32_MTRRCAP, IA32_MTRR_DEF_TYPE, the fixed ranges when
// MTRRCAP.FIX, every variable range MTRRCAP.VCNT names). The SDM requires
// every processor to hold the same values (12.11.8), so the BSP's stand
// for all. `phys_bits` is MAXPHYADDR, the width of the address fields.
void capture_firmware_mtrrs(vmx::MtrrSnapshot* out, unsigned phys_bits);

}  // namespace microhv::boot
