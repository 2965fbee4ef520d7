#include "tests/vtd/platform.hpp"

#include "kernel/base/log.hpp"

namespace vtdtest {
namespace {

// Edu registers (docs/specs/edu.rst).
constexpr uint32_t kIdReg = 0x00;
constexpr uint32_t kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCount = 0x90, kDmaCmd = 0x98;
constexpr uint64_t kCmdStart = 1, kCmdToRam = 2;
constexpr uint8_t kCommandReg = 0x04, kBar0 = 0x10, kBar1 = 0x14;

}  // namespace

bool Edu::init(char* why, size_t cap) {
  if (!microhv::boot::find_pci_function(pci_, kVendor, kDevice, &fn_)) {
    microhv::format(why, cap, "no PCI function 1234:11e8 (run QEMU with -device edu)");
    return false;
  }
  const uint32_t bar = pci_.read32(fn_, kBar0);
  if ((bar & 1) != 0) {
    microhv::format(why, cap, "BAR 0 is an I/O BAR (0x%x)", bar);
    return false;
  }
  mmio_ = bar & ~0xFull;
  if ((bar & 6) == 4) mmio_ |= static_cast<uint64_t>(pci_.read32(fn_, kBar1)) << 32;
  if (mmio_ == 0) {
    microhv::format(why, cap, "BAR 0 is not assigned");
    return false;
  }
  // Command register: memory space (bit 1) and bus master (bit 2).
  pci_.write32(fn_, kCommandReg, (pci_.read32(fn_, kCommandReg) & 0xFFFF) | 0x6);
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
    bs_->Stall(1000);
  }
  return false;
}

bool Edu::ram_to_device(uint64_t ram, uint32_t count) {
  return run(ram, kBuffer, count, false);
}

bool Edu::device_to_ram(uint64_t ram, uint32_t count) {
  return run(kBuffer, ram, count, true);
}

uint64_t allocate_pages(EFI_BOOT_SERVICES* bs, uint64_t pages, uint64_t max_address) {
  EFI_PHYSICAL_ADDRESS addr = max_address - 1;
  if (EFI_ERROR(bs->AllocatePages(AllocateMaxAddress, EfiLoaderData, pages, &addr))) return 0;
  auto* p = reinterpret_cast<volatile uint8_t*>(addr);
  for (uint64_t i = 0; i < pages * 4096; ++i) p[i] = 0;
  return addr;
}

}  // namespace vtdtest
