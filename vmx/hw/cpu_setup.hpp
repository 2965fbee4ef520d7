// Bringing one CPU into microhv's host environment and back out: its
// per-CPU locals (GS base -> Vcpu), its own GDT with a TSS and its IDT,
// IA32_FEATURE_CONTROL; and reading the VMX capability MSRs.
#pragma once

#include "vmx/controls.hpp"
#include "vmx/launch.hpp"

namespace microhv::vmx::hw {

struct Host;
struct Vcpu;

// This CPU's identity: its Vcpu in `host`, found from now on through the GS
// base (also HOST_GS_BASE), and its exit frame.
void setup_cpu_locals(Host& host, Vcpu& v, CpuLaunch& cpu);

// GDT: the firmware's entries on this CPU (so CS and the data selectors keep
// their meaning) plus this CPU's TSS. IDT: microhv's handlers with this
// CPU's CS; NMI, #DF and #MC on their own IST stack.
void load_host_descriptors(Vcpu& v, CpuLaunch& cpu);

// Undoes both before returning to the firmware unvirtualized (microhv's TSS
// stays in its own GDT copy; TR is restored lazily by whoever loads the
// next TR).
void restore_firmware_descriptors(const CpuLaunch& cpu);

VmxCapabilities read_capabilities();
void log_capabilities(const VmxCapabilities& c);

// IA32_FEATURE_CONTROL is per CPU: every CPU locks its own (lock + VMX
// outside SMX) when the firmware left it unlocked. False when it is locked
// with VMX disabled.
bool enable_feature_control(const Vcpu& v);

}  // namespace microhv::vmx::hw
