// VMXON, the VMCS and VMLAUNCH on the calling CPU; shared by the BSP and the
// APs.
#pragma once

#include <stdint.h>

#include "vmx/launch.hpp"

namespace microhv::vmx::hw {

struct Vcpu;

// Returns only on failure (a host_status code), with everything undone:
// the CPU goes back to the firmware unvirtualized.
uint64_t launch_this_cpu(Vcpu& v, CpuLaunch& cpu);

}  // namespace microhv::vmx::hw
