// The time MSRs (TLFS 12.4, 12.7, and the frequency and invariant-TSC MSRs
// of the TLFS appendix): TIME_REF_COUNT, REFERENCE_TSC with its page,
// TSC_FREQUENCY, APIC_FREQUENCY and TSC_INVARIANT_CONTROL. hypercall/msr.cpp
// hands them here after its range and access checks, with Hypervisor::lock
// held.
//
// The reference TSC page is an overlay (the guest cannot write it) holding
// the partition's one scale, so the page and TIME_REF_COUNT agree exactly.
// It is published with a valid sequence only while every VP sees the same
// TSC (the same guest_tsc_offset); while VPs' offsets differ no single page
// can be right for all of them, so the sequence is 0 and guests read
// TIME_REF_COUNT (TLFS 12.7.2). Each change is written as: sequence 0, the
// new scale and offset, then the next sequence (never 0 or 0xFFFFFFFF).
#pragma once

#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"
#include "synic/msr.hpp"

namespace microhv {

class Vp;
class Partition;

bool is_time_msr(uint32_t msr);
MsrResult time_read_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult time_write_msr(Vp& vp, uint32_t msr, uint64_t value);

// TSC offsetting: VP `vp`'s guest TSC is now the host's plus `offset`.
// Republishes the reference TSC page (sequence 0 while the VPs differ).
// Callers hold Hypervisor::lock.
void set_guest_tsc_offset(Vp& vp, int64_t offset);

// What the page holds right now (the sequence included), for tests and the
// test device.
tlfs::ReferenceTscPage reference_tsc_page_contents(const Partition& p);
// Test device: publish sequence 0 ("use TIME_REF_COUNT") until restored, so
// a guest can compare the two paths in one boot. Callers hold the lock.
void force_reference_tsc_invalid(Partition& p, bool invalid);

}  // namespace microhv
