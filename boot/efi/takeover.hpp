// Taking over the machine from the EFI side: the boot CPU first, then every
// other enabled logical processor (one VP each). See takeover.cpp.
#pragma once

#include <efi.h>

#include "kernel/base/config.hpp"

namespace microhv::boot {

// Called by efi_main once VT-x is known to be present (CPUID.1:ECX.VMX = 1 and
// IA32_FEATURE_CONTROL either unlocked or locked with VMX outside SMX). Boot
// services are still available. Virtualizes the boot CPU, then every other
// enabled logical processor through EFI_MP_SERVICES_PROTOCOL (one VP each).
// `config` supplies the options the hypervisor honours (`testdev`). Returns
// the status efi_main hands back to the firmware if microhv does not take
// over the machine; an AP that cannot be virtualized is reported and left
// running natively, which does not make this fail.
EFI_STATUS take_over(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config);

}  // namespace microhv::boot
