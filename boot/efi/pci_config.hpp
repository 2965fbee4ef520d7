// PCI configuration space through configuration mechanism #1 (ports 0xCF8
// and 0xCFC, PCI Local Bus 3.0, 3.2.2.3.2): segment 0, the first 256 bytes
// of each function. Each address/data pair runs at TPL_HIGH_LEVEL so that a
// firmware timer callback using the same ports cannot interleave. Before the
// take-over only (boot services). Target-only.
#pragma once

#include <efi.h>

#include "boot/pci/scan.hpp"

namespace microhv::boot {

class PortPciConfig final : public PciConfigSpace {
 public:
  explicit PortPciConfig(EFI_BOOT_SERVICES* bs) : bs_(bs) {}
  uint32_t read32(const PciAddress& f, uint8_t reg) override;
  void write32(const PciAddress& f, uint8_t reg, uint32_t value);

 private:
  EFI_BOOT_SERVICES* bs_;
};

}  // namespace microhv::boot
