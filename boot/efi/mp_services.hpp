// EFI_MP_SERVICES_PROTOCOL (UEFI Platform Initialization spec, Vol. 2, "MP
// Services Protocol"); GNU-EFI does not define it. The one definition, used
// by the AP bring-up (boot/efi/ap_bringup.cpp) and the ACPI MADT
// (boot/efi/acpi_install.cpp). The processor information it returns is
// boot/mp/processors.hpp.
#pragma once

#include <efi.h>

#include "boot/mp/processors.hpp"

namespace microhv::boot {

// {3fdda605-a76e-4f46-ad29-12f4531b3d08}
#define MICROHV_MP_SERVICES_PROTOCOL_GUID            \
  {                                                  \
    0x3fdda605, 0xa76e, 0x4f46, {                    \
      0xad, 0x29, 0x12, 0xf4, 0x53, 0x1b, 0x3d, 0x08 \
    }                                                \
  }

using EfiApProcedure = void(EFIAPI*)(void* argument);

struct EfiMpServices {
  EFI_STATUS(EFIAPI* GetNumberOfProcessors)(EfiMpServices* self, UINTN* total, UINTN* enabled);
  // `number` without kExtendedTopology: the firmware writes at most
  // sizeof(EfiProcessorInformation) bytes.
  EFI_STATUS(EFIAPI* GetProcessorInfo)
  (EfiMpServices* self, UINTN number, EfiProcessorInformation* info);
  void* StartupAllAPs;  // not used: it runs every AP at once, and blocks unless given an event
  EFI_STATUS(EFIAPI* StartupThisAP)
  (EfiMpServices* self, EfiApProcedure procedure, UINTN number, EFI_EVENT wait_event,
   UINTN timeout_us, void* argument, BOOLEAN* finished);
  void* SwitchBSP;
  void* EnableDisableAP;
  EFI_STATUS(EFIAPI* WhoAmI)(EfiMpServices* self, UINTN* number);
};

// LocateProtocol for it; *out is nullptr unless the status is success.
inline EFI_STATUS locate_mp_services(EFI_BOOT_SERVICES* bs, EfiMpServices** out) {
  EFI_GUID guid = MICROHV_MP_SERVICES_PROTOCOL_GUID;
  void* p = nullptr;
  const EFI_STATUS s = bs->LocateProtocol(&guid, nullptr, &p);
  *out = EFI_ERROR(s) ? nullptr : static_cast<EfiMpServices*>(p);
  return s;
}

}  // namespace microhv::boot
