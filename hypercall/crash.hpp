// The guest crash MSRs (TLFS "Guest Crash Enlightenment"): CRASH_P0-P4 and
// CRASH_CTL, partition-wide. Reading CRASH_CTL tells the guest what microhv
// can do: notify (bit 63) and a crash message (bit 62). The first write of
// CRASH_CTL with bit 63 reports the crash: microhv prints P0-P4 and, with bit
// 62, the text the guest left at GPA P3 (P4 bytes, at most a page, only
// guest RAM) on its serial log, one prefixed line per guest line with
// non-printable characters shown as '.', and stops the partition: it leaves
// the active state and its VPs are parked by the back end (the VP that
// reported at this exit, the others when they next exit).
#pragma once

#include <stdint.h>

#include "synic/msr.hpp"

namespace microhv {

class Vp;

bool is_crash_msr(uint32_t msr);
// Both take Hypervisor::lock themselves; the report itself is read from
// guest memory and printed after the lock is released.
MsrResult crash_read_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult crash_write_msr(Vp& vp, uint32_t msr, uint64_t value);

}  // namespace microhv
