#include "synic/msr.hpp"

#include "kernel/hypervisor.hpp"
#include "synic/delivery.hpp"
#include "synic/timers.hpp"

namespace microhv {
namespace {

namespace msr = tlfs::msr;
namespace bits = tlfs::sint_bits;

bool is_sint(uint32_t m) {
  return m >= msr::kSint0 && m <= msr::kSint15;
}

MsrResult write_sint(Vp& vp, SintIndex sint, uint64_t value) {
  // A vector below 16 cannot be delivered; the TLFS makes unmasking such a
  // SINT a #GP. Bits outside vector/masked/AutoEOI/polling are reserved.
  if ((value & ~bits::kWritable) != 0) return MsrResult::kGp;
  if ((value & bits::kMasked) == 0 && (value & bits::kVectorMask) < 16) return MsrResult::kGp;
  vp.synic.sint[sint.value()] = value;
  return MsrResult::kOk;
}

// What waits for a slot: queued port messages, then timer messages.
void deliver_waiting(Vp& vp) {
  synic_drain_all(vp);
  stimers_retry_messages(vp);
}

MsrResult write_locked(Vp& vp, uint32_t m, uint64_t value) {
  SynicState& s = vp.synic;
  switch (m) {
    case msr::kSversion:
      return MsrResult::kGp;  // read-only
    case msr::kScontrol:
      s.scontrol = value;
      deliver_waiting(vp);
      return MsrResult::kOk;
    case msr::kSimp:
      if (page_field_beyond_width(vp.partition(), value)) return MsrResult::kGp;
      s.simp = value;
      deliver_waiting(vp);
      return MsrResult::kOk;
    case msr::kSiefp:
      if (page_field_beyond_width(vp.partition(), value)) return MsrResult::kGp;
      s.siefp = value;
      return MsrResult::kOk;
    case msr::kEom:
      deliver_waiting(vp);
      return MsrResult::kOk;
    default:
      if (is_sint(m))
        return write_sint(vp, SintIndex(static_cast<uint8_t>(m - msr::kSint0)), value);
      return MsrResult::kGp;
  }
}

}  // namespace

bool page_field_beyond_width(const Partition& p, uint64_t msr_value) {
  return !p.memory().within_width(Gpa(msr_value & ~kPageMask));
}

bool is_synic_msr(uint32_t m) {
  return (m >= msr::kScontrol && m <= msr::kEom) || is_sint(m);
}

MsrResult synic_read_msr(Vp& vp, uint32_t m, uint64_t* value) {
  LockGuard guard(vp.partition().hypervisor().lock);
  const SynicState& s = vp.synic;
  switch (m) {
    case msr::kScontrol:
      *value = s.scontrol;
      return MsrResult::kOk;
    case msr::kSversion:
      *value = tlfs::kSversionValue;
      return MsrResult::kOk;
    case msr::kSiefp:
      *value = s.siefp;
      return MsrResult::kOk;
    case msr::kSimp:
      *value = s.simp;
      return MsrResult::kOk;
    case msr::kEom:
      *value = 0;  // write-only trigger
      return MsrResult::kOk;
    default:
      if (!is_sint(m)) return MsrResult::kGp;
      *value = s.sint[m - msr::kSint0];
      return MsrResult::kOk;
  }
}

MsrResult synic_write_msr(Vp& vp, uint32_t m, uint64_t value) {
  // EOM with nothing queued has nothing to do. A message queued concurrently
  // sets its bit before it sets MessagePending, which is what prompts this
  // EOM, so skipping the lock here cannot strand it. Timer messages are
  // queued on this VP's own CPU only.
  if (m == msr::kEom && __atomic_load_n(&vp.synic.queued_sints, __ATOMIC_ACQUIRE) == 0 &&
      __atomic_load_n(&vp.timers.pending_sints, __ATOMIC_ACQUIRE) == 0) {
    return MsrResult::kOk;
  }
  LockGuard guard(vp.partition().hypervisor().lock);
  return write_locked(vp, m, value);
}

}  // namespace microhv
