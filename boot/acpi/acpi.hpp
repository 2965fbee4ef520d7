// ACPI tables that let a guest OS find microhv's VMBus (ACPI 6.3 layouts).
//
// Linux's hv_vmbus binds to an ACPI device whose _HID is "VMBus" (module alias
// acpi*:VMBus:*). What Linux 6.1 (drivers/hv/vmbus_drv.c) requires of it:
//  - vmbus_acpi_add() walks the device's own _CRS and fails with -ENODEV when
//    that walk fails, so the device must have a _CRS (an empty template will
//    do: on x86 the VMBus interrupt is the fixed HYPERVISOR_CALLBACK_VECTOR
//    and a legacy IRQ descriptor is ignored);
//  - it then walks the _CRS of each ancestor until one yields an Address32/64
//    window that ends at or above 1 MiB (the MMIO space VMBus devices such as
//    the synthetic framebuffer are given). Kernels before the fix "Don't
//    dereference ACPI root object handle" (2023) walk up to the namespace root
//    and oops when no ancestor has such a window, so one must exist. The
//    lowest window should start below 4 GiB, at or below the EFI framebuffer,
//    or vmbus_reserve_fb() warns "Unexpected low mmio base".
// So the device is \_SB.MHVM.VMBS: VMBS (_HID "VMBus", empty _CRS) inside an
// ACPI0004 module device MHVM whose _CRS holds the MMIO windows, the layout of
// Hyper-V's own generation-2 firmware. Linux attaches ACPI0004 to its
// container driver, which claims no resources.
//
// When the firmware has ACPI tables, only an SSDT with that device is added.
// When it has none (OVMF under Bochs), build_full_set() writes a minimal but
// complete set for a PC with PIIX4-style fixed ACPI hardware: RSDP (rev 2),
// RSDT, XSDT, FADT (not hardware-reduced: Linux then keeps PIT, PIC and the PM
// timer), MADT (every CPU, the I/O APIC, IRQ0 -> GSI2), and a DSDT with the
// PCI root bridge (without one Linux scans no PCI bus once ACPI is on), the
// processors, \_S5 (power off) and the VMBus device. FACS is built separately
// because it lives in ACPI NVS memory.
//
// Everything is written into caller buffers with bounds checks; a builder
// returns the length written, or 0 when the buffer is too small or the input
// is invalid. Portable: no EFI, no asm. Table addresses are physical
// addresses, which microhv's boot environment maps one to one; the readers
// (reader.hpp) dereference them as pointers. The EFI side that installs the
// tables is boot/efi/acpi_install.cpp.
//
// Files: encoding (bytes, checksums, AML, resource descriptors), tables (the
// builders), reader (the firmware's tables), spec.hpp (ACPI numbers, internal).
#pragma once

#include "boot/acpi/encoding.hpp"
#include "boot/acpi/reader.hpp"
#include "boot/acpi/tables.hpp"
