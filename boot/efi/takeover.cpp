// boot::take_over: the EFI side of taking over the machine, the boot CPU
// first, then every other enabled logical processor (one VP each).
//
// Running in the image the firmware loaded, it finds the CPUs
// (ap_bringup.cpp), builds microhv's resident block (resident.cpp: a
// relocated copy of the image, the per-CPU pages, the host page tables),
// captures the firmware's CPU state (capture.cpp) and calls
// microhv_virtualize (vmx/hw/entry.S), which switches to the host CR3 and
// stack and calls microhv_host_entry in the copy (vmx/hw/root.cpp). When that
// succeeds, the firmware continues as a guest right where
// microhv_virtualize was called, which returns 0. Still in take_over, but
// now as the guest, the BSP checks microhv from the guest side
// (guest_checks.cpp) and brings up the APs through MP services. take_over
// returns EFI_SUCCESS to efi_main and thus to the firmware.
#include "boot/efi/takeover.hpp"

#include "boot/efi/ap_bringup.hpp"
#include "boot/efi/capture.hpp"
#include "boot/efi/guest_checks.hpp"
#include "boot/efi/resident.hpp"
#include "kernel/base/log.hpp"
#include "vmx/info_table.hpp"
#include "vmx/launch.hpp"

extern "C" char ImageBase[];

namespace microhv::boot {

using vmx::CpuLaunch;

EFI_STATUS take_over(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config) {
  EFI_BOOT_SERVICES* bs = st->BootServices;
  EFI_GUID loaded_image_guid = LOADED_IMAGE_PROTOCOL;
  EFI_LOADED_IMAGE* li = nullptr;
  EFI_STATUS s = bs->HandleProtocol(image, &loaded_image_guid, reinterpret_cast<void**>(&li));
  if (EFI_ERROR(s)) {
    log::error("vmx: no LoadedImage protocol (status 0x%llx)\n", (unsigned long long)s);
    return s;
  }
  const uint64_t image_base = reinterpret_cast<uint64_t>(li->ImageBase);
  if (image_base != reinterpret_cast<uint64_t>(ImageBase)) {
    log::error("vmx: LoadedImage base 0x%llx differs from ImageBase 0x%llx\n",
               (unsigned long long)image_base,
               (unsigned long long)reinterpret_cast<uint64_t>(ImageBase));
    return EFI_LOAD_ERROR;
  }

  // Kept on the stack: after the launch this code runs as the guest, for
  // which the whole pool (LaunchInfo included) is not present.
  MpPlan plan;
  discover_cpus(bs, &plan);
  Resident r;
  s = build_resident(bs, *li, plan, config.testdev, &r);
  if (EFI_ERROR(s)) return s;
  vmx::LaunchInfo* info = r.info;

  const vmx::InfoTable table{vmx::kInfoTableSignature, 1,
                             sizeof(vmx::InfoTable),   info->pool_base,
                             info->pool_size,          info->overlay_page};
  plan.host_cr3 = info->host_cr3;
  plan.ap_entry = r.in_copy(reinterpret_cast<const void*>(&microhv_ap_host_entry));
  CpuLaunch* bsp = &info->cpus[0];
  capture_guest_state(&bsp->guest);
  const uint64_t entry = r.in_copy(reinterpret_cast<const void*>(&microhv_host_entry));
  const uint64_t status = microhv_virtualize(bsp, reinterpret_cast<uint64_t (*)(CpuLaunch*)>(entry),
                                             info->host_cr3, bsp->host_stack_top);
  if (status != 0) {
    log::error(
        "vmx: virtualization failed (status 0x%llx); the firmware continues without microhv\n",
        (unsigned long long)status);
    free_resident(bs, r);
    return status;
  }
  log::info("guest: the firmware is running as a guest of microhv\n");
  guest_self_check();
  if (plan.mp != nullptr && plan.count > 1) {
    const uint32_t up = virtualize_aps(bs, plan);
    log::info("guest: %u of %u processor(s) run above microhv as VP 0-%u\n", up, plan.processors,
              up - 1);
    probe_restarted_aps(bs, plan, up);
  }
  if (config.testdev) testdev_self_check();
  publish_info_table(bs, table);
  return EFI_SUCCESS;
}

}  // namespace microhv::boot
