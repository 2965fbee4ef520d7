// Entry into the VT-x back end. Target-only (uses EFI types): include from
// boot/ and *_hw.cpp, not from portable .cpp files.
#pragma once

#include <efi.h>

namespace microhv::vmx {

// Called by efi_main once VT-x is known to be present (CPUID.1:ECX.VMX = 1 and
// IA32_FEATURE_CONTROL either unlocked or locked with VMX outside SMX). Boot
// services are still available. Returns the status efi_main hands back to the
// firmware if microhv does not take over the machine.
EFI_STATUS start(EFI_HANDLE image, EFI_SYSTEM_TABLE* st);

}  // namespace microhv::vmx
