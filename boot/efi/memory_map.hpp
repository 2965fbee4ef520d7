// The firmware's memory map (UEFI 2.x 7.2, GetMemoryMap) as microhv uses it:
// RAM (any RAM type) versus everything else, normalized, and how far the
// identity maps (host page tables, EPT, the DMA tables) must reach.
// Target-only.
#pragma once

#include <efi.h>
#include <stdint.h>

#include "vmx/ept.hpp"

namespace microhv::boot {

// Reads the map into `out` (at most `cap` regions, normalized); `*count`
// gets how many. On failure returns the firmware's status.
EFI_STATUS read_memory_map(EFI_BOOT_SERVICES* bs, vmx::MemRegion* out, uint32_t cap,
                           uint32_t* count);

// vmx::identity_limit of the current map and this CPU's physical address
// width (CPUID.80000008:EAX[7:0], 36 bits when the leaf is missing);
// 4 GiB when the map cannot be read.
uint64_t current_identity_limit(EFI_BOOT_SERVICES* bs);

// CPUID.80000008:EAX[7:0], or 36 without that leaf.
uint32_t physical_address_bits();

}  // namespace microhv::boot
