#include "vmx/smp.hpp"

#include "arch/apic.hpp"

namespace microhv::vmx {

namespace icr = arch::apic::icr;

bool RemoteQueue::post(uint8_t vector, bool is_auto_eoi) {
  uint64_t* words = is_auto_eoi ? auto_eoi : apic;
  __atomic_fetch_or(&words[vector >> 6], 1ull << (vector & 63), __ATOMIC_SEQ_CST);
  return poke();
}

bool RemoteQueue::poke() {
  __atomic_store_n(&work, 1u, __ATOMIC_SEQ_CST);
  return __atomic_exchange_n(&kick_sent, 1u, __ATOMIC_SEQ_CST) == 0;
}

bool RemoteQueue::post_init() {
  __atomic_store_n(&init_request, 1u, __ATOMIC_SEQ_CST);
  return poke();
}

bool RemoteQueue::take_init() {
  return __atomic_exchange_n(&init_request, 0u, __ATOMIC_SEQ_CST) != 0;
}

NmiKind RemoteQueue::take_nmi() {
  return __atomic_exchange_n(&kick_sent, 0u, __ATOMIC_SEQ_CST) != 0 ? NmiKind::kKick
                                                                    : NmiKind::kGenuine;
}

void RemoteQueue::note_host_nmi() {
  __atomic_fetch_add(&host_nmis, 1u, __ATOMIC_SEQ_CST);
  __atomic_store_n(&work, 1u, __ATOMIC_SEQ_CST);
}

RemoteQueue::Drained RemoteQueue::drain() {
  Drained d{};
  if (__atomic_exchange_n(&work, 0u, __ATOMIC_SEQ_CST) == 0) return d;
  uint64_t any = 0;
  for (uint32_t w = 0; w < 4; ++w) {
    d.auto_eoi[w] = __atomic_exchange_n(&auto_eoi[w], 0ull, __ATOMIC_SEQ_CST);
    d.apic[w] = __atomic_exchange_n(&apic[w], 0ull, __ATOMIC_SEQ_CST);
    any |= d.auto_eoi[w] | d.apic[w];
  }
  d.nmis = __atomic_exchange_n(&host_nmis, 0u, __ATOMIC_SEQ_CST);
  d.any = any != 0 || d.nmis != 0;
  return d;
}

IcrDecision decide_icr(uint32_t low, uint32_t dest, bool x2apic, const ApicId* vp_apic,
                       uint32_t vp_count, uint32_t self, bool natives) {
  IcrDecision d;
  if ((low & icr::kDeliveryModeMask) != icr::kInit) return d;
  if ((low & icr::kAssert) == 0) {
    d.action = IcrAction::kDrop;
    return d;
  }
  const uint64_t all = vp_count >= 64 ? ~0ull : (1ull << vp_count) - 1;
  const uint64_t self_bit = self < 64 ? 1ull << self : 0;
  switch (low & icr::kShorthandMask) {
    case icr::kShorthandSelf:
      d.vps = self_bit & all;
      break;
    case icr::kShorthandAll:
      d.vps = all;
      d.natives_too = natives;
      break;
    case icr::kShorthandAllButSelf:
      d.vps = all & ~self_bit;
      d.natives_too = natives;
      break;
    default:
      if ((low & icr::kLogical) != 0) return d;
      if (dest == (x2apic ? icr::kX2apicBroadcast : icr::kXapicBroadcast)) {
        d.vps = all;
        d.natives_too = natives;
        break;
      }
      for (uint32_t vp = 0; vp < vp_count && vp < 64; ++vp) {
        if (vp_apic[vp] == ApicId(dest)) d.vps = 1ull << vp;
      }
      if (d.vps == 0) return d;  // a CPU that is not a VP: send it
      break;
  }
  d.action = IcrAction::kEmulateInit;
  return d;
}

HostNmiOutcome host_nmi(RemoteQueue& q, uint64_t rip, uint64_t check, uint64_t vmresume) {
  const NmiKind kind = q.take_nmi();
  if (kind == NmiKind::kGenuine) q.note_host_nmi();
  return {kind, entry_window_fixup(rip, check, vmresume)};
}

void stop_partition(Partition& partition) {
  partition.set_active(false);
}

bool vp_must_park(const Vp* vp) {
  return vp != nullptr && !vp->partition().active();
}

}  // namespace microhv::vmx
