// The tables microhv builds: an SSDT with the VMBus device, or a complete
// set for a PC without ACPI tables (see boot/acpi/acpi.hpp for why and
// what). Every builder writes into a caller buffer and returns the length
// written, or 0 when the buffer is too small or the input is invalid.
#pragma once

#include "boot/acpi/encoding.hpp"

namespace microhv::acpi {

// ------------------------------------------------------------ the VMBus device

struct MmioWindow {
  uint64_t base = 0;
  uint64_t length = 0;
};

struct VmbusDevice {
  // MMIO space for VMBus devices, listed in MHVM's _CRS. At least one window;
  // Linux ignores windows that end below 1 MiB.
  static constexpr size_t kMaxWindows = 2;
  MmioWindow mmio[kMaxWindows];
  size_t mmio_count = 0;
};

// Appends Device(\_SB.MHVM) { ... Device(VMBS) { ... } } inside the current
// scope of `aml` (emits its own Scope(\_SB) when `in_sb_scope` is false).
void append_vmbus_device(Aml& aml, const VmbusDevice& vmbus, bool in_sb_scope);

// SSDT holding only the VMBus device.
size_t build_vmbus_ssdt(uint8_t* buf, size_t cap, const VmbusDevice& vmbus);

// ------------------------------------------------------------ the full set

// The machine, as far as the full set describes it.
struct Platform {
  // CPUs: ACPI processor UID i has local APIC id apic_ids[i].
  uint32_t cpu_count = 0;
  const uint32_t* apic_ids = nullptr;
  uint32_t local_apic_address = 0xFEE00000;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_address = 0xFEC00000;

  // Fixed ACPI hardware (PIIX4 layout: PM1 event +0 (4 bytes), PM1 control
  // +4 (2), PM timer +8 (4)); pm_base 0 is refused: a FADT without them
  // describes no usable hardware.
  uint16_t pm_base = 0;
  uint16_t pm1_control_offset = 4;
  uint16_t pm_timer_offset = 8;
  bool pm_timer_32bit = false;  // PIIX4's timer has 24 bits
  uint16_t gpe0_block = 0;      // 0: none (Bochs' PIIX4 implements no GPE registers)
  uint8_t gpe0_length = 0;
  uint16_t sci_irq = 9;
  uint8_t s5_sleep_type = 0;  // SLP_TYP for soft-off (PIIX4: 0)
  bool has_8042 = true;

  // PCI root bridge 0: the 32-bit memory window (inclusive bounds) and the
  // IRQs the four PIRQ links are routed to (0: not routed) for _PRT, with the
  // PIIX swizzle: device d, pin p (0 = INTA) uses link (d + p - 1) mod 4.
  uint32_t pci_mmio_first = 0;
  uint32_t pci_mmio_last = 0;
  uint8_t pci_link_irqs[4] = {};

  VmbusDevice vmbus;
};

size_t build_dsdt(uint8_t* buf, size_t cap, const Platform& p);
size_t build_madt(uint8_t* buf, size_t cap, const Platform& p);
// `dsdt` and `facs` must lie below 4 GiB: DSDT goes into both the 32- and the
// 64-bit field, FACS into FIRMWARE_CTRL only (X_FIRMWARE_CTRL would override
// it). Pass 0 for either to leave its fields zero (an ACPI table protocol
// fills them in).
size_t build_fadt(uint8_t* buf, size_t cap, const Platform& p, uint64_t dsdt, uint64_t facs);
size_t build_facs(uint8_t* buf, size_t cap);
size_t build_rsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count);
size_t build_xsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count);
// Revision-2 RSDP; rsdt may be 0 (then only the XSDT is published).
size_t build_rsdp(uint8_t* buf, size_t cap, uint64_t rsdt, uint64_t xsdt);

// Where build_full_set put each table (offsets into its buffer).
struct FullSetLayout {
  size_t rsdp = 0, xsdt = 0, rsdt = 0, fadt = 0, madt = 0, dsdt = 0;
  size_t size = 0;  // bytes used
};

// Writes DSDT, FADT, MADT, XSDT, RSDT and the RSDP (16-byte aligned, in that
// order) into `buf`, which the OS will see at physical address `buf_phys`
// (below 4 GiB); `facs_phys` is the FACS (64-byte aligned, below 4 GiB).
// Returns the layout; size 0 on failure.
FullSetLayout build_full_set(uint8_t* buf, size_t cap, uint64_t buf_phys, uint64_t facs_phys,
                             const Platform& p);

}  // namespace microhv::acpi
