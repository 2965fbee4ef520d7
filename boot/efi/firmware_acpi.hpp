// Where the firmware publishes its ACPI tables: the RSDP in the EFI
// configuration table (UEFI 2.x 4.6), under the ACPI 2.0 GUID or, on old
// firmware, the ACPI 1.0 one. The tables behind it are read with the
// portable walker in boot/acpi/reader.hpp (root_entries, find_table).
#pragma once

#include <efi.h>
#include <stdint.h>

namespace microhv::boot {

// The firmware's RSDP, preferring the ACPI 2.0 entry as Linux does; nullptr
// when there is none with a valid checksum.
const uint8_t* firmware_rsdp(EFI_SYSTEM_TABLE* st);

}  // namespace microhv::boot
