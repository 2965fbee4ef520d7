#include "boot/dma/dma_guard.hpp"

#include "boot/acpi/reader.hpp"
#include "kernel/base/log.hpp"

namespace microhv::boot {
namespace {

unsigned long long ull(uint64_t v) {
  return static_cast<unsigned long long>(v);
}

}  // namespace

uint64_t DmaGuard::survey(const uint8_t* rsdp, PciConfigSpace& pci, uint64_t identity_limit,
                          DmaSurveyMemory& memory) {
  request_ = vtd::ProtectRequest{};
  request_.policy = policy_;
  request_.ranges = &pool_;
  request_.range_count = 1;
  request_.identity_limit = identity_limit;
  dmar_table_ = nullptr;
  if (policy_ == IommuPolicy::kOff) return 0;  // protect() says so; nothing read

  uint32_t length = 0;
  const uint8_t* table = acpi::find_table(rsdp, "DMAR", &length);
  if (table == nullptr) return 0;
  char error[200];
  if (!vtd::parse_dmar(table, length, &memory.dmar, error, sizeof(error))) {
    // Unusable, not fatal in itself: the policy decides, as for no table.
    log::error("vtd: the firmware's ACPI DMAR table is malformed and not used: %s\n", error);
    return 0;
  }
  // The firmware's own table, in RAM it may be renamed in (hide_dmar).
  dmar_table_ = const_cast<uint8_t*>(table);
  dmar_length_ = length;
  request_.dmar = &memory.dmar;
  if (memory.dmar.unit_count == 0) return 0;

  // The scan reaches segment 0 only (configuration mechanism #1). With
  // units on other segments, or more functions than fit, a list would leave
  // devices unjudged: coverage then comes from the DMAR alone (every
  // segment with a unit needs an INCLUDE_PCI_ALL one), which is stricter.
  bool other_segments = false;
  for (uint32_t i = 0; i < memory.dmar.unit_count; ++i) {
    other_segments = other_segments || memory.dmar.units[i].segment != 0;
  }
  const uint32_t found =
      other_segments ? 0 : scan_pci(pci, 0, memory.functions, DmaSurveyMemory::kMaxFunctions);
  if (!other_segments && found <= DmaSurveyMemory::kMaxFunctions) {
    request_.devices = memory.functions;
    request_.device_count = found;
  } else {
    log::info("vtd: %s: whether every device is behind a unit is judged from the DMAR alone\n",
              other_segments ? "remapping units on PCI segments other than 0 (not scanned)"
                             : "more PCI functions than microhv lists");
  }
  return vtd::protect_table_pages(request_, map_);
}

bool DmaGuard::protect(Hpa pool_base, uint64_t pool_size, uint64_t identity_limit,
                       vmx::PageAllocator& alloc, vmx::PhysAccess& phys, vtd::ResidentVtd& vtd) {
  pool_ = vtd::ProtectedRange{pool_base, pool_size};
  request_.identity_limit = identity_limit;
  vtd::protect(request_, alloc, phys, map_, &vtd.result);
  // The survey memory may go now.
  request_.dmar = nullptr;
  request_.devices = nullptr;
  vtd::log_protect_line(vtd.result);
  if (!vtd.result.take_over_allowed) {
    // Partial protection under `required`: the caller frees the pool the
    // tables live in, so no unit may keep walking them.
    vtd::unprotect(vtd.result);
    return false;
  }
  vtd::note_register_windows(vtd);
  translating_ = vtd.result.units_enabled != 0;
  return true;
}

bool DmaGuard::hide_dmar() {
  if (!translating_ || dmar_table_ == nullptr || hidden_) return hidden_;
  hidden_ = vtd::hide_dmar(dmar_table_, dmar_length_);
  if (hidden_) {
    log::info(
        "vtd: ACPI DMAR table at 0x%llx renamed XMAR: the guest sees no remapping hardware (a "
        "virtual IOMMU is not offered)\n",
        ull(reinterpret_cast<uintptr_t>(dmar_table_)));
  } else {
    log::error(
        "vtd: the ACPI DMAR table could not be hidden: an OS above microhv may try to drive "
        "the IOMMU (and fault on its registers)\n");
  }
  return hidden_;
}

void DmaGuard::reveal_dmar() {
  if (hidden_ && vtd::reveal_dmar(dmar_table_, dmar_length_)) hidden_ = false;
}

bool DmaGuard::unprotect(vtd::ResidentVtd& vtd) {
  translating_ = false;
  vtd::rebind_units(vtd.result, map_);
  return vtd::unprotect(vtd.result);
}

}  // namespace microhv::boot
