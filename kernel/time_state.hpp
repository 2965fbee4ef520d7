// Time state of partitions and VPs, as plain data: the reference time scale
// and the reference TSC page MSR, the frequencies measured at take-over, the
// guest crash MSRs (partition-wide), and each VP's four synthetic timers.
// What the MSRs mean: hypercall/time_msr.cpp, hypercall/crash.cpp,
// synic/timers.cpp.
#pragma once

#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/reference_time.hpp"

namespace microhv {

// What the platform measured (at take-over on the machine); 0 = unknown.
struct TimeBase {
  uint64_t tsc_hz = 0;
  uint64_t apic_hz = 0;  // the local APIC timer's input clock
};

struct PartitionTime {
  TimeBase base;
  ReferenceScale scale;            // reference time of the host TSC
  uint64_t reference_tsc_msr = 0;  // HV_X64_MSR_REFERENCE_TSC as written
  uint32_t tsc_sequence = 0;       // the last valid sequence published
  uint64_t tsc_invariant_control = 0;
  bool tsc_page_forced_invalid = false;  // the test device asked for sequence 0
};

struct CrashState {
  uint64_t p[tlfs::kCrashParameterCount] = {};
  bool reported = false;  // the first CRASH_CTL notify stops the partition
};

// One synthetic timer (TLFS 12.3). `deadline` is the reference time it
// fires at (kNoDeadline: not armed). A message-mode expiration whose SIM slot
// was busy waits here, without a port buffer: one pending message per timer.
struct SyntheticTimer {
  uint64_t config = 0;
  uint64_t count = 0;
  uint64_t deadline = kNoDeadline;
  bool message_pending = false;
  uint64_t pending_expiration = 0;
};

struct VpTimers {
  SyntheticTimer timer[tlfs::kStimerCount];
  // The earliest deadline of the four (kNoDeadline: none): what the back end
  // arms its host timer for before every entry. Written and read on the
  // VP's own CPU (timers are per VP and only their VP touches them).
  uint64_t next_deadline = kNoDeadline;
  uint16_t pending_sints = 0;  // bit n: a timer message waits for SINT n's slot
};

}  // namespace microhv
