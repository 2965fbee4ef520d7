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

class Partition;
class Vp;

enum class MsrResult {
  kOk,
  kGp,            // inject #GP(0), RIP unchanged
  kNotSynthetic,  // not in the synthetic range: not the core's
};

bool is_synic_msr(uint32_t msr);

// A synthetic MSR's GPA page field (bits 63:12: SIMP, SIEFP, HYPERCALL,
// VP_ASSIST_PAGE) names a page beyond the guest's physical address width.
// Those bits are reserved, as in the architectural MSRs that hold a
// physical address (SDM Vol. 3A 11.4.4 IA32_APIC_BASE, 12.11.2.3
// IA32_MTRR_PHYSBASEn): the write is #GP. No such page can be guest memory,
// and none may ever be mapped (issue 9: a hypercall page number with bit 52
// set aliased into microhv's memory).
bool page_field_beyond_width(const Partition& p, uint64_t msr_value);

// Both take Hypervisor::lock themselves; an EOM with nothing queued takes
// none. Precondition: is_synic_msr(msr).
MsrResult synic_read_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult synic_write_msr(Vp& vp, uint32_t msr, uint64_t value);

}  // namespace microhv
