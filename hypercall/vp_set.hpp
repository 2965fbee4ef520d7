// HV_VP_SET (TLFS datatypes "HV_VP_SET") as the *Ex hypercalls carry it:
// the format and bank mask at the end of the fixed header, one 64-bit mask
// per set bank as the variable header.
#pragma once

#include <stdint.h>

#include "hypercall/call_args.hpp"
#include "hypercall/tlfs/processor_calls.hpp"
#include "kernel/base/vp_mask.hpp"

namespace microhv {

// The VPs `header` names, of a partition with `vp_count` VPs: VP indexes at
// or past vp_count are ignored (the TLFS names no status for them; KVM and
// OpenVMM skip them too). Every bound is checked against the variable header:
//   INVALID_HYPERCALL_INPUT  the variable header does not hold exactly one
//                            qword per bank set in the bank mask (also for
//                            the "all" format, whose bank mask is then 0);
//   INVALID_PARAMETER        a format other than sparse-4K (0) or all (1).
tlfs::Status parse_vp_set(const tlfs::VpSetHeader& header, const CallInput& in, uint32_t vp_count,
                          VpMask* out);

}  // namespace microhv
