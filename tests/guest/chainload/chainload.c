/* Test chainloader for the guest suite (run-qemu.sh, run-bochs.sh): not part
 * of guest_suite.efi. Installed as EFI/BOOT/BOOTX64.EFI, it starts
 * \microhv.efi when the ESP has one (microhv virtualizes the firmware and
 * returns to it), then \guest_suite.efi with the load options
 * "guest_suite.efi " SUITE_OPTIONS (a wide string given with -D at build
 * time), so the suite runs as a guest of microhv. */
#include <efi.h>
#include <efilib.h>

#ifndef SUITE_OPTIONS
#define SUITE_OPTIONS L""
#endif

static CHAR16 options[] = L"guest_suite.efi " SUITE_OPTIONS;

static EFI_STATUS start(EFI_HANDLE self, EFI_HANDLE device, CHAR16* path, CHAR16* opts, UINTN opts_size,
                        BOOLEAN must_exist) {
  EFI_DEVICE_PATH* dp = FileDevicePath(device, path);
  EFI_HANDLE image = NULL;
  EFI_STATUS s = uefi_call_wrapper(BS->LoadImage, 6, FALSE, self, dp, NULL, 0, &image);
  if (EFI_ERROR(s)) {
    if (must_exist) Print(L"chainload: LoadImage %s: %r\n", path, s);
    return s;
  }
  if (opts != NULL) {
    EFI_LOADED_IMAGE* li = NULL;
    uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void**)&li);
    if (li != NULL) {
      li->LoadOptions = opts;
      li->LoadOptionsSize = (UINT32)opts_size;
    }
  }
  s = uefi_call_wrapper(BS->StartImage, 3, image, NULL, NULL);
  Print(L"chainload: %s returned %r\n", path, s);
  return s;
}

EFI_STATUS efi_main(EFI_HANDLE self, EFI_SYSTEM_TABLE* st) {
  InitializeLib(self, st);
  EFI_LOADED_IMAGE* li = NULL;
  uefi_call_wrapper(BS->HandleProtocol, 3, self, &LoadedImageProtocol, (void**)&li);
  if (li == NULL) return EFI_LOAD_ERROR;
  start(self, li->DeviceHandle, L"\\microhv.efi", NULL, 0, FALSE);
  return start(self, li->DeviceHandle, L"\\guest_suite.efi", options, sizeof(options), TRUE);
}
