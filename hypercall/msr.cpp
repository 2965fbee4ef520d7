#include "hypercall/msr.hpp"

#include "hypercall/crash.hpp"
#include "hypercall/time_msr.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/timers.hpp"

namespace microhv {
namespace {

namespace msr = tlfs::msr;
namespace cpuid = tlfs::cpuid;
namespace hypercall_msr = tlfs::hypercall_msr;

// Which CPUID 0x40000003.EAX bit makes an MSR exist for the guest (EDX for
// the crash MSRs, below).
uint32_t access_bit(uint32_t m) {
  if (is_synic_msr(m)) return cpuid::kAccessSynicRegs;  // first: EOM is the hot one
  if (is_stimer_msr(m)) return cpuid::kAccessSynicTimers;
  if (m == msr::kGuestOsId || m == msr::kHypercall) return cpuid::kAccessHypercallMsrs;
  // Linux 6.1 writes VP_ASSIST_PAGE on every CPU whether or not it is
  // advertised (hv_cpu_init, a plain wrmsrl); a #GP there is a kernel warning.
  // microhv stores it and offers no assist features, so CPUID keeps the APIC
  // access bit clear.
  if (m == msr::kVpAssistPage) return cpuid::kAccessHypercallMsrs;
  if (m == msr::kVpIndex) return cpuid::kAccessVpIndex;
  if (m == msr::kTimeRefCount) return cpuid::kAccessPartitionRefCounter;
  if (m == msr::kReferenceTsc) return cpuid::kAccessPartitionReferenceTsc;
  if (m == msr::kTscFrequency || m == msr::kApicFrequency) return cpuid::kAccessFrequencyMsrs;
  if (m == msr::kTscInvariantControl) return cpuid::kAccessTscInvariant;
  return 0;  // not implemented: #GP
}

bool accessible(const Vp& vp, uint32_t m) {
  if (is_crash_msr(m)) {
    return (vp.partition().features().misc & cpuid::kFeatureGuestCrashMsrs) != 0;
  }
  const uint32_t bit = access_bit(m);
  return bit != 0 && vp.partition().has_msr_access(bit);
}

// The hypercall page (TLFS 3.13) holds the calling sequence the guest CALLs:
// on Intel VMCALL; RET. The rest of the page is INT3, so a stray jump into it
// traps instead of running whatever follows.
constexpr uint8_t kHypercallCode[] = {0x0F, 0x01, 0xC1, 0xC3};
constexpr uint8_t kInt3 = 0xCC;

void fill_hypercall_page(GuestPhysicalOverlays& overlays) {
  uint8_t line[256];
  for (uint8_t& b : line) b = kInt3;
  for (uint32_t off = 0; off < kPageSize; off += sizeof(line)) {
    overlays.write(OverlayId::kHypercallPage, off, line, sizeof(line));
  }
  overlays.write(OverlayId::kHypercallPage, 0, kHypercallCode, sizeof(kHypercallCode));
}

// The overlay follows the MSR: placed at its page while enabled, moved when
// the page changes, removed when disabled. The guest RAM underneath is never
// written. Runs under Hypervisor::lock, so concurrent writers are
// serialised and the last one's value is what is mapped. False when the
// page cannot be placed there (microhv's memory, the local APIC page,
// another overlay) or the back end is out of page tables: the overlay stays
// where it was and the caller leaves the MSR unchanged.
bool follow_hypercall_msr(Partition& p, uint64_t old_msr, uint64_t new_msr) {
  const bool was_on = (old_msr & hypercall_msr::kEnable) != 0;
  const bool is_on = (new_msr & hypercall_msr::kEnable) != 0;
  const Gpa page(new_msr & hypercall_msr::kPageMask);
  if (is_on) {
    if (was_on && Gpa(old_msr & hypercall_msr::kPageMask) == page) return true;
    fill_hypercall_page(p.overlays());
    // The back end logs why it refused or failed.
    return p.overlays().place(OverlayId::kHypercallPage, page) == OverlayStatus::kPlaced;
  }
  if (was_on) p.overlays().remove(OverlayId::kHypercallPage);
  return true;
}

MsrResult write_locked(Vp& vp, uint32_t m, uint64_t value) {
  Partition& partition = vp.partition();
  const uint64_t old_hypercall = partition.hypercall_msr;
  switch (m) {
    case msr::kGuestOsId: {
      // Clearing the OS id disables the hypercall page (TLFS 3.13); removing
      // an overlay cannot fail.
      const uint64_t hypercall =
          value == 0 ? old_hypercall & ~hypercall_msr::kEnable : old_hypercall;
      follow_hypercall_msr(partition, old_hypercall, hypercall);
      partition.guest_os_id = value;
      partition.hypercall_msr = hypercall;
      return MsrResult::kOk;
    }
    case msr::kHypercall:
      if ((value & hypercall_msr::kReserved) != 0 || page_field_beyond_width(partition, value)) {
        return MsrResult::kGp;
      }
      if ((old_hypercall & hypercall_msr::kLocked) != 0) return MsrResult::kOk;  // ignored
      // The page cannot be enabled before the guest identifies itself.
      if (partition.guest_os_id == 0) value &= ~hypercall_msr::kEnable;
      // A page that cannot be placed: the write does not take effect (#GP,
      // as for a GPA that is not guest memory; the guest keeps its page).
      if (!follow_hypercall_msr(partition, old_hypercall, value)) return MsrResult::kGp;
      partition.hypercall_msr = value;
      return MsrResult::kOk;
    case msr::kVpAssistPage:
      if ((value & tlfs::vp_assist_msr::kReserved) != 0 ||
          page_field_beyond_width(partition, value)) {
        return MsrResult::kGp;
      }
      vp.vp_assist_page = value;
      return MsrResult::kOk;
    default:
      return MsrResult::kGp;  // VP_INDEX is read-only
  }
}

}  // namespace

MsrResult read_synthetic_msr(Vp& vp, uint32_t m, uint64_t* value) {
  if (!msr::is_synthetic(m)) return MsrResult::kNotSynthetic;
  if (!accessible(vp, m)) return MsrResult::kGp;
  if (is_synic_msr(m)) return synic_read_msr(vp, m, value);
  if (is_crash_msr(m)) return crash_read_msr(vp, m, value);
  Partition& partition = vp.partition();
  LockGuard guard(partition.hypervisor().lock);
  if (is_time_msr(m)) return time_read_msr(vp, m, value);
  if (is_stimer_msr(m)) return stimer_read_msr(vp, m, value);
  switch (m) {
    case msr::kGuestOsId:
      *value = partition.guest_os_id;
      return MsrResult::kOk;
    case msr::kHypercall:
      *value = partition.hypercall_msr;
      return MsrResult::kOk;
    case msr::kVpIndex:
      *value = vp.index().value();
      return MsrResult::kOk;
    case msr::kVpAssistPage:
      *value = vp.vp_assist_page;
      return MsrResult::kOk;
    default:
      return MsrResult::kGp;  // access_bit() admits no other
  }
}

MsrResult write_synthetic_msr(Vp& vp, uint32_t m, uint64_t value) {
  if (!msr::is_synthetic(m)) return MsrResult::kNotSynthetic;
  if (!accessible(vp, m)) return MsrResult::kGp;
  if (is_synic_msr(m)) return synic_write_msr(vp, m, value);
  if (is_crash_msr(m)) return crash_write_msr(vp, m, value);
  LockGuard guard(vp.partition().hypervisor().lock);
  if (is_time_msr(m)) return time_write_msr(vp, m, value);
  if (is_stimer_msr(m)) return stimer_write_msr(vp, m, value);
  return write_locked(vp, m, value);
}

}  // namespace microhv
