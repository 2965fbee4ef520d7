#include "boot/acpi/tables.hpp"

#include "boot/acpi/spec.hpp"

namespace microhv::acpi {
namespace {

using namespace spec;

// ------------------------------------------------------------ table framing

void begin_table(Writer& w, const char* signature, uint8_t revision, const char* table_id) {
  w.padded(signature, 4);
  w.u32(0);  // length, patched by end_table
  w.u8(revision);
  w.u8(0);  // checksum, patched by end_table
  w.padded(kOemId, 6);
  w.padded(table_id, 8);
  w.u32(1);  // OEM revision
  w.padded(kCreatorId, 4);
  w.u32(kCreatorRevision);
}

size_t end_table(Writer& w) {
  if (!w.ok() || w.size() < kHeaderSize) return 0;
  w.patch_u32(4, static_cast<uint32_t>(w.size()));
  fix_checksum(w.data(), w.size(), 9);
  return w.ok() ? w.size() : 0;
}

// Generic Address Structure for a block of I/O ports (0 = none).
void gas_io(Writer& w, uint32_t port, uint8_t length_bytes) {
  if (port == 0) {
    w.zeros(12);
    return;
  }
  w.u8(kSpaceIdSystemIo);
  w.u8(static_cast<uint8_t>(length_bytes * 8));  // register bit width
  w.u8(0);                                       // bit offset
  w.u8(0);                                       // access size: any, as ACPICA assumes
  w.u64(port);
}

bool valid_window(const MmioWindow& m) {
  return m.length != 0 && m.base + (m.length - 1) >= m.base;
}

// What Linux's vmbus_walk_resources() keeps: windows ending at or above 1 MiB.
bool valid_vmbus(const VmbusDevice& v) {
  if (v.mmio_count == 0 || v.mmio_count > VmbusDevice::kMaxWindows) return false;
  bool usable = false;
  for (size_t i = 0; i < v.mmio_count; ++i) {
    if (!valid_window(v.mmio[i])) return false;
    if (v.mmio[i].base + (v.mmio[i].length - 1) >= 0x100000) usable = true;
  }
  return usable;
}

bool valid_platform(const Platform& p) {
  if (p.cpu_count == 0 || p.cpu_count > kMaxCpus || p.apic_ids == nullptr) return false;
  if (p.pm_base == 0) return false;
  if (p.pci_mmio_last < p.pci_mmio_first) return false;
  return valid_vmbus(p.vmbus);
}

}  // namespace

// ------------------------------------------------------------ the VMBus device

void append_vmbus_device(Aml& aml, const VmbusDevice& vmbus, bool in_sb_scope) {
  if (!valid_vmbus(vmbus)) {
    aml.fail();
    return;
  }
  if (!in_sb_scope) aml.scope("\\_SB");
  aml.device("MHVM");
  aml.name_string("_HID", "ACPI0004");  // module device: a container of devices
  aml.name_integer("_UID", 0);
  uint8_t crs[2 * 46 + 2];
  Resources windows(crs, sizeof(crs));
  for (size_t i = 0; i < vmbus.mmio_count; ++i) {
    windows.memory64(vmbus.mmio[i].base, vmbus.mmio[i].base + (vmbus.mmio[i].length - 1), false);
  }
  windows.finish();
  if (!windows.ok()) aml.fail();
  aml.name_buffer("_CRS", windows.data(), windows.size());

  aml.device("VMBS");
  aml.name_string("_HID", kVmbusHid);
  aml.name_integer("_UID", 0);
  uint8_t empty[2];
  Resources none(empty, sizeof(empty));
  none.finish();
  aml.name_buffer("_CRS", none.data(), none.size());
  aml.end();

  aml.end();
  if (!in_sb_scope) aml.end();
}

size_t build_vmbus_ssdt(uint8_t* buf, size_t cap, const VmbusDevice& vmbus) {
  Writer w(buf, cap);
  begin_table(w, "SSDT", 2, "VMBUS");
  Aml aml(w);
  append_vmbus_device(aml, vmbus, false);
  if (!aml.ok()) return 0;
  return end_table(w);
}

// ------------------------------------------------------------ the full set

size_t build_dsdt(uint8_t* buf, size_t cap, const Platform& p) {
  if (!valid_platform(p)) return 0;
  Writer w(buf, cap);
  begin_table(w, "DSDT", 2, "MICROHV");  // revision 2: 64-bit integers
  Aml aml(w);

  const uint64_t s5[2] = {p.s5_sleep_type, p.s5_sleep_type};  // PM1a, PM1b SLP_TYP
  aml.name_package("\\_S5", s5, 2);

  aml.scope("\\_SB");

  aml.device("PCI0");
  aml.name_eisa_id("_HID", "PNP0A03");
  aml.name_integer("_UID", 0);
  uint8_t crs[128];
  Resources r(crs, sizeof(crs));
  r.bus_numbers(0, 0xFF);
  r.io_port(0xCF8, 8);  // configuration mechanism #1, consumed by the bridge
  r.io_window(0x0000, 0x0CF7);
  r.io_window(0x0D00, 0xFFFF);
  r.memory32(0x000A0000, 0x000BFFFF, true);  // legacy VGA
  if (p.pci_mmio_last > p.pci_mmio_first) r.memory32(p.pci_mmio_first, p.pci_mmio_last, false);
  r.finish();
  if (!r.ok()) aml.fail();
  aml.name_buffer("_CRS", r.data(), r.size());
  Aml::PrtEntry prt[32 * 4];
  size_t prt_count = 0;
  for (uint8_t slot = 0; slot < 32; ++slot) {
    for (uint8_t pin = 0; pin < 4; ++pin) {
      uint8_t irq = p.pci_link_irqs[(slot + pin + 3) % 4];  // (slot + pin - 1) mod 4
      if (irq != 0) prt[prt_count++] = {slot, pin, irq};
    }
  }
  if (prt_count > 0) aml.name_prt(prt, prt_count);
  aml.end();

  for (uint32_t i = 0; i < p.cpu_count; ++i) {
    const char hex[] = "0123456789ABCDEF";
    char name[5] = {'C', hex[(i >> 8) & 0xF], hex[(i >> 4) & 0xF], hex[i & 0xF], '\0'};
    aml.device(name);
    aml.name_string("_HID", "ACPI0007");  // processor device; _UID is its MADT UID
    aml.name_integer("_UID", i);
    aml.end();
  }

  append_vmbus_device(aml, p.vmbus, true);
  aml.end();
  if (!aml.ok()) return 0;
  return end_table(w);
}

size_t build_madt(uint8_t* buf, size_t cap, const Platform& p) {
  if (p.cpu_count == 0 || p.cpu_count > kMaxCpus || p.apic_ids == nullptr) return 0;
  Writer w(buf, cap);
  begin_table(w, "APIC", 5, "MICROHV");
  w.u32(p.local_apic_address);
  w.u32(1);  // PCAT_COMPAT: dual 8259s are present (the OS masks them)
  bool x2apic = false;
  for (uint32_t i = 0; i < p.cpu_count; ++i) {
    uint32_t id = p.apic_ids[i];
    if (id < 0xFF && i < 0xFF) {
      w.u8(kMadtLocalApic);
      w.u8(8);
      w.u8(static_cast<uint8_t>(i));  // ACPI processor UID
      w.u8(static_cast<uint8_t>(id));
      w.u32(1);  // enabled
    } else {
      x2apic = true;
      w.u8(kMadtLocalX2Apic);
      w.u8(16);
      w.u16(0);
      w.u32(id);
      w.u32(1);
      w.u32(i);
    }
  }
  w.u8(kMadtIoApic);
  w.u8(12);
  w.u8(p.ioapic_id);
  w.u8(0);
  w.u32(p.ioapic_address);
  w.u32(0);  // its first GSI
  // The PIT's IRQ 0 is wired to I/O APIC pin 2; bus ISA, flags 0: conforming
  // (edge, active high).
  w.u8(kMadtOverride);
  w.u8(10);
  w.u8(0);
  w.u8(0);
  w.u32(2);
  w.u16(0);
  // LINT1 of every processor is the NMI input (flags 0: conforming).
  w.u8(kMadtLocalApicNmi);
  w.u8(6);
  w.u8(0xFF);
  w.u16(0);
  w.u8(1);
  if (x2apic) {
    w.u8(kMadtLocalX2ApicNmi);
    w.u8(12);
    w.u16(0);
    w.u32(0xFFFFFFFFu);
    w.u8(1);
    w.zeros(3);
  }
  return end_table(w);
}

size_t build_fadt(uint8_t* buf, size_t cap, const Platform& p, uint64_t dsdt, uint64_t facs) {
  if (p.pm_base == 0 || dsdt > 0xFFFFFFFFu || facs > 0xFFFFFFFFu || (facs & 63) != 0) return 0;
  const uint32_t pm1_event = p.pm_base;
  const uint32_t pm1_control = p.pm_base + p.pm1_control_offset;
  const uint32_t pm_timer = p.pm_base + p.pm_timer_offset;
  Writer w(buf, cap);
  begin_table(w, "FACP", 6, "MICROHV");
  w.u32(static_cast<uint32_t>(facs));  // FIRMWARE_CTRL
  w.u32(static_cast<uint32_t>(dsdt));
  w.u8(0);  // reserved (ACPI 1.0 INT_MODEL)
  w.u8(0);  // preferred PM profile: unspecified
  w.u16(p.sci_irq);
  w.u32(0);  // SMI_CMD 0: no legacy mode, always in ACPI mode (no SMIs)
  w.u8(0);   // ACPI_ENABLE
  w.u8(0);   // ACPI_DISABLE
  w.u8(0);   // S4BIOS_REQ
  w.u8(0);   // PSTATE_CNT
  w.u32(pm1_event);
  w.u32(0);  // PM1b event
  w.u32(pm1_control);
  w.u32(0);  // PM1b control
  w.u32(0);  // PM2 control
  w.u32(pm_timer);
  w.u32(p.gpe0_block);
  w.u32(0);  // GPE1
  w.u8(4);   // PM1_EVT_LEN
  w.u8(2);   // PM1_CNT_LEN
  w.u8(0);   // PM2_CNT_LEN
  w.u8(4);   // PM_TMR_LEN
  w.u8(p.gpe0_block != 0 ? p.gpe0_length : 0);
  w.u8(0);        // GPE1_BLK_LEN
  w.u8(0);        // GPE1_BASE
  w.u8(0);        // CST_CNT
  w.u16(0x0FFF);  // P_LVL2_LAT > 100: no C2
  w.u16(0x0FFF);  // P_LVL3_LAT > 1000: no C3
  w.u16(0);       // FLUSH_SIZE
  w.u16(0);       // FLUSH_STRIDE
  w.u8(0);        // DUTY_OFFSET
  w.u8(0);        // DUTY_WIDTH
  w.u8(0);        // DAY_ALRM
  w.u8(0);        // MON_ALRM
  w.u8(0x32);     // CENTURY: CMOS register 0x32
  w.u16(static_cast<uint16_t>(kBootLegacyDevices | (p.has_8042 ? kBoot8042 : 0)));
  w.u8(0);
  // Buttons are neither fixed features nor described: the OS creates none.
  w.u32(kFadtWbinvd | kFadtProcC1 | kFadtPwrButton | kFadtSlpButton |
        (p.pm_timer_32bit ? kFadtTmrValExt : 0));
  w.zeros(12);  // RESET_REG: none
  w.u8(0);      // RESET_VALUE
  w.u16(0);     // ARM_BOOT_ARCH
  w.u8(3);      // FADT minor version: ACPI 6.3
  w.u64(0);     // X_FIRMWARE_CTRL: FIRMWARE_CTRL is used
  w.u64(dsdt);  // X_DSDT
  gas_io(w, pm1_event, 4);
  gas_io(w, 0, 0);  // X_PM1b_EVT_BLK
  gas_io(w, pm1_control, 2);
  gas_io(w, 0, 0);  // X_PM1b_CNT_BLK
  gas_io(w, 0, 0);  // X_PM2_CNT_BLK
  gas_io(w, pm_timer, 4);
  gas_io(w, p.gpe0_block, p.gpe0_block != 0 ? p.gpe0_length : 0);
  gas_io(w, 0, 0);  // X_GPE1_BLK
  w.zeros(12);      // SLEEP_CONTROL_REG
  w.zeros(12);      // SLEEP_STATUS_REG
  w.u64(0);         // hypervisor vendor identity
  size_t n = end_table(w);
  return n == kFadtSize ? n : 0;
}

size_t build_facs(uint8_t* buf, size_t cap) {
  Writer w(buf, cap);
  w.padded("FACS", 4);
  w.u32(kFacsSize);
  w.u32(0);  // hardware signature
  w.u32(0);  // firmware waking vector
  w.u32(0);  // global lock
  w.u32(0);  // flags: no S4BIOS, no 64-bit wake
  w.u64(0);  // X firmware waking vector
  w.u8(2);   // version
  w.zeros(3);
  w.u32(0);  // OSPM flags
  w.zeros(24);
  return w.ok() ? w.size() : 0;
}

size_t build_rsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count) {
  Writer w(buf, cap);
  begin_table(w, "RSDT", 1, "MICROHV");
  for (size_t i = 0; i < count; ++i) {
    if (tables[i] > 0xFFFFFFFFu) return 0;
    w.u32(static_cast<uint32_t>(tables[i]));
  }
  return end_table(w);
}

