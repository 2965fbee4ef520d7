// Publishes microhv's ACPI tables to the next boot stage (see boot/acpi/acpi.hpp
// for what they hold and why). Call after VT-x is on and before the next stage
// starts; it uses boot services only.
//
//  - The firmware has ACPI tables (an RSDP under the ACPI 2.0 or 1.0 GUID in
//    the EFI configuration table): the VMBus device is added as an SSDT
//    through EFI_ACPI_TABLE_PROTOCOL, or, without that protocol, by
//    publishing a copy of the root tables with the SSDT added. Nothing is
//    added when the tables already declare a VMBus device.
//  - It has none (OVMF under Bochs): FACS, DSDT, FADT and MADT describing
//    this machine (PIIX4 power management, I/O APIC, `cpu_count` CPUs) are
//    installed through the protocol, or, without it, with RSDP, RSDT and XSDT
//    in ACPI reclaim memory and the RSDP under the ACPI 2.0 GUID. Only a
//    PIIX4 (i440FX) machine is described; elsewhere nothing is installed.
//
// Every outcome is logged on one line starting "microhv: acpi:". Failures are
// not fatal to the boot: the next stage then runs without the VMBus device.
#pragma once

#include <efi.h>
#include <stdint.h>

namespace microhv::boot {

struct AcpiOptions {
  // Use EFI_ACPI_TABLE_PROTOCOL when the firmware has it (tests turn this off
  // to exercise the path for firmware without it).
  bool use_table_protocol = true;
};

// cpu_count: the CPUs to list in a MADT built from scratch (APIC ids come
// from EFI_MP_SERVICES_PROTOCOL when available, else 0..cpu_count-1); 0 means
// every enabled CPU the MP services report (1 without them).
EFI_STATUS publish_acpi(EFI_SYSTEM_TABLE* st, uint32_t cpu_count,
                        const AcpiOptions& options = AcpiOptions{});

}  // namespace microhv::boot
