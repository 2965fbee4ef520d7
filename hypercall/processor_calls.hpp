// The hypercalls that act on other virtual processors: synthetic cluster
// IPIs (TLFS HvCallSendSyntheticClusterIpi 0x000B, ...Ex 0x0015) and remote
// TLB flushes (HvCallFlushVirtualAddressSpace 0x0002, ...List 0x0003 (rep),
// ...SpaceEx 0x0013, ...ListEx 0x0014 (rep)). The ABI engine
// (hypercall/abi.cpp) has checked the control word and the GPAs; each
// handler reads its own header. Their checks, in order:
//   the *Ex forms first check the VP set's shape (hypercall/vp_set.hpp:
//   INVALID_HYPERCALL_INPUT when the variable header does not match the bank
//   mask, INVALID_PARAMETER for an unknown format);
//   IPIs: the target VTL -- 0 only, named or implied -- and the vector,
//   0x10..0xFF (INVALID_PARAMETER); the padding bytes are ignored (TLFS:
//   padding is ignored). Each target VP gets a fixed interrupt through the
//   InterruptSink, not AutoEOI: the guest EOIs its local APIC;
//   flushes: reserved flag bits, NON_GLOBAL_MAPPINGS_ONLY on a List call
//   ("treated as an invalid option"), reserved bits 63:52 of the address
//   space when it is not ignored, and for the non-Ex forms an empty
//   processor mask without HV_FLUSH_ALL_PROCESSORS (INVALID_PARAMETER); then
//   the flush itself, through GuestTlb, which returns only when every target
//   has dropped the translations (TIMEOUT when one did not acknowledge).
// VP indexes past the partition's VPs are ignored in masks and sets alike;
// an empty set (Ex forms, IPIs) does nothing and succeeds.
#pragma once

#include "hypercall/abi.hpp"

namespace microhv {

CallResult hv_send_ipi(Vp& caller, const CallInput& in, CallOutput& out, RepWindow reps);
CallResult hv_send_ipi_ex(Vp& caller, const CallInput& in, CallOutput& out, RepWindow reps);
CallResult hv_flush_space(Vp& caller, const CallInput& in, CallOutput& out, RepWindow reps);
CallResult hv_flush_list(Vp& caller, const CallInput& in, CallOutput& out, RepWindow reps);
CallResult hv_flush_space_ex(Vp& caller, const CallInput& in, CallOutput& out, RepWindow reps);
CallResult hv_flush_list_ex(Vp& caller, const CallInput& in, CallOutput& out, RepWindow reps);

}  // namespace microhv
