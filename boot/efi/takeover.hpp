// Entry into the VT-x back end. Target-only (uses EFI types): include from
// boot/ and *_hw.cpp, not from portable .cpp files.
#pragma once

#include <efi.h>

#include "kernel/base/config.hpp"

namespace microhv::vmx {

// Called by efi_main once VT-x is known to be present (CPUID.1:ECX.VMX = 1 and
// IA32_FEATURE_CONTROL either unlocked or locked with VMX outside SMX). Boot
// services are still available. Virtualizes the boot CPU, then every other
// enabled logical processor through EFI_MP_SERVICES_PROTOCOL (one VP each).
// `config` supplies the options the hypervisor honours (`testdev`). Returns
// the status efi_main hands back to the firmware if microhv does not take
// over the machine; an AP that cannot be virtualized is reported and left
// running natively, which does not make this fail.
EFI_STATUS start(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config);

}  // namespace microhv::vmx