size_t build_xsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count) {
  Writer w(buf, cap);
  begin_table(w, "XSDT", 1, "MICROHV");
  for (size_t i = 0; i < count; ++i) w.u64(tables[i]);
  return end_table(w);
}

size_t build_rsdp(uint8_t* buf, size_t cap, uint64_t rsdt, uint64_t xsdt) {
  if (rsdt > 0xFFFFFFFFu) return 0;
  Writer w(buf, cap);
  w.padded("RSD PTR ", 8);
  w.u8(0);  // checksum of the first 20 bytes
  w.padded(kOemId, 6);
  w.u8(2);  // revision: ACPI 2.0+ (XSDT)
  w.u32(static_cast<uint32_t>(rsdt));
  w.u32(kRsdpSize);
  w.u64(xsdt);
  w.u8(0);  // extended checksum
  w.zeros(3);
  if (!w.ok()) return 0;
  fix_checksum(w.data(), 20, 8);
  fix_checksum(w.data(), kRsdpSize, 32);
  return w.size();
}

FullSetLayout build_full_set(uint8_t* buf, size_t cap, uint64_t buf_phys, uint64_t facs_phys,
                             const Platform& p) {
  FullSetLayout l;
  FullSetLayout failed;
  size_t off = 0;
  auto place = [&](size_t* at, size_t n) {
    if (n == 0) return false;
    *at = off;
    off = align_up(off + n, 16);
    return true;
  };
  auto room = [&]() { return off <= cap ? cap - off : 0; };

  if (buf == nullptr || (buf_phys & 15) != 0) return failed;
  if (!place(&l.dsdt, build_dsdt(buf + off, room(), p))) return failed;
  if (!place(&l.fadt, build_fadt(buf + off, room(), p, buf_phys + l.dsdt, facs_phys))) {
    return failed;
  }
  if (!place(&l.madt, build_madt(buf + off, room(), p))) return failed;
  const uint64_t tables[] = {buf_phys + l.fadt, buf_phys + l.madt};
  if (!place(&l.xsdt, build_xsdt(buf + off, room(), tables, 2))) return failed;
  if (!place(&l.rsdt, build_rsdt(buf + off, room(), tables, 2))) return failed;
  if (!place(&l.rsdp, build_rsdp(buf + off, room(), buf_phys + l.rsdt, buf_phys + l.xsdt))) {
    return failed;
  }
  l.size = off <= cap ? off : cap;
  return l;
}

}  // namespace microhv::acpi
