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

namespace {

// A broadcast destination: the shorthands "all" and "all but self", or the
// physical broadcast id (xAPIC 0xFF, x2APIC 0xFFFFFFFF; SDM Vol. 3A
// 11.6.2.1/11.12.9). Sets `vps` to the VPs it reaches (`self` dropped
// unless `include_self`) and `natives_too` when CPUs that are no VP exist.
bool broadcast_targets(uint32_t low, uint32_t dest, bool x2apic, uint32_t vp_count, uint32_t self,
                       bool natives, bool include_self, IcrDecision& d) {
  const uint32_t shorthand = low & icr::kShorthandMask;
  const bool physical_broadcast = shorthand == 0 && (low & icr::kLogical) == 0 &&
                                  dest == (x2apic ? icr::kX2apicBroadcast : icr::kXapicBroadcast);
  if (shorthand != icr::kShorthandAll && shorthand != icr::kShorthandAllButSelf &&
      !physical_broadcast) {
    return false;
  }
  const uint64_t all = vp_count >= 64 ? ~0ull : (1ull << vp_count) - 1;
  const uint64_t self_bit = self < 64 ? 1ull << self : 0;
  d.vps = shorthand == icr::kShorthandAllButSelf || !include_self ? all & ~self_bit : all;
  d.natives_too = natives;
  return true;
}

IcrDecision decide_sipi(uint32_t low, uint32_t dest, bool x2apic, uint32_t vp_count, uint32_t self,
                        bool natives) {
  IcrDecision d;
  // The sender runs, so a SIPI to itself is discarded (SDM Vol. 3C 27.6.2:
  // the active state blocks SIPIs); the others get one each.
  if (broadcast_targets(low, dest, x2apic, vp_count, self, natives, false, d)) {
    d.action = IcrAction::kUnicastSipi;
  }
  return d;
}

}  // namespace

IcrDecision decide_icr(uint32_t low, uint32_t dest, bool x2apic, const ApicId* vp_apic,
                       uint32_t vp_count, uint32_t self, bool natives) {
  IcrDecision d;
  if ((low & icr::kDeliveryModeMask) == icr::kStartup)
    return decide_sipi(low, dest, x2apic, vp_count, self, natives);
  if ((low & icr::kDeliveryModeMask) != icr::kInit) return d;
  if ((low & icr::kAssert) == 0) {
    d.action = IcrAction::kDrop;
    return d;
  }
  const uint32_t shorthand = low & icr::kShorthandMask;
  if (shorthand == icr::kShorthandSelf) {
    d.vps = self < vp_count && self < 64 ? 1ull << self : 0;
  } else if (!broadcast_targets(low, dest, x2apic, vp_count, self, natives, true, d)) {
    if ((low & icr::kLogical) != 0) return d;
    for (uint32_t vp = 0; vp < vp_count && vp < 64; ++vp) {
      if (vp_apic[vp] == ApicId(dest)) d.vps = 1ull << vp;
    }
    if (d.vps == 0) return d;  // a CPU that is not a VP: send it
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
