// The Hyper-V CPUID leaves 0x40000000-0x40000005 (TLFS chapter 2), derived
// from the partition's features so that what is advertised is what works.
#pragma once

#include <stdint.h>

namespace microhv {

class Partition;

struct CpuidRegs {
  uint32_t eax, ebx, ecx, edx;
};

inline constexpr uint32_t kHvCpuidFirst = 0x40000000;
inline constexpr uint32_t kHvCpuidLast = 0x400000FF;

// True when `leaf` is in the hypervisor range (microhv answers all of it:
// leaves past the highest one read as zero). False: not ours.
bool hyperv_cpuid(const Partition& partition, uint32_t leaf, CpuidRegs* out);

}  // namespace microhv
