// Which PCI functions a machine has: a walk of configuration space (PCI
// Local Bus 3.0, 6.1 and 6.2.1; PCI-to-PCI Bridge 1.2, 3.2.5.3) over buses
// 0-255 of one segment. The take-over uses it to tell whether every device
// that can do DMA is behind a remapping unit (vmx/vtd/scope.hpp); the VT-d
// integration test finds QEMU's edu device with it. Portable: the
// configuration space comes in through PciConfigSpace (on the machine:
// boot/efi/pci_config.hpp).
#pragma once

#include <stdint.h>

#include "vmx/vtd/scope.hpp"

namespace microhv::boot {

struct PciAddress {
  uint8_t bus, dev, fn;
  uint16_t source_id() const { return static_cast<uint16_t>(bus << 8 | dev << 3 | fn); }
};

class PciConfigSpace {
 public:
  // The dword at `reg` (a multiple of 4, below 256); all ones when nothing
  // answers.
  virtual uint32_t read32(const PciAddress& f, uint8_t reg) = 0;

 protected:
  ~PciConfigSpace() = default;
};

namespace pci {
inline constexpr uint8_t kIdReg = 0x00;           // vendor 15:0, device 31:16
inline constexpr uint8_t kHeaderDword = 0x0C;     // header type in 23:16
inline constexpr uint8_t kBridgeBusesReg = 0x18;  // type 1: primary, secondary, subordinate
inline constexpr uint32_t kHeaderMultiFunction = 0x80;
inline constexpr uint32_t kHeaderTypeMask = 0x7F;
inline constexpr uint32_t kHeaderTypeBridge = 1;
}  // namespace pci

// Every function present on `segment` (whose configuration space `config`
// reads), in bus/device/function order, with each PCI-to-PCI bridge's bus
// range. Stores at most `cap` and returns how many there are, which may be
// more: a caller must not judge coverage from a list that was cut short.
uint32_t scan_pci(PciConfigSpace& config, uint16_t segment, vtd::PciFunctionInfo* out,
                  uint32_t cap);

// The first function with this vendor and device id, if any.
bool find_pci_function(PciConfigSpace& config, uint16_t vendor, uint16_t device, PciAddress* out);

}  // namespace microhv::boot
