// Taking over the machine from the EFI side: the boot CPU first, then every
// other enabled logical processor (one VP each). See takeover.cpp.
#pragma once

#include <efi.h>

#include "boot/dma/dma_guard.hpp"
#include "boot/efi/ap_bringup.hpp"
#include "boot/efi/resident.hpp"
#include "kernel/base/config.hpp"
#include "vmx/hw/vtd_hw.hpp"

namespace microhv::boot {

// What the first half of the take-over prepared, up to and including DMA
// protection; the caller keeps it on its stack (the guest cannot see the
// pool once launched).
struct Prepared {
  explicit Prepared(EFI_BOOT_SERVICES* boot_services, IommuPolicy policy);
  vtd::ResidentVtd& vtd() const { return *reinterpret_cast<vtd::ResidentVtd*>(resident.info->vtd); }

  EFI_BOOT_SERVICES* bs;
  EFI_LOADED_IMAGE* li = nullptr;
  MpPlan plan;
  Resident resident;
  vtd::MmioRegisterMap vtd_map;  // the EFI side's register accessors
  DmaGuard dma;
  DmaSurveyMemory* survey = nullptr;  // EFI pool; freed by release_survey()
  void release_survey();
};

// The take-over up to the launch: the CPUs, the DMA survey, the resident
// pool (image copy, host tables), DMA protection of the whole pool. On
// failure, or when the `iommu =` policy refuses, everything taken is given
// back and the status to return to the firmware comes back
// (EFI_ACCESS_DENIED for the policy).
EFI_STATUS prepare_take_over(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config,
                             Prepared* p);

// Gives back what prepare_take_over took when microhv does not launch after
// all: translation off, the pool freed.
void give_back(Prepared& p);

// Called by efi_main once VT-x is known to be present (CPUID.1:ECX.VMX = 1 and
// IA32_FEATURE_CONTROL either unlocked or locked with VMX outside SMX). Boot
// services are still available. Prepares (above), virtualizes the boot CPU,
// hides the DMAR from the guest when a unit translates, then virtualizes
// every other enabled logical processor through EFI_MP_SERVICES_PROTOCOL
// (one VP each). `config` supplies the options the hypervisor honours
// (`testdev`, `iommu`). Returns the status efi_main hands back to the
// firmware if microhv does not take over the machine; an AP that cannot be
// virtualized is reported and left running natively, which does not make
// this fail.
EFI_STATUS take_over(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config);

}  // namespace microhv::boot
