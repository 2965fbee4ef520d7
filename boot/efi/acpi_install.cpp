#include "boot/efi/acpi_install.hpp"

#include "arch/cpu.hpp"
#include "boot/acpi/acpi.hpp"
#include "boot/efi/firmware_acpi.hpp"
#include "boot/efi/mp_services.hpp"
#include "kernel/base/log.hpp"

namespace microhv::boot {
namespace {

using acpi::MmioWindow;
using acpi::Platform;
using acpi::VmbusDevice;

EFI_GUID kAcpi20TableGuid = ACPI_20_TABLE_GUID;
EFI_GUID kGraphicsOutputGuid = EFI_GRAPHICS_OUTPUT_PROTOCOL_GUID;
// UEFI 2.x section 21.2 (EFI_ACPI_TABLE_PROTOCOL); GNU-EFI does not define it.
EFI_GUID kAcpiTableProtocolGuid = {
    0xffe06bdd, 0x6107, 0x46a6, {0x7b, 0xb2, 0x5a, 0x9c, 0x7e, 0xc5, 0x27, 0x5c}};

struct AcpiTableProtocol {
  EFI_STATUS(EFIAPI* InstallAcpiTable)
  (AcpiTableProtocol* self, void* table, UINTN size, UINTN* key);
  EFI_STATUS(EFIAPI* UninstallAcpiTable)(AcpiTableProtocol* self, UINTN key);
};

// The 44 MiB OVMF leaves unused below the I/O APIC (its 32-bit PCI aperture
// ends at 0xFC000000): the MMIO window offered to VMBus devices.
constexpr uint64_t kVmbusGapBase = 0xFC000000;
constexpr uint64_t kVmbusGapLength = 0xFEC00000 - kVmbusGapBase;
constexpr uint64_t kIoApicBase = 0xFEC00000;
constexpr size_t kTableBufferBytes = 64 * 1024;
constexpr UINTN kFullSetPages = 16;  // RSDP..DSDT: under 16 KiB even for 256 CPUs

template <typename T>
T* locate(EFI_SYSTEM_TABLE* st, EFI_GUID* guid) {
  void* p = nullptr;
  if (EFI_ERROR(st->BootServices->LocateProtocol(guid, nullptr, &p))) return nullptr;
  return static_cast<T*>(p);
}

// ACPI memory below 4 GiB (RSDT and FADT hold 32-bit addresses).
uint8_t* allocate_low(EFI_SYSTEM_TABLE* st, EFI_MEMORY_TYPE type, UINTN pages) {
  EFI_PHYSICAL_ADDRESS addr = 0xFFFFFFFF;
  if (EFI_ERROR(st->BootServices->AllocatePages(AllocateMaxAddress, type, pages, &addr))) {
    return nullptr;
  }
  auto* p = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(addr));
  for (UINTN i = 0; i < pages * 4096; ++i) p[i] = 0;
  return p;
}

// ------------------------------------------------------------ the machine

// PCI configuration mechanism #1, with firmware callbacks held off so that
// the address/data pair is not interleaved with theirs.
uint32_t pci_read32(EFI_SYSTEM_TABLE* st, uint8_t dev, uint8_t fn, uint8_t reg) {
  EFI_TPL old = st->BootServices->RaiseTPL(TPL_HIGH_LEVEL);
  arch::outl(0xCF8, 0x80000000u | dev << 11 | fn << 8 | (reg & 0xFC));
  uint32_t v = arch::inl(0xCFC);
  st->BootServices->RestoreTPL(old);
  return v >> (8 * (reg & 3));
}

void pm1_set_sci_enable(EFI_SYSTEM_TABLE* st, uint16_t pm1_control) {
  EFI_TPL old = st->BootServices->RaiseTPL(TPL_HIGH_LEVEL);
  arch::outw(pm1_control, static_cast<uint16_t>(arch::inw(pm1_control) | 1));
  st->BootServices->RestoreTPL(old);
}

// PIIX4 function 3 (8086:7113) holds the ACPI PM registers: PMBA at 0x40,
// I/O enable in PMREGMISC (0x80) bit 0. Its SCI is its PCI interrupt, which
// the firmware routed and wrote to the interrupt line register. The PIRQ
// links are in the ISA bridge (function 0) at 0x60-0x63, bit 7 = disabled.
bool detect_piix4(EFI_SYSTEM_TABLE* st, Platform* p) {
  if (pci_read32(st, 1, 3, 0x00) != 0x71138086u) {
    log::error(
        "acpi: no PIIX4 power management function at 00:01.3; only PIIX4 (i440FX) "
        "machines get ACPI tables from microhv\n");
    return false;
  }
  if ((pci_read32(st, 1, 3, 0x80) & 1) == 0) {
    log::error("acpi: the PIIX4 PM I/O space is disabled (firmware did not set it up)\n");
    return false;
  }
  p->pm_base = static_cast<uint16_t>(pci_read32(st, 1, 3, 0x40) & 0xFFC0);
  if (p->pm_base == 0) {
    log::error("acpi: the PIIX4 PM base is 0\n");
    return false;
  }
  uint8_t line = static_cast<uint8_t>(pci_read32(st, 1, 3, 0x3C));
  p->sci_irq = line != 0 && line < 16 ? line : 9;
  for (int i = 0; i < 4; ++i) {
    uint8_t route = static_cast<uint8_t>(pci_read32(st, 1, 0, static_cast<uint8_t>(0x60 + i)));
    p->pci_link_irqs[i] = (route & 0x80) != 0 || (route & 0x0F) < 3 ? 0 : route & 0x0F;
  }
  p->s5_sleep_type = 0;  // PIIX4 SUS_TYP 0: soft off
  return true;
}

// The I/O APIC's id (register 0, bits 27:24), or -1 when nothing answers.
int ioapic_id() {
  auto* regs = reinterpret_cast<volatile uint32_t*>(static_cast<uintptr_t>(kIoApicBase));
  regs[0] = 1;  // version register
  if (regs[4] == 0xFFFFFFFFu) return -1;
  regs[0] = 0;
  return static_cast<int>((regs[4] >> 24) & 0x0F);
}

// End of the highest memory map entry below the OVMF gap: the 32-bit PCI
// window starts there (rounded up to 1 MiB).
uint32_t low_memory_top(EFI_SYSTEM_TABLE* st) {
  UINTN size = 0, key = 0, desc_size = 0;
  UINT32 version = 0;
  st->BootServices->GetMemoryMap(&size, nullptr, &key, &desc_size, &version);
  size += 4 * desc_size;
  uint8_t* map = nullptr;
  if (desc_size == 0 || EFI_ERROR(st->BootServices->AllocatePool(EfiLoaderData, size,
                                                                 reinterpret_cast<void**>(&map)))) {
    return 0;
  }
  uint64_t top = 0;
  if (!EFI_ERROR(st->BootServices->GetMemoryMap(
          &size, reinterpret_cast<EFI_MEMORY_DESCRIPTOR*>(map), &key, &desc_size, &version))) {
    for (UINTN off = 0; off + desc_size <= size; off += desc_size) {
      const auto* d = reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(map + off);
      uint64_t end = d->PhysicalStart + d->NumberOfPages * 4096;
      if (end <= kVmbusGapBase && end > top) top = end;
    }
  }
  st->BootServices->FreePool(map);
  return static_cast<uint32_t>((top + 0xFFFFF) & ~0xFFFFFull);
}

// VMBus MMIO windows: the firmware framebuffer (if below 4 GiB, rounded out
// to a power of two of at least 1 MiB so Linux's vmbus_reserve_fb() claims
// all of it) and the gap above the PCI aperture. With the framebuffer as the
// lowest window Linux finds its low MMIO base where it expects it.
VmbusDevice vmbus_windows(EFI_SYSTEM_TABLE* st) {
  VmbusDevice v;
  MmioWindow gap{kVmbusGapBase, kVmbusGapLength};
  auto* gop = locate<EFI_GRAPHICS_OUTPUT_PROTOCOL>(st, &kGraphicsOutputGuid);
  if (gop != nullptr && gop->Mode != nullptr && gop->Mode->FrameBufferBase != 0 &&
      gop->Mode->FrameBufferSize != 0) {
    uint64_t base = gop->Mode->FrameBufferBase & ~0xFFFFFull;
    uint64_t need = gop->Mode->FrameBufferBase + gop->Mode->FrameBufferSize - base;
    uint64_t length = 0x100000;
    while (length < need) length <<= 1;
    if (base + length <= gap.base) {
      v.mmio[v.mmio_count++] = {base, length};
    } else if (base < gap.base + gap.length && base + length > gap.base) {
      uint64_t end = base + length > gap.base + gap.length ? base + length : gap.base + gap.length;
      gap.base = base < gap.base ? base : gap.base;  // overlapping: one window
      gap.length = end - gap.base;
    }
  }
  v.mmio[v.mmio_count++] = gap;
  return v;
}

// APIC ids of the first `count` enabled CPUs (BSP first, as MP services
// number them); 0..count-1 without MP services. Returns the count used.
uint32_t cpu_apic_ids(EFI_SYSTEM_TABLE* st, uint32_t count, uint32_t* ids, const char** source) {
  EfiMpServices* mp = nullptr;
  locate_mp_services(st->BootServices, &mp);
  UINTN total = 0, enabled = 0;
  if (mp != nullptr && !EFI_ERROR(mp->GetNumberOfProcessors(mp, &total, &enabled))) {
    if (count == 0) count = static_cast<uint32_t>(enabled);
    if (count > acpi::kMaxCpus) count = acpi::kMaxCpus;
    uint32_t n = 0;
    for (UINTN i = 0; i < total && n < count; ++i) {
      EfiProcessorInformation info{};
      if (EFI_ERROR(mp->GetProcessorInfo(mp, i, &info)) ||
          (info.status_flag & kProcessorEnabled) == 0) {
        continue;
      }
      ids[n++] = static_cast<uint32_t>(info.processor_id);
    }
    if (n == count) {
      *source = "MP services";
      return count;
    }
  }
  if (count == 0) count = 1;
  if (count > acpi::kMaxCpus) count = acpi::kMaxCpus;
  for (uint32_t i = 0; i < count; ++i) ids[i] = i;
  *source = "assumed 0..n-1";
  return count;
}

// ------------------------------------------------------------ firmware has ACPI

EFI_STATUS add_vmbus_ssdt(EFI_SYSTEM_TABLE* st, const uint8_t* rsdp, const AcpiOptions& options) {
  if (acpi::tables_declare_hid(rsdp, acpi::kVmbusHid) || acpi::tables_declare_hid(rsdp, "VMBUS")) {
    log::info("acpi: the firmware's tables already declare a VMBus device; nothing added\n");
    return EFI_SUCCESS;
  }
  VmbusDevice vmbus = vmbus_windows(st);
  uint8_t ssdt[512];
  size_t n = acpi::build_vmbus_ssdt(ssdt, sizeof(ssdt), vmbus);
  if (n == 0) {
    log::error("acpi: building the VMBus SSDT failed\n");
    return EFI_BUFFER_TOO_SMALL;
  }
  auto* proto =
      options.use_table_protocol ? locate<AcpiTableProtocol>(st, &kAcpiTableProtocolGuid) : nullptr;
  if (proto != nullptr) {
    UINTN key = 0;
    EFI_STATUS s = proto->InstallAcpiTable(proto, ssdt, n, &key);
    if (EFI_ERROR(s)) {
      log::error("acpi: EFI_ACPI_TABLE_PROTOCOL refused the VMBus SSDT (status 0x%lx)\n", s);
      return s;
    }
    log::info(
        "acpi: VMBus device \\_SB.MHVM.VMBS added to the firmware's tables "
        "(SSDT, %lu bytes, MMIO 0x%llx+0x%llx%s) through EFI_ACPI_TABLE_PROTOCOL\n",
        static_cast<unsigned long>(n), static_cast<unsigned long long>(vmbus.mmio[0].base),
        static_cast<unsigned long long>(vmbus.mmio[0].length),
        vmbus.mmio_count > 1 ? " and more" : "");
    return EFI_SUCCESS;
  }

  // No protocol: publish new root tables listing the firmware's and ours.
  uint64_t entries[128];
  size_t count = acpi::root_entries(rsdp, entries, 127);
  if (count == 0 || count > 127) {
    log::error("acpi: the firmware's root table is unreadable (%lu entries); VMBus not added\n",
               static_cast<unsigned long>(count));
    return EFI_UNSUPPORTED;
  }
  uint8_t* mem = allocate_low(st, EfiACPIReclaimMemory, 2);
  if (mem == nullptr) return EFI_OUT_OF_RESOURCES;
  uint64_t mem_phys = reinterpret_cast<uintptr_t>(mem);
  for (size_t i = 0; i < n; ++i) mem[i] = ssdt[i];
  entries[count++] = mem_phys;
  size_t xsdt_off = 1024;
  size_t xsdt = acpi::build_xsdt(mem + xsdt_off, 1536, entries, count);
  size_t rsdt_off = 2560;
  size_t rsdt = acpi::build_rsdt(mem + rsdt_off, 1472, entries, count);  // 0 if any is >= 4 GiB
  size_t rsdp_off = 4096;
  if (xsdt == 0 || acpi::build_rsdp(mem + rsdp_off, 64, rsdt != 0 ? mem_phys + rsdt_off : 0,
                                    mem_phys + xsdt_off) == 0) {
    st->BootServices->FreePages(mem_phys, 2);
    return EFI_BUFFER_TOO_SMALL;
  }
  EFI_STATUS s = st->BootServices->InstallConfigurationTable(&kAcpi20TableGuid, mem + rsdp_off);
  if (EFI_ERROR(s)) {
    log::error("acpi: InstallConfigurationTable failed (status 0x%lx)\n", s);
    st->BootServices->FreePages(mem_phys, 2);
    return s;
  }
  log::info(
      "acpi: no EFI_ACPI_TABLE_PROTOCOL; published new root tables at 0x%llx listing the "
      "firmware's %lu tables and the VMBus SSDT\n",
      static_cast<unsigned long long>(mem_phys + rsdp_off), static_cast<unsigned long>(count - 1));
  return EFI_SUCCESS;
}

// ------------------------------------------------------------ firmware has none

EFI_STATUS install_through_protocol(AcpiTableProtocol* proto, const Platform& p, uint8_t* buf) {
  UINTN key = 0;
  // FACS and DSDT first: the protocol links them into the FADT when the FADT
  // arrives (and would fix it up if they came later).
  size_t n = acpi::build_facs(buf, kTableBufferBytes);
  EFI_STATUS s = n != 0 ? proto->InstallAcpiTable(proto, buf, n, &key) : EFI_BUFFER_TOO_SMALL;
  if (!EFI_ERROR(s)) {
    n = acpi::build_dsdt(buf, kTableBufferBytes, p);
    s = n != 0 ? proto->InstallAcpiTable(proto, buf, n, &key) : EFI_BUFFER_TOO_SMALL;
  }
  if (!EFI_ERROR(s)) {
    n = acpi::build_fadt(buf, kTableBufferBytes, p, 0, 0);
    s = n != 0 ? proto->InstallAcpiTable(proto, buf, n, &key) : EFI_BUFFER_TOO_SMALL;
  }
  if (!EFI_ERROR(s)) {
    n = acpi::build_madt(buf, kTableBufferBytes, p);
    s = n != 0 ? proto->InstallAcpiTable(proto, buf, n, &key) : EFI_BUFFER_TOO_SMALL;
  }
  return s;
}

EFI_STATUS install_by_hand(EFI_SYSTEM_TABLE* st, const Platform& p, uint64_t* rsdp_out) {
  uint8_t* facs = allocate_low(st, EfiACPIMemoryNVS, 1);
  uint8_t* tables = allocate_low(st, EfiACPIReclaimMemory, kFullSetPages);
  if (facs == nullptr || tables == nullptr) return EFI_OUT_OF_RESOURCES;
  uint64_t tables_phys = reinterpret_cast<uintptr_t>(tables);
  acpi::build_facs(facs, 4096);
  acpi::FullSetLayout l = acpi::build_full_set(tables, kFullSetPages * 4096, tables_phys,
                                               reinterpret_cast<uintptr_t>(facs), p);
  if (l.size == 0) return EFI_BUFFER_TOO_SMALL;
  *rsdp_out = tables_phys + l.rsdp;
  return st->BootServices->InstallConfigurationTable(&kAcpi20TableGuid, tables + l.rsdp);
}

EFI_STATUS install_full_set(EFI_SYSTEM_TABLE* st, uint32_t cpu_count, const AcpiOptions& options) {
  Platform p;
  if (!detect_piix4(st, &p)) return EFI_UNSUPPORTED;
  int id = ioapic_id();
  if (id < 0) {
    log::error("acpi: no I/O APIC answers at 0x%llx; no ACPI tables installed\n",
               static_cast<unsigned long long>(kIoApicBase));
    return EFI_UNSUPPORTED;
  }
  uint32_t ids[acpi::kMaxCpus];
  const char* id_source = "";
  p.cpu_count = cpu_apic_ids(st, cpu_count, ids, &id_source);
  p.apic_ids = ids;
  p.ioapic_id = static_cast<uint8_t>(id);
  p.pci_mmio_first = low_memory_top(st);
  p.pci_mmio_last = static_cast<uint32_t>(kVmbusGapBase - 1);
  if (p.pci_mmio_first == 0 || p.pci_mmio_first >= p.pci_mmio_last) {
    log::error("acpi: cannot place the PCI window (memory map top 0x%x)\n", p.pci_mmio_first);
    return EFI_UNSUPPORTED;
  }
  p.vmbus = vmbus_windows(st);

  auto* proto =
      options.use_table_protocol ? locate<AcpiTableProtocol>(st, &kAcpiTableProtocolGuid) : nullptr;
  EFI_STATUS s;
  uint64_t rsdp = 0;
  if (proto != nullptr) {
    uint8_t* buf = nullptr;
    s = st->BootServices->AllocatePool(EfiLoaderData, kTableBufferBytes,
                                       reinterpret_cast<void**>(&buf));
    if (EFI_ERROR(s)) return s;
    s = install_through_protocol(proto, p, buf);
    st->BootServices->FreePool(buf);
  } else {
    s = install_by_hand(st, p, &rsdp);
  }
  if (EFI_ERROR(s)) {
    log::error("acpi: installing the ACPI tables failed (status 0x%lx)\n", s);
    return s;
  }
  pm1_set_sci_enable(st, static_cast<uint16_t>(p.pm_base + p.pm1_control_offset));
  log::info(
      "acpi: firmware had no ACPI tables; installed FACS, DSDT, FADT, MADT (%s): "
      "%u CPU(s), APIC ids %s, I/O APIC id %u, PIIX4 PM at 0x%x, SCI IRQ %u, "
      "PIRQ %u/%u/%u/%u, PCI window 0x%x-0x%x, VMBus \\_SB.MHVM.VMBS MMIO 0x%llx+0x%llx\n",
      proto != nullptr ? "EFI_ACPI_TABLE_PROTOCOL" : "RSDP/RSDT/XSDT by hand", p.cpu_count,
      id_source, p.ioapic_id, p.pm_base, p.sci_irq, p.pci_link_irqs[0], p.pci_link_irqs[1],
      p.pci_link_irqs[2], p.pci_link_irqs[3], p.pci_mmio_first, p.pci_mmio_last,
      static_cast<unsigned long long>(p.vmbus.mmio[0].base),
      static_cast<unsigned long long>(p.vmbus.mmio[0].length));
  if (rsdp != 0) {
    log::info("acpi: RSDP at 0x%llx under the ACPI 2.0 GUID\n",
              static_cast<unsigned long long>(rsdp));
  }
  return EFI_SUCCESS;
}

}  // namespace

EFI_STATUS publish_acpi(EFI_SYSTEM_TABLE* st, uint32_t cpu_count, const AcpiOptions& options) {
  if (st == nullptr || st->BootServices == nullptr) return EFI_INVALID_PARAMETER;
  const uint8_t* rsdp = firmware_rsdp(st);
  if (rsdp != nullptr) return add_vmbus_ssdt(st, rsdp, options);
  return install_full_set(st, cpu_count, options);
}

}  // namespace microhv::boot
