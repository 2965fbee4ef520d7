// The EFI entry point: serial log, banner, VT-x check, microhv.cfg, then the
// VT-x back end (or, with `vtd-selftest = on`, the VT-d test mode).
// Whatever happens, control returns to the firmware with a status rather than
// hanging, so the boot manager can move on to the next boot option.
#include <efi.h>

#include "arch/serial.hpp"
#include "boot/efi/acpi_install.hpp"
#include "boot/efi/next_stage.hpp"
#include "boot/efi/takeover.hpp"
#include "boot/efi/vmx_detect.hpp"
#include "boot/efi/vtd_selftest.hpp"
#include "kernel/base/log.hpp"

#ifndef MICROHV_VERSION
#error "MICROHV_VERSION must be defined by the build"
#endif

namespace {

constexpr char kBanner[] = "microhv " MICROHV_VERSION " (TLFS/Hyper-V interface on Intel VT-x)\n";

EFI_STATUS return_to_firmware(EFI_STATUS status) {
  microhv::log::info("returning to firmware\n");
  microhv::serial::flush();
  return status;
}

}  // namespace

// Called by GNU-EFI's crt0 with the SysV convention (so not EFIAPI), after it
// has applied the image's relocations. No global constructors have run.
extern "C" EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE* st) {
  using namespace microhv;
  serial::init();
  log::set_sink([](void*, const char* text, size_t len) { serial::write(text, len); });
  serial::write(kBanner, sizeof(kBanner) - 1);

  const bool vmx = boot::detect_vmx();
  Config config;
  boot::read_config(image, st, &config);
  // The VT-d test mode needs no VT-x: it stops before the launch.
  if (config.vtd_selftest) return return_to_firmware(boot::run_vtd_selftest(image, st, config));
  if (!vmx) return return_to_firmware(EFI_UNSUPPORTED);
  EFI_STATUS status = boot::take_over(image, st, config);
  if (EFI_ERROR(status)) return return_to_firmware(status);
  // The VMBus device (and, where the firmware has no ACPI at all, the tables
  // an OS needs to find its CPUs) for whatever boots next. 0: every CPU MP
  // services reports, which is every CPU microhv virtualizes. Not fatal.
  boot::publish_acpi(st, 0);
  if (config.image[0] == '\0') {
    log::info("no next stage configured; the firmware's boot manager continues\n");
    return return_to_firmware(EFI_SUCCESS);
  }
  return return_to_firmware(boot::start_next_stage(image, st, config));
}
