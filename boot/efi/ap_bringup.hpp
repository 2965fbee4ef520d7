// The other CPUs (EFI_MP_SERVICES_PROTOCOL): which there are and which VP
// each becomes (boot/mp/processors.hpp), and their bring-up. The BSP, already
// a guest, runs microhv's procedure on each AP in turn with StartupThisAP
// and a WaitEvent (the call returns once MP services has woken the AP; it
// never waits for the procedure) and polls a boot::ApHandshake with a bound:
// the AP captures its own state and calls microhv_virtualize with its own
// host stack, entering microhv_ap_host_entry.
#pragma once

#include <efi.h>
#include <stdint.h>

#include "boot/efi/mp_services.hpp"
#include "vmx/smp.hpp"

namespace microhv::boot {

// What the BSP needs about each CPU once it runs as the guest (the pool is
// not present for it then): kept on its stack.
struct CpuPlan {
  uint32_t processor;  // MP services processor number
  uint32_t apic_id;
  uint64_t cpu_launch;  // CpuLaunch* in the pool (only the AP itself, natively, touches it)
  uint64_t host_stack_top;
};
struct MpPlan {
  EfiMpServices* mp = nullptr;
  uint32_t processors = 1;  // as MP services counts them
  uint32_t count = 1;       // CPUs microhv will try to virtualize (VP 0 .. count-1)
  uint64_t host_cr3 = 0, ap_entry = 0;
  CpuPlan cpu[vmx::kMaxCpus];
  uint32_t native_count = 0;  // enabled processors left out (see LaunchInfo::native_apic_ids)
  uint32_t native_apic_ids[vmx::kMaxCpus];
};

// Fills `plan`: the BSP is VP 0 and, with MP services, the other enabled
// and healthy processors follow; without them only the BSP.
void discover_cpus(EFI_BOOT_SERVICES* bs, MpPlan* plan);

// Virtualizes APs one at a time, in VP order, so each becomes the next VP.
// Stops at the first failure: later VP indexes would no longer match.
// Returns how many CPUs (the BSP included) run as VPs.
uint32_t virtualize_aps(EFI_BOOT_SERVICES* bs, const MpPlan& plan);

// Each virtualized AP once more through MP services: under OVMF this wakes
// the AP with INIT-SIPI-SIPI, which now exits to microhv (INIT -> wait for
// SIPI -> real mode at the SIPI vector): the same path an OS takes to start
// its APs. The AP must come back as the same VP.
void probe_restarted_aps(EFI_BOOT_SERVICES* bs, const MpPlan& plan, uint32_t up);

}  // namespace microhv::boot
