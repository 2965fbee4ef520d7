#include "synic/msr.hpp"

#include "kernel/hypervisor.hpp"
#include "synic/delivery.hpp"

namespace microhv {
namespace {

namespace msr = tlfs::msr;
namespace bits = tlfs::sint_bits;
namespace cpuid = tlfs::cpuid;

constexpr uint32_t kSyntheticFirst = 0x40000000;
constexpr uint32_t kSyntheticLast = 0x400000FF;
// HYPERCALL: 63:12 GPFN, 1 locked, 0 enable; 11:2 reserved.
constexpr uint64_t kHypercallEnable = 1ull << 0;
constexpr uint64_t kHypercallLocked = 1ull << 1;
constexpr uint64_t kHypercallReserved = 0xFFCull;
// VP_ASSIST_PAGE: 63:12 GPFN, 0 enable, 11:1 reserved.
constexpr uint64_t kVpAssistReserved = 0xFFEull;

bool is_sint(uint32_t m) {
  return m >= msr::kSint0 && m <= msr::kSint15;
}

bool is_synic(uint32_t m) {
  return (m >= msr::kScontrol && m <= msr::kEom) || is_sint(m);
}

// Which CPUID 0x40000003.EAX bit makes an MSR exist for the guest.
uint32_t access_bit(uint32_t m) {
  if (m == msr::kGuestOsId || m == msr::kHypercall) return cpuid::kAccessHypercallMsrs;
  // Linux 6.1 writes VP_ASSIST_PAGE on every CPU whether or not it is
  // advertised (hv_cpu_init, a plain wrmsrl); a #GP there is a kernel warning.
  // microhv stores it and offers no assist features, so CPUID keeps the APIC
  // access bit clear.
  if (m == msr::kVpAssistPage) return cpuid::kAccessHypercallMsrs;
  if (m == msr::kVpIndex) return cpuid::kAccessVpIndex;
  if (m == msr::kTimeRefCount) return cpuid::kAccessPartitionRefCounter;
  if (is_synic(m)) return cpuid::kAccessSynicRegs;
  return 0;  // not implemented: #GP
}

MsrResult write_sint(Vp& vp, uint32_t sint, uint64_t value) {
  // A vector below 16 cannot be delivered; the TLFS makes unmasking such a
  // SINT a #GP. Bits outside vector/masked/AutoEOI/polling are reserved.
  if ((value & ~bits::kWritable) != 0) return MsrResult::kGp;
  if ((value & bits::kMasked) == 0 && (value & bits::kVectorMask) < 16) return MsrResult::kGp;
  vp.synic.sint[sint] = value;
  return MsrResult::kOk;
}

MsrResult write_locked(Vp& vp, uint32_t m, uint64_t value) {
  Partition& partition = vp.partition();
  SynicState& s = vp.synic;
  switch (m) {
    case msr::kGuestOsId:
      partition.guest_os_id = value;
      // Clearing the OS id disables the hypercall page (TLFS 3.13).
      if (value == 0) partition.hypercall_msr &= ~kHypercallEnable;
      return MsrResult::kOk;
    case msr::kHypercall:
      if ((value & kHypercallReserved) != 0) return MsrResult::kGp;
      if ((partition.hypercall_msr & kHypercallLocked) != 0) return MsrResult::kOk;  // ignored
      // The page cannot be enabled before the guest identifies itself.
      if (partition.guest_os_id == 0) value &= ~kHypercallEnable;
      partition.hypercall_msr = value;
      return MsrResult::kOk;
    case msr::kVpAssistPage:
      if ((value & kVpAssistReserved) != 0) return MsrResult::kGp;
      vp.vp_assist_page = value;
      return MsrResult::kOk;
    case msr::kVpIndex:
    case msr::kTimeRefCount:
    case msr::kSversion:
      return MsrResult::kGp;  // read-only
    case msr::kScontrol:
      s.scontrol = value;
      synic_drain_all(vp);
      return MsrResult::kOk;
    case msr::kSimp:
      s.simp = value;
      synic_drain_all(vp);
      return MsrResult::kOk;
    case msr::kSiefp:
      s.siefp = value;
      return MsrResult::kOk;
    case msr::kEom:
      synic_drain_all(vp);
      return MsrResult::kOk;
    default:
      if (is_sint(m)) return write_sint(vp, m - msr::kSint0, value);
      return MsrResult::kGp;
  }
}

}  // namespace

MsrResult read_synthetic_msr(Vp& vp, uint32_t m, uint64_t* value) {
  if (m < kSyntheticFirst || m > kSyntheticLast) return MsrResult::kNotSynthetic;
  Partition& partition = vp.partition();
  uint32_t bit = access_bit(m);
  if (bit == 0 || !partition.has_msr_access(bit)) return MsrResult::kGp;
  LockGuard guard(partition.hypervisor().lock);
  const SynicState& s = vp.synic;
  switch (m) {
    case msr::kGuestOsId:
      *value = partition.guest_os_id;
      break;
    case msr::kHypercall:
      *value = partition.hypercall_msr;
      break;
    case msr::kVpIndex:
      *value = vp.index().value();
      break;
    case msr::kVpAssistPage:
      *value = vp.vp_assist_page;
      break;
    case msr::kTimeRefCount:
      *value = partition.clock().now_100ns();
      break;
    case msr::kScontrol:
      *value = s.scontrol;
      break;
    case msr::kSversion:
      *value = tlfs::kSversionValue;
      break;
    case msr::kSiefp:
      *value = s.siefp;
      break;
    case msr::kSimp:
      *value = s.simp;
      break;
    case msr::kEom:
      *value = 0;
      break;  // write-only trigger
    default:
      *value = s.sint[m - msr::kSint0];
      break;  // access_bit() admitted only SINTs
  }
  return MsrResult::kOk;
}

MsrResult write_synthetic_msr(Vp& vp, uint32_t m, uint64_t value) {
  if (m < kSyntheticFirst || m > kSyntheticLast) return MsrResult::kNotSynthetic;
  uint32_t bit = access_bit(m);
  if (bit == 0 || !vp.partition().has_msr_access(bit)) return MsrResult::kGp;
  // EOM with nothing queued has nothing to do. A message queued concurrently
  // sets its bit before it sets MessagePending, which is what prompts this
  // EOM, so skipping the lock here cannot strand it.
  if (m == msr::kEom && __atomic_load_n(&vp.synic.queued_sints, __ATOMIC_ACQUIRE) == 0) {
    return MsrResult::kOk;
  }
  LockGuard guard(vp.partition().hypervisor().lock);
  return write_locked(vp, m, value);
}

void synic_end_of_message(Vp& vp) {
  LockGuard guard(vp.partition().hypervisor().lock);
  synic_drain_all(vp);
}

void synic_end_of_interrupt(Vp& vp, uint8_t vector) {
  LockGuard guard(vp.partition().hypervisor().lock);
  for (uint32_t sint = 0; sint < kSintCount; ++sint) {
    if (!vp.synic.auto_eoi(sint) && vp.synic.vector(sint) == vector) synic_drain(vp, sint);
  }
}

}  // namespace microhv
