// The SynIC MSRs of a VP (TLFS 11.8): SCONTROL, SVERSION, SIEFP, SIMP, EOM
// and SINT0-15. hypercall/msr.cpp, the front for the whole synthetic MSR
// range, hands these here after its range and access checks. The writes that
// open a delivery point -- EOM, enabling SCONTROL or SIMP -- deliver what
// waits (TLFS 11.9.3). The guest's EOI of a SINT vector is not one: the
// guest acknowledges a message with EOM whenever MessagePending was set,
// whether or not the SINT is AutoEOI.
#pragma once

#include <stdint.h>

namespace microhv {

class Vp;

enum class MsrResult {
  kOk,
  kGp,            // inject #GP(0), RIP unchanged
  kNotSynthetic,  // not in the synthetic range: not the core's
};

bool is_synic_msr(uint32_t msr);

// Both take Hypervisor::lock themselves; an EOM with nothing queued takes
// none. Precondition: is_synic_msr(msr).
MsrResult synic_read_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult synic_write_msr(Vp& vp, uint32_t msr, uint64_t value);

}  // namespace microhv
