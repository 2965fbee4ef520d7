// Which remapping unit a PCI function's DMA goes through (VT-d 8.3, 8.3.1):
// the unit whose device scope names the function (an endpoint scope) or a
// bridge above it (a sub-hierarchy scope), otherwise the INCLUDE_PCI_ALL
// unit of its segment, otherwise none -- and then the function's DMA is not
// remapped at all. Scope paths are resolved through the bridges' secondary
// bus numbers, which the caller reads from configuration space. Portable.
#pragma once

#include <stdint.h>

#include "vmx/vtd/dmar.hpp"

namespace microhv::vtd {

// One PCI function found by a configuration-space scan.
struct PciFunctionInfo {
  uint16_t segment;
  uint16_t source_id;  // bus 15:8, device 7:3, function 2:0
  bool bridge;         // header type 1: secondary_bus..subordinate_bus lie behind it
  uint8_t secondary_bus;
  uint8_t subordinate_bus;
};

inline constexpr int kNoUnit = -1;

// Index into info.units of the unit that remaps `device`'s requests, or
// kNoUnit. `all` is every function of the scan (the bridges on scope paths
// are looked up there).
int unit_for_device(const DmarInfo& info, const PciFunctionInfo* all, uint32_t count,
                    const PciFunctionInfo& device);

}  // namespace microhv::vtd
