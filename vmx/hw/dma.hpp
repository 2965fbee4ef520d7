// DMA remapping on the host side: adopting what the EFI side left in the
// pool (vmx/vtd/resident.hpp) -- the units' accessors rebound to the host's
// own, their register windows hidden from the guest in EPT -- and polling
// the fault records from VP 0 at VM exits, about once a second of TSC (the
// fault event interrupt stays masked: the host runs with interrupts off).
#pragma once

#include <stdint.h>

namespace microhv::vmx::hw {

struct Host;

// Before the guest's EPT is built (root.cpp): takes over LaunchInfo::vtd and
// hides the register windows; false when they do not fit (no launch).
bool adopt_dma_protection(Host& h);

// On VP 0 only (the fault log is not shared between CPUs), at every VM
// exit; polls at most once per second.
void poll_dma_faults(Host& h);

// The host's bounded waits for the VT-d register accessors (TSC-based).
void host_delay_us(uint32_t us);

}  // namespace microhv::vmx::hw
