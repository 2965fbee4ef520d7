// A PCI configuration space for host tests (boot/pci/scan.hpp): functions
// by bus/device/function with their id, header type and, for bridges, the
// bus numbers; everything else reads all ones, as when nothing answers.
#pragma once

#include <map>
#include <tuple>

#include "boot/pci/scan.hpp"

namespace microhv::test {

class FakePciConfig final : public boot::PciConfigSpace {
 public:
  // `header` bit 7: multi-function; type 1: a bridge with `buses`
  // (primary 7:0, secondary 15:8, subordinate 23:16).
  void add(uint8_t bus, uint8_t dev, uint8_t fn, uint32_t id, uint8_t header = 0,
           uint32_t buses = 0) {
    regs[{bus, dev, fn, boot::pci::kIdReg}] = id;
    regs[{bus, dev, fn, boot::pci::kHeaderDword}] = static_cast<uint32_t>(header) << 16;
    if ((header & 0x7F) == 1) regs[{bus, dev, fn, boot::pci::kBridgeBusesReg}] = buses;
  }
  uint32_t read32(const boot::PciAddress& f, uint8_t reg) override {
    ++reads;
    const auto it = regs.find({f.bus, f.dev, f.fn, reg});
    return it == regs.end() ? 0xFFFFFFFFu : it->second;
  }
  std::map<std::tuple<int, int, int, int>, uint32_t> regs;
  unsigned reads = 0;
};

}  // namespace microhv::test
