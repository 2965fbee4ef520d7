// Synthetic MSRs 0x40000000-0x400000FF (TLFS appendix "Hyper-V Synthetic
// MSRs"). The back end forwards every RDMSR/WRMSR in that range here and
// injects #GP when told to.
#pragma once

#include <stdint.h>

namespace microhv {

class Vp;

enum class MsrResult {
  kOk,
  kGp,            // inject #GP(0), RIP unchanged
  kNotSynthetic,  // not in the synthetic range: not ours
};

MsrResult read_synthetic_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult write_synthetic_msr(Vp& vp, uint32_t msr, uint64_t value);

}  // namespace microhv
