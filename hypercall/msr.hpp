// The synthetic-MSR front (TLFS appendix "Hyper-V Synthetic MSRs"): the back
// end forwards every RDMSR/WRMSR in 0x40000000-0x400000FF here and injects
// #GP when told to. The partition-wide MSRs (GUEST_OS_ID, HYPERCALL) and the
// per-VP VP_INDEX, VP_ASSIST_PAGE and TIME_REF_COUNT are handled here; the
// SynIC MSRs go down to synic/msr.cpp. An MSR exists for a partition only
// when its CPUID 0x40000003.EAX access bit is granted.
#pragma once

#include <stdint.h>

#include "synic/msr.hpp"

namespace microhv {

class Vp;

MsrResult read_synthetic_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult write_synthetic_msr(Vp& vp, uint32_t msr, uint64_t value);

}  // namespace microhv
