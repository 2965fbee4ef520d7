#include "boot/pci/scan.hpp"

namespace microhv::boot {
namespace {

constexpr uint32_t kAbsent = 0xFFFF;  // vendor id read when no function answers

// Calls `found(function, id dword)` for every function present; stops when
// it returns false. A device without function 0 has no functions at all
// (PCI 3.0, 6.2.1: function 0 is required); function 0's header says
// whether functions 1-7 exist.
template <typename Found>
void for_each_function(PciConfigSpace& config, Found found) {
  for (unsigned bus = 0; bus < 256; ++bus) {
    for (uint8_t dev = 0; dev < 32; ++dev) {
      PciAddress f{static_cast<uint8_t>(bus), dev, 0};
      const uint32_t id0 = config.read32(f, pci::kIdReg);
      if ((id0 & 0xFFFF) == kAbsent) continue;
      const bool multi =
          (config.read32(f, pci::kHeaderDword) >> 16 & pci::kHeaderMultiFunction) != 0;
      for (uint8_t fn = 0; fn < (multi ? 8 : 1); ++fn) {
        f.fn = fn;
        const uint32_t id = fn == 0 ? id0 : config.read32(f, pci::kIdReg);
        if ((id & 0xFFFF) != kAbsent && !found(f, id)) return;
      }
    }
  }
}

}  // namespace

uint32_t scan_pci(PciConfigSpace& config, uint16_t segment, vtd::PciFunctionInfo* out,
                  uint32_t cap) {
  uint32_t n = 0;
  for_each_function(config, [&](const PciAddress& f, uint32_t) {
    if (n < cap) {
      const uint32_t type = config.read32(f, pci::kHeaderDword) >> 16 & pci::kHeaderTypeMask;
      const bool bridge = type == pci::kHeaderTypeBridge;
      const uint32_t buses = bridge ? config.read32(f, pci::kBridgeBusesReg) : 0;
      out[n] =
          vtd::PciFunctionInfo{segment, f.source_id(), bridge, static_cast<uint8_t>(buses >> 8),
                               static_cast<uint8_t>(buses >> 16)};
    }
    ++n;
    return true;
  });
  return n;
}

bool find_pci_function(PciConfigSpace& config, uint16_t vendor, uint16_t device, PciAddress* out) {
  const uint32_t want = static_cast<uint32_t>(device) << 16 | vendor;
  bool hit = false;
  for_each_function(config, [&](const PciAddress& f, uint32_t id) {
    if (id != want) return true;
    *out = f;
    hit = true;
    return false;
  });
  return hit;
}

}  // namespace microhv::boot
