// INIT IPIs the guest sends to VPs are emulated, not sent (vmx/smp.hpp,
// decide_icr; vmx/README.md "INIT and SIPI"): the target resets itself to
// the INIT state before its next entry and waits for SIPI, and the sender's
// ICR write completes only once it is there.
#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "vmx/hw/cpu_services.hpp"
#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {
namespace {

namespace apic = arch::apic;
namespace icr = arch::apic::icr;

uint64_t tsc_after_us(const Host& h, uint64_t us) {
  const uint64_t hz = h.info.tsc_hz != 0 ? h.info.tsc_hz : 1000000000ull;
  return arch::rdtsc() + hz / 1000000 * us;
}

// An INIT IPI from the guest to VP `t`: t resets itself to the INIT state
// before its next entry (prepare_entry) and waits for SIPI there; this CPU
// waits (bounded) until it does, so that the SIPI the guest sends next
// finds it waiting. A VP already waiting for SIPI is left alone.
void emulate_init(Vcpu& self, Vcpu& t) {
  RemoteQueue& q = t.frame->remote;
  ++self.inits_sent;
  if (&t == &self) {
    q.post_init();  // applied by prepare_entry at the end of this exit
    return;
  }
  if (__atomic_load_n(&q.activity, __ATOMIC_ACQUIRE) == activity::kWaitForSipi &&
      __atomic_load_n(&q.init_request, __ATOMIC_ACQUIRE) == 0) {
    return;
  }
  if (q.post_init()) send_kick(self, t);
  constexpr uint64_t kWaitUs = 100000;
  const uint64_t deadline = tsc_after_us(*self.host, kWaitUs);
  while (__atomic_load_n(&q.init_request, __ATOMIC_ACQUIRE) != 0 ||
         __atomic_load_n(&q.activity, __ATOMIC_ACQUIRE) != activity::kWaitForSipi) {
    if (static_cast<int64_t>(arch::rdtsc() - deadline) > 0) {
      log::error(
          "cpu %u: INIT IPI to cpu %u (VP %u): it did not reach wait-for-SIPI within %llu ms "
          "(activity %u, kick %u, work %u, %llu exits); a SIPI sent now may be lost\n",
          self.processor, t.processor, t.index, (unsigned long long)(kWaitUs / 1000),
          __atomic_load_n(&q.activity, __ATOMIC_ACQUIRE),
          __atomic_load_n(&q.kick_sent, __ATOMIC_ACQUIRE),
          __atomic_load_n(&q.work, __ATOMIC_ACQUIRE), (unsigned long long)t.exits);
      return;
    }
    serve_tlb_inbox(self);  // t may be waiting for this VP's flush acknowledgment
    arch::pause();
  }
  if (self.inits_sent == 1) {
    log::info(
        "cpu %u: INIT IPI to cpu %u emulated: VP %u reset to the INIT state, waits for SIPI "
        "(first; later ones are not logged)\n",
        self.processor, t.processor, t.index);
  }
}

// `low` (no shorthand, physical) to every CPU that is not a VP: the
// virtualized CPUs past the first `vps` (not VPs yet) and those microhv
// left native, one at a time.
void send_to_natives(const Vcpu& self, uint64_t base, uint32_t low, uint32_t vps) {
  const Host& h = *self.host;
  for (uint32_t i = vps; i < h.cpu_count; ++i) {
    if (h.vcpus[i].apic_id != self.apic_id) send_ipi(base, low, h.vcpus[i].apic_id.value());
  }
  for (uint32_t i = 0; i < h.info.native_count; ++i) {
    send_ipi(base, low, h.info.native_apic_ids[i].value());
  }
}

}  // namespace

void guest_icr_write(Vcpu& self, uint32_t low, uint32_t dest, bool x2apic, uint64_t x2apic_value) {
  Host& h = *self.host;
  const uint64_t base = apic_base();
  ApicId vp_apic[kMaxCpus];
  uint32_t vps = 0;
  while (vps < h.cpu_count && __atomic_load_n(&h.vcpus[vps].vp, __ATOMIC_ACQUIRE) != nullptr) {
    vp_apic[vps] = h.vcpus[vps].apic_id;
    ++vps;
  }
  const bool natives = vps < h.cpu_count || h.info.native_count != 0;
  const IcrDecision d = decide_icr(low, dest, x2apic, vp_apic, vps, self.index, natives);
  switch (d.action) {
    case IcrAction::kPassThrough:
      if (x2apic) {
        // The guest's value (its reserved bits were refused before):
        // fault-safe all the same, a fault must not stop microhv.
        if (!h.cpu.wrmsr(apic::kX2apicIcrMsr, x2apic_value) && h.refused_logged.allow()) {
          log::info("cpu %u: x2APIC ICR write 0x%llx faulted; dropped\n", self.processor,
                    static_cast<unsigned long long>(x2apic_value));
        }
      } else {
        *xapic_reg(base, apic::kIcrLow) = low;
      }
      return;
    case IcrAction::kDrop:
      return;
    case IcrAction::kUnicastSipi: {
      // One SIPI per target, physical destination, no shorthand (vmx/smp.hpp
      // says why; the same on hardware).
      const uint32_t sipi = icr::kStartup | icr::kAssert | (low & icr::kVectorMask);
      for (uint32_t vp = 0; vp < vps; ++vp) {
        if ((d.vps >> vp) & 1) send_ipi(base, sipi, h.vcpus[vp].apic_id.value());
      }
      if (d.natives_too) send_to_natives(self, base, sipi, vps);
      if (++self.sipis_split == 1) {
        log::info(
            "cpu %u: broadcast SIPI (vector 0x%x) sent as one SIPI per CPU (first; later ones "
            "are not logged)\n",
            self.processor, low & icr::kVectorMask);
      }
      return;
    }
    case IcrAction::kEmulateInit:
      break;
  }
  for (uint32_t vp = 0; vp < vps; ++vp) {
    if ((d.vps >> vp) & 1) emulate_init(self, h.vcpus[vp]);
  }
  if (d.natives_too) {
    // CPUs that are not VPs get the INIT for real, one at a time.
    const uint32_t init =
        icr::kInit | icr::kAssert | (low & (icr::kLevelTriggered | icr::kDeliveryModeMask));
    send_to_natives(self, base, init, vps);
  }
}

}  // namespace microhv::vmx::hw
