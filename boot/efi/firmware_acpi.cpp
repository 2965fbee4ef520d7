#include "boot/efi/firmware_acpi.hpp"

#include "boot/acpi/reader.hpp"

namespace microhv::boot {
namespace {

bool same_guid(const EFI_GUID& a, const EFI_GUID& b) {
  const auto* x = reinterpret_cast<const uint8_t*>(&a);
  const auto* y = reinterpret_cast<const uint8_t*>(&b);
  for (size_t i = 0; i < sizeof(EFI_GUID); ++i) {
    if (x[i] != y[i]) return false;
  }
  return true;
}

}  // namespace

const uint8_t* firmware_rsdp(EFI_SYSTEM_TABLE* st) {
  EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
  const uint8_t* v1 = nullptr;
  for (UINTN i = 0; i < st->NumberOfTableEntries; ++i) {
    const EFI_CONFIGURATION_TABLE& t = st->ConfigurationTable[i];
    const auto* p = static_cast<const uint8_t*>(t.VendorTable);
    if (same_guid(t.VendorGuid, acpi20) && acpi::rsdp_valid(p)) return p;
    if (same_guid(t.VendorGuid, acpi10) && acpi::rsdp_valid(p)) v1 = p;
  }
  return v1;
}

}  // namespace microhv::boot
