// What EFI_MP_SERVICES_PROTOCOL reports about a processor (UEFI Platform
// Initialization spec, Vol. 2, "MP Services Protocol", GetProcessorInfo), and
// how microhv numbers its VPs from it. The layout is the one home of
// EFI_PROCESSOR_INFORMATION (boot/efi/mp_services.hpp holds the protocol's
// function table); portable so that the numbering is unit-tested.
#pragma once

#include <stdint.h>

namespace microhv::boot {

// EFI_PROCESSOR_INFORMATION as of PI 1.7: ProcessorId (the APIC id),
// StatusFlag, Location (EFI_CPU_PHYSICAL_LOCATION: package, core, thread)
// and ExtendedInformation (EFI_CPU_PHYSICAL_LOCATION2: package, module, tile,
// die, core, thread). The firmware fills ExtendedInformation only when the
// caller sets kExtendedTopology in the processor number; older firmware (PI
// before 1.7) writes only the first 24 bytes. A buffer of this size is right
// for both, which is why there is exactly one definition.
struct EfiProcessorInformation {
  uint64_t processor_id;
  uint32_t status_flag;  // kProcessorIsBsp | kProcessorEnabled | kProcessorHealthy
  uint32_t package, core, thread;
  uint32_t extended_location[6];
};
static_assert(sizeof(EfiProcessorInformation) == 48);

// StatusFlag bits.
inline constexpr uint32_t kProcessorIsBsp = 1u << 0;
inline constexpr uint32_t kProcessorEnabled = 1u << 1;
inline constexpr uint32_t kProcessorHealthy = 1u << 2;
// GetProcessorInfo(ProcessorNumber | kExtendedTopology) also fills
// ExtendedInformation (CPU_V2_EXTENDED_TOPOLOGY). microhv never sets it.
inline constexpr uint64_t kExtendedTopology = 1ull << 24;

inline constexpr uint32_t kNoVp = 0xFFFFFFFFu;

// Assigns VP indexes: the BSP is VP 0 and the other enabled, healthy
// processors follow in processor-number order, so with the usual numbering
// (BSP = processor 0, all enabled) VP index = processor number. At most
// `max_vps` VPs. Writes vp_of[processor] (kNoVp for processors left out)
// and returns the VP count (0 when `bsp` is out of range).
uint32_t assign_vp_indexes(const uint32_t* status_flags, uint32_t processor_count, uint32_t bsp,
                           uint32_t max_vps, uint32_t* vp_of);

}  // namespace microhv::boot
