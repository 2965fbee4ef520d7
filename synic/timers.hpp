// Synthetic timers (TLFS 12.3): STIMER0-3 CONFIG and COUNT per VP.
//
// - CONFIG: enable, periodic, lazy, auto-enable, direct mode with its APIC
//   vector (11:4), SINTx (19:16); other bits are reserved (#GP). Direct mode
//   only when the partition has the direct-mode feature, with a vector of
//   16 or more (#GP otherwise). A message-mode timer with SINTx 0 cannot be
//   enabled: the enable bit stays clear.
// - COUNT: one-shot: the absolute reference time to fire at; periodic: the
//   period in 100 ns units. Writing 0 disables the timer; writing a non-zero
//   value sets enable when auto-enable is set.
// - A one-shot timer disables itself when it fires (a later COUNT write with
//   auto-enable starts it again); a periodic one fires every period and
//   coalesces periods it missed (with or without the lazy bit).
// - Expiry: direct mode raises the vector as a fixed interrupt the guest
//   EOIs; message mode writes the timer-expired message (0x80000010: timer
//   index, expiration and delivery time) into SINTx's SIM slot. A busy slot
//   gets MessagePending and the message waits in the timer itself (no port
//   buffer) until the guest's EOM (or SCONTROL/SIMP being enabled); a
//   periodic timer is not re-armed while its message waits. Without a usable
//   SIM page the message is lost, as on Hyper-V.
// - A timer belongs to its VP: the back end asks next_deadline() before
//   every VM entry on that VP's CPU, arms its own timer for it and calls
//   stimers_run() there once it is due.
#pragma once

#include <stdint.h>

#include "synic/msr.hpp"

namespace microhv {

class Vp;

bool is_stimer_msr(uint32_t msr);
// Callers hold Hypervisor::lock.
MsrResult stimer_read_msr(Vp& vp, uint32_t msr, uint64_t* value);
MsrResult stimer_write_msr(Vp& vp, uint32_t msr, uint64_t value);

// Fires every timer of `vp` whose deadline has passed (reference time `now`)
// and re-arms the periodic ones. Takes Hypervisor::lock when one is due.
void stimers_run(Vp& vp, uint64_t now);
// Retries the timer messages waiting for a slot of `vp` (EOM, SCONTROL or
// SIMP enabled). Callers hold Hypervisor::lock.
void stimers_retry_messages(Vp& vp);
// The earliest reference time one of `vp`'s timers fires at (kNoDeadline:
// none). Lock-free: timers are touched only on their own VP's CPU.
uint64_t stimers_next_deadline(const Vp& vp);

}  // namespace microhv
