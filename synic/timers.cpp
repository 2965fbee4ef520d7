#include "synic/timers.hpp"

#include "kernel/hypervisor.hpp"
#include "synic/delivery.hpp"

namespace microhv {
namespace {

namespace msr = tlfs::msr;
namespace cfg = tlfs::stimer_config;

bool enabled(const SyntheticTimer& t) {
  return (t.config & cfg::kEnable) != 0;
}
bool periodic(const SyntheticTimer& t) {
  return (t.config & cfg::kPeriodic) != 0;
}
bool direct(const SyntheticTimer& t) {
  return (t.config & cfg::kDirectMode) != 0;
}
uint8_t direct_vector(const SyntheticTimer& t) {
  return static_cast<uint8_t>((t.config & cfg::kVectorMask) >> cfg::kVectorShift);
}
uint32_t sint_of(const SyntheticTimer& t) {
  return static_cast<uint32_t>((t.config & cfg::kSintMask) >> cfg::kSintShift);
}

void update_next_deadline(VpTimers& timers) {
  uint64_t next = kNoDeadline;
  for (const SyntheticTimer& t : timers.timer) {
    if (enabled(t) && t.deadline < next) next = t.deadline;
  }
  __atomic_store_n(&timers.next_deadline, next, __ATOMIC_RELEASE);
}

// Arms an enabled timer from scratch (after a CONFIG or COUNT write): a
// one-shot at COUNT (already due if that has passed), a periodic one a period
// from now. COUNT 0 arms nothing.
void start(SyntheticTimer& t, uint64_t now) {
  t.message_pending = false;
  t.deadline = kNoDeadline;
  if (!enabled(t) || t.count == 0) return;
  t.deadline = periodic(t) ? now + t.count : t.count;
}

// The next deadline of a periodic timer that was due at `due`: one period
// later, skipping the periods that have passed already (coalesced).
uint64_t next_period(uint64_t due, uint64_t period, uint64_t now) {
  uint64_t next = due + period;
  if (next <= now) next = now + (period - (now - due) % period);
  return next;
}

// After an expiration was delivered (or lost): periodic timers go on, one-shot
// timers disable themselves.
void rearm_after(SyntheticTimer& t, uint64_t due, uint64_t now) {
  if (periodic(t) && t.count != 0) {
    t.deadline = next_period(due, t.count, now);
  } else {
    t.config &= ~cfg::kEnable;
    t.deadline = kNoDeadline;
  }
}

SlotOffer send_message(Vp& vp, uint32_t index, uint64_t due, uint64_t now) {
  const SyntheticTimer& t = vp.timers.timer[index];
  tlfs::TimerMessagePayload payload{index, 0, due, now};
  const OutgoingMessage m{tlfs::kMessageTypeTimerExpired, sizeof(payload), 0,
                          reinterpret_cast<const uint8_t*>(&payload)};
  const Optional<SintIndex> sint = sint_index(sint_of(t));
  if (!sint) return SlotOffer::kUnavailable;
  return synic_offer(vp, sint.value(), m);
}

void set_pending_bit(VpTimers& timers, uint32_t sint, bool on) {
  const uint16_t bit = static_cast<uint16_t>(1u << sint);
  if (on) {
    __atomic_fetch_or(&timers.pending_sints, bit, __ATOMIC_RELEASE);
  } else {
    __atomic_fetch_and(&timers.pending_sints, static_cast<uint16_t>(~bit), __ATOMIC_RELEASE);
  }
}

void recompute_pending_bits(VpTimers& timers) {
  uint16_t bits = 0;
  for (const SyntheticTimer& t : timers.timer) {
    if (t.message_pending) bits |= static_cast<uint16_t>(1u << sint_of(t));
  }
  __atomic_store_n(&timers.pending_sints, bits, __ATOMIC_RELEASE);
}

void expire(Vp& vp, uint32_t index, uint64_t now) {
  SyntheticTimer& t = vp.timers.timer[index];
  const uint64_t due = t.deadline;
  if (direct(t)) {
    // A fixed interrupt through the local APIC: the guest EOIs it.
    vp.partition().interrupts().raise(vp.index(), direct_vector(t), false);
    rearm_after(t, due, now);
    return;
  }
  if (send_message(vp, index, due, now) == SlotOffer::kBusy) {
    t.message_pending = true;
    t.pending_expiration = due;
    t.deadline = kNoDeadline;  // not re-armed while the message waits
    set_pending_bit(vp.timers, sint_of(t), true);
    return;
  }
  rearm_after(t, due, now);
}

MsrResult write_config(Vp& vp, SyntheticTimer& t, uint64_t value) {
  const PartitionFeatures& f = vp.partition().features();
  if ((value & ~cfg::kDefined) != 0) return MsrResult::kGp;
  if ((value & cfg::kDirectMode) != 0) {
    if ((f.misc & tlfs::cpuid::kFeatureStimerDirectMode) == 0) return MsrResult::kGp;
    if (((value & cfg::kVectorMask) >> cfg::kVectorShift) < 16) return MsrResult::kGp;
  } else if ((value & cfg::kSintMask) == 0) {
    value &= ~cfg::kEnable;  // message mode to SINT 0: cannot be enabled
  }
  t.config = value;
  return MsrResult::kOk;
}

void write_count(SyntheticTimer& t, uint64_t value) {
  t.count = value;
  if (value == 0) {
    t.config &= ~cfg::kEnable;
  } else if ((t.config & cfg::kAutoEnable) != 0) {
    t.config |= cfg::kEnable;
  }
}

}  // namespace

bool is_stimer_msr(uint32_t m) {
  return m >= msr::kStimer0Config && m <= msr::kStimer3Count;
}

MsrResult stimer_read_msr(Vp& vp, uint32_t m, uint64_t* value) {
  const uint32_t n = m - msr::kStimer0Config;
  const SyntheticTimer& t = vp.timers.timer[(n / 2) % tlfs::kStimerCount];
  *value = (n % 2) == 0 ? t.config : t.count;
  return MsrResult::kOk;
}

MsrResult stimer_write_msr(Vp& vp, uint32_t m, uint64_t value) {
  const uint32_t n = m - msr::kStimer0Config;
  SyntheticTimer& t = vp.timers.timer[(n / 2) % tlfs::kStimerCount];
  if ((n % 2) == 0) {
    if (write_config(vp, t, value) != MsrResult::kOk) return MsrResult::kGp;
  } else {
    write_count(t, value);
  }
  // Either write restarts the timer; a message still waiting is dropped.
  start(t, vp.partition().reference_time());
  recompute_pending_bits(vp.timers);
  update_next_deadline(vp.timers);
  return MsrResult::kOk;
}

void stimers_run(Vp& vp, uint64_t now) {
  if (stimers_next_deadline(vp) > now) return;
  LockGuard guard(vp.partition().hypervisor().lock);
  for (uint32_t i = 0; i < tlfs::kStimerCount; ++i) {
    const SyntheticTimer& t = vp.timers.timer[i];
    if (enabled(t) && t.deadline <= now) expire(vp, i, now);
  }
  update_next_deadline(vp.timers);
}

void stimers_retry_messages(Vp& vp) {
  if (__atomic_load_n(&vp.timers.pending_sints, __ATOMIC_ACQUIRE) == 0) return;
  const uint64_t now = vp.partition().reference_time();
  for (uint32_t i = 0; i < tlfs::kStimerCount; ++i) {
    SyntheticTimer& t = vp.timers.timer[i];
    if (!t.message_pending) continue;
    if (send_message(vp, i, t.pending_expiration, now) == SlotOffer::kBusy) continue;
    t.message_pending = false;
    if (enabled(t)) {
      rearm_after(t, t.pending_expiration, now);
    }
  }
  recompute_pending_bits(vp.timers);
  update_next_deadline(vp.timers);
}

uint64_t stimers_next_deadline(const Vp& vp) {
  return __atomic_load_n(&vp.timers.next_deadline, __ATOMIC_ACQUIRE);
}

}  // namespace microhv
