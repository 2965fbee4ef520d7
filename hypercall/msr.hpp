// The synthetic-MSR front (TLFS appendix "Hyper-V Synthetic MSRs"): the back
// end forwards every RDMSR/WRMSR in 0x40000000-0x400001FF here and injects
// #GP when told to. The partition-wide MSRs (GUEST_OS_ID, HYPERCALL) and the
// per-VP VP_INDEX and VP_ASSIST_PAGE are handled here; the time MSRs go to
// hypercall/time_msr.cpp, the crash MSRs to hypercall/crash.cpp, the SynIC
// MSRs to synic/msr.cpp and the synthetic timers to synic/timers.cpp. An
// MSR exists for a partition only when its CPUID 0x40000003 access bit
// (EAX; EDX bit 10 for the crash MSRs) is granted.
#pragma once

#include <stdint.h>

#include "synic/msr.hpp"

namespace microhv {

class Vp;

MsrResult read_synthetic_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult write_synthetic_msr(Vp& vp, uint32_t msr, uint64_t value);

}  // namespace microhv
