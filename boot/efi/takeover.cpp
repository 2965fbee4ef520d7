// boot::take_over: the EFI side of taking over the machine, the boot CPU
// first, then every other enabled logical processor (one VP each).
//
// Running in the image the firmware loaded, it finds the CPUs
// (ap_bringup.cpp), surveys DMA remapping (boot/dma/dma_guard.hpp: the DMAR,
// the PCI functions, the table size), builds microhv's resident block
// (resident.cpp: a relocated copy of the image, the per-CPU pages, the host
// page tables, the DMA tables), turns DMA remapping on so that no device
// reaches the block -- natively, before the take-over -- captures the
// firmware's CPU state (capture.cpp) and calls microhv_virtualize
// (vmx/hw/entry.S), which switches to the host CR3 and stack and calls
// microhv_host_entry in the copy (vmx/hw/root.cpp). When that succeeds, the
// firmware continues as a guest right where microhv_virtualize was called,
// which returns 0. Still in take_over, but now as the guest, the BSP hides
// the DMAR, checks microhv from the guest side (guest_checks.cpp) and brings
// up the APs through MP services. take_over returns EFI_SUCCESS to efi_main
// and thus to the firmware.
#include "boot/efi/takeover.hpp"

#include "boot/efi/capture.hpp"
#include "boot/efi/firmware_acpi.hpp"
#include "boot/efi/guest_checks.hpp"
#include "boot/efi/memory_map.hpp"
#include "boot/efi/pci_config.hpp"
#include "kernel/base/log.hpp"
#include "vmx/info_table.hpp"
#include "vmx/launch.hpp"

extern "C" char ImageBase[];

namespace microhv::boot {
namespace {

using vmx::CpuLaunch;

// The VT-d register accessors' bounded waits, before the take-over.
EFI_BOOT_SERVICES* g_stall_bs;
void stall_us(uint32_t us) {
  g_stall_bs->Stall(us);
}

}  // namespace

Prepared::Prepared(EFI_BOOT_SERVICES* boot_services, IommuPolicy policy)
    : bs(boot_services), vtd_map(&stall_us), dma(policy, vtd_map) {
  g_stall_bs = boot_services;
}

void Prepared::release_survey() {
  if (survey != nullptr) bs->FreePool(survey);
  survey = nullptr;
}

EFI_STATUS prepare_take_over(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config,
                             Prepared* p) {
  EFI_BOOT_SERVICES* bs = st->BootServices;
  EFI_GUID loaded_image_guid = LOADED_IMAGE_PROTOCOL;
  EFI_STATUS s = bs->HandleProtocol(image, &loaded_image_guid, reinterpret_cast<void**>(&p->li));
  if (EFI_ERROR(s)) {
    log::error("vmx: no LoadedImage protocol (status 0x%llx)\n", (unsigned long long)s);
    return s;
  }
  const uint64_t image_base = reinterpret_cast<uint64_t>(p->li->ImageBase);
  if (image_base != reinterpret_cast<uint64_t>(ImageBase)) {
    log::error("vmx: LoadedImage base 0x%llx differs from ImageBase 0x%llx\n",
               (unsigned long long)image_base,
               (unsigned long long)reinterpret_cast<uint64_t>(ImageBase));
    return EFI_LOAD_ERROR;
  }
  discover_cpus(bs, &p->plan);

  s = bs->AllocatePool(EfiLoaderData, sizeof(DmaSurveyMemory),
                       reinterpret_cast<void**>(&p->survey));
  if (EFI_ERROR(s)) {
    log::error("vtd: no memory for the DMA survey (AllocatePool: 0x%llx)\n", (unsigned long long)s);
    return s;
  }
  PortPciConfig pci(bs);
  const uint64_t table_pages =
      p->dma.survey(firmware_rsdp(st), pci, current_identity_limit(bs), *p->survey);
  s = build_resident(bs, *p->li, p->plan, config.testdev, table_pages, &p->resident);
  if (EFI_ERROR(s)) {
    p->release_survey();
    return s;
  }
  vmx::LaunchInfo& info = *p->resident.info;
  BumpPages tables(&info.vtd_tables_next, info.vtd_tables_end);
  IdentityPhys phys;
  const bool allowed =
      p->dma.protect(Hpa(info.pool_base), info.pool_size, info.ept_limit, tables, phys, p->vtd());
  p->release_survey();
  if (!allowed) {
    free_resident(bs, p->resident);
    return EFI_ACCESS_DENIED;
  }
  return EFI_SUCCESS;
}

void give_back(Prepared& p) {
  p.dma.reveal_dmar();
  p.dma.unprotect(p.vtd());
  free_resident(p.bs, p.resident);
}

EFI_STATUS take_over(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config) {
  EFI_BOOT_SERVICES* bs = st->BootServices;
  // Kept on the stack: after the launch this code runs as the guest, for
  // which the whole pool (LaunchInfo included) is not present.
  Prepared p(bs, config.iommu);
  EFI_STATUS s = prepare_take_over(image, st, config, &p);
  if (EFI_ERROR(s)) return s;
  vmx::LaunchInfo* info = p.resident.info;

  const vmx::InfoTable table{vmx::kInfoTableSignature, 1,
                             sizeof(vmx::InfoTable),   info->pool_base,
                             info->pool_size,          info->overlay_page};
  MpPlan& plan = p.plan;
  plan.host_cr3 = info->host_cr3;
  plan.ap_entry = p.resident.in_copy(reinterpret_cast<const void*>(&microhv_ap_host_entry));
  CpuLaunch* bsp = &info->cpus[0];
  capture_guest_state(&bsp->guest);
  const uint64_t entry = p.resident.in_copy(reinterpret_cast<const void*>(&microhv_host_entry));
  const uint64_t status = microhv_virtualize(bsp, reinterpret_cast<uint64_t (*)(CpuLaunch*)>(entry),
                                             info->host_cr3, bsp->host_stack_top);
  if (status != 0) {
    log::error(
        "vmx: virtualization failed (status 0x%llx); the firmware continues without microhv\n",
        (unsigned long long)status);
    give_back(p);
    return status;
  }
  log::info("guest: the firmware is running as a guest of microhv\n");
  // As the guest now: the units are microhv's (their registers are gone
  // from this view), the DMAR is ordinary guest memory.
  p.dma.hide_dmar();
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
