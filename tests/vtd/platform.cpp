#include "tests/vtd/platform.hpp"

#include "arch/cpu.hpp"
#include "kernel/base/log.hpp"
#include "vmx/ept.hpp"

namespace vtdtest {
namespace {

EFI_SYSTEM_TABLE* g_st;

uint32_t config_address(const PciFunction& f, uint8_t reg) {
  return 0x80000000u | f.bus << 16 | f.dev << 11 | f.fn << 8 | (reg & 0xFC);
}

// Edu registers (docs/specs/edu.rst).
constexpr uint32_t kIdReg = 0x00;
constexpr uint32_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCount = 0x90, kDmaCmd = 0x98;
constexpr uint64_t kCmdStart = 1, kCmdToRam = 2;

}  // namespace

void set_system_table(EFI_SYSTEM_TABLE* st) {
  g_st = st;
}

void stall_us(uint32_t us) {
  g_st->BootServices->Stall(us);
}

// The address/data pair with firmware callbacks held off, so that theirs do
// not interleave with ours.
uint32_t pci_read32(const PciFunction& f, uint8_t reg) {
  const EFI_TPL old = g_st->BootServices->RaiseTPL(TPL_HIGH_LEVEL);
  microhv::arch::outl(0xCF8, config_address(f, reg));
  const uint32_t v = microhv::arch::inl(0xCFC);
  g_st->BootServices->RestoreTPL(old);
  return v;
}

void pci_write32(const PciFunction& f, uint8_t reg, uint32_t value) {
  const EFI_TPL old = g_st->BootServices->RaiseTPL(TPL_HIGH_LEVEL);
  microhv::arch::outl(0xCF8, config_address(f, reg));
  microhv::arch::outl(0xCFC, value);
  g_st->BootServices->RestoreTPL(old);
}

namespace {

// Calls `found(function, id)` for every function present; stops when it
// returns false.
template <typename Found>
void for_each_function(Found found) {
  for (unsigned bus = 0; bus < 256; ++bus) {
    for (uint8_t dev = 0; dev < 32; ++dev) {
      PciFunction f{static_cast<uint8_t>(bus), dev, 0};
      if ((pci_read32(f, 0) & 0xFFFF) == 0xFFFF) continue;
      // Header type bit 7: more functions than function 0.
      const uint8_t functions = (pci_read32(f, 0x0C) >> 16 & 0x80) != 0 ? 8 : 1;
      for (uint8_t fn = 0; fn < functions; ++fn) {
        f.fn = fn;
        const uint32_t id = pci_read32(f, 0);
        if ((id & 0xFFFF) != 0xFFFF && !found(f, id)) return;
      }
    }
  }
}

}  // namespace

bool find_pci_function(uint16_t vendor, uint16_t device, PciFunction* out) {
  const uint32_t want = static_cast<uint32_t>(device) << 16 | vendor;
  bool hit = false;
  for_each_function([&](const PciFunction& f, uint32_t id) {
    if (id != want) return true;
    *out = f;
    hit = true;
    return false;
  });
  return hit;
}

uint32_t scan_pci(microhv::vtd::PciFunctionInfo* out, uint32_t cap) {
  uint32_t n = 0;
  for_each_function([&](const PciFunction& f, uint32_t) {
    if (n == cap) return false;
    const uint32_t header = pci_read32(f, 0x0C) >> 16 & 0x7F;
    const uint32_t buses = pci_read32(f, 0x18);  // primary, secondary, subordinate
    const bool bridge = header == 1;
    out[n++] = microhv::vtd::PciFunctionInfo{0, f.source_id(), bridge,
                                             static_cast<uint8_t>(bridge ? buses >> 8 : 0),
                                             static_cast<uint8_t>(bridge ? buses >> 16 : 0)};
    return true;
  });
  return n;
}

bool Edu::init(char* why, size_t cap) {
  if (!find_pci_function(kVendor, kDevice, &fn_)) {
    microhv::format(why, cap, "no PCI function 1234:11e8 (run QEMU with -device edu)");
    return false;
  }
  const uint32_t bar = pci_read32(fn_, 0x10);
  if ((bar & 1) != 0) {
    microhv::format(why, cap, "BAR 0 is an I/O BAR (0x%x)", bar);
    return false;
  }
  mmio_ = bar & ~0xFull;
  if ((bar & 6) == 4) mmio_ |= static_cast<uint64_t>(pci_read32(fn_, 0x14)) << 32;
  if (mmio_ == 0) {
    microhv::format(why, cap, "BAR 0 is not assigned");
    return false;
  }
  // Command register: memory space (bit 1) and bus master (bit 2).
  pci_write32(fn_, 0x04, (pci_read32(fn_, 0x04) & 0xFFFF) | 0x6);
  if ((id() & 0xFFFF) != 0x00ED) {
    microhv::format(why, cap, "identification register reads 0x%x, not 0xRRrr00ed", id());
    return false;
  }
  return true;
}

uint32_t Edu::id() const {
  return *reinterpret_cast<volatile uint32_t*>(mmio_ + kIdReg);
}

bool Edu::run(uint64_t src, uint64_t dst, uint32_t count, bool to_ram) {
  auto reg = [&](uint32_t off) { return reinterpret_cast<volatile uint64_t*>(mmio_ + off); };
  *reg(kDmaSrc) = src;
  *reg(kDmaDst) = dst;
  *reg(kDmaCount) = count;
  *reg(kDmaCmd) = kCmdStart | (to_ram ? kCmdToRam : 0);
  for (unsigned ms = 0; ms < 3000; ++ms) {
    if ((*reg(kDmaCmd) & kCmdStart) == 0) return true;
    stall_us(1000);
  }
  return false;
}

bool Edu::ram_to_device(uint64_t ram, uint32_t count) {
  return run(ram, kBuffer, count, false);
}

bool Edu::device_to_ram(uint64_t ram, uint32_t count) {
  return run(kBuffer, ram, count, true);
}

uint64_t allocate_pages(uint64_t pages, uint64_t max_address) {
  EFI_PHYSICAL_ADDRESS addr = max_address - 1;
  if (EFI_ERROR(
          g_st->BootServices->AllocatePages(AllocateMaxAddress, EfiLoaderData, pages, &addr))) {
    return 0;
  }
  auto* p = reinterpret_cast<volatile uint8_t*>(addr);
  for (uint64_t i = 0; i < pages * 4096; ++i) p[i] = 0;
  return addr;
}

uint64_t identity_limit_from_memory_map() {
  EFI_BOOT_SERVICES* bs = g_st->BootServices;
  UINTN size = 0, key = 0, desc_size = 0;
  UINT32 version = 0;
  bs->GetMemoryMap(&size, nullptr, &key, &desc_size, &version);
  size += 8 * desc_size;
  void* buf = nullptr;
  if (desc_size == 0 || EFI_ERROR(bs->AllocatePool(EfiLoaderData, size, &buf))) return 4ull << 30;
  constexpr uint32_t kMaxRegions = 256;
  static microhv::vmx::MemRegion regions[kMaxRegions];
  uint32_t n = 0;
  if (!EFI_ERROR(bs->GetMemoryMap(&size, static_cast<EFI_MEMORY_DESCRIPTOR*>(buf), &key, &desc_size,
                                  &version))) {
    for (UINTN off = 0; off + desc_size <= size && n < kMaxRegions; off += desc_size) {
      const auto* d =
          reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(static_cast<uint8_t*>(buf) + off);
      regions[n++] =
          microhv::vmx::MemRegion{microhv::Hpa(d->PhysicalStart), d->NumberOfPages * 4096, true};
    }
  }
  bs->FreePool(buf);
  n = microhv::vmx::normalize_regions(regions, n);
  const uint32_t max_ext = microhv::arch::cpuid(0x80000000).eax;
  const unsigned bits = max_ext >= 0x80000008 ? (microhv::arch::cpuid(0x80000008).eax & 0xFF) : 36;
  return microhv::vmx::identity_limit(regions, n, bits);
}

}  // namespace vtdtest
