#include "boot/efi/pci_config.hpp"

#include "arch/cpu.hpp"

namespace microhv::boot {
namespace {

constexpr uint16_t kAddressPort = 0xCF8, kDataPort = 0xCFC;

uint32_t config_address(const PciAddress& f, uint8_t reg) {
  return 0x80000000u | f.bus << 16 | f.dev << 11 | f.fn << 8 | (reg & 0xFC);
}

}  // namespace

uint32_t PortPciConfig::read32(const PciAddress& f, uint8_t reg) {
  const EFI_TPL old = bs_->RaiseTPL(TPL_HIGH_LEVEL);
  arch::outl(kAddressPort, config_address(f, reg));
  const uint32_t v = arch::inl(kDataPort);
  bs_->RestoreTPL(old);
  return v;
}

void PortPciConfig::write32(const PciAddress& f, uint8_t reg, uint32_t value) {
  const EFI_TPL old = bs_->RaiseTPL(TPL_HIGH_LEVEL);
  arch::outl(kAddressPort, config_address(f, reg));
  arch::outl(kDataPort, value);
  bs_->RestoreTPL(old);
}

}  // namespace microhv::boot
