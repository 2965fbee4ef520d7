#include "vmx/hw/apic.hpp"

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/msr.hpp"
#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {
namespace {

namespace apic = arch::apic;
namespace icr = arch::apic::icr;

void xapic_wait_idle(uint64_t base) {
  volatile uint32_t* icr_low = xapic_reg(base, apic::kIcrLow);
  for (int i = 0; i < 100000 && (*icr_low & icr::kDeliveryPending) != 0; ++i) arch::pause();
}

void deliver_local(Vcpu& v, uint8_t vector, bool auto_eoi) {
  if (auto_eoi) {
    v.events.queue_interrupt(vector);
  } else {
    send_self_ipi(v, vector);
  }
}

}  // namespace

uint64_t apic_base() {
  return arch::rdmsr(arch::msr::kApicBase);
}

volatile uint32_t* xapic_reg(uint64_t base, uint32_t offset) {
  return reinterpret_cast<volatile uint32_t*>((base & apic::base::kPageMask) + offset);
}

void send_ipi(uint64_t base, uint32_t low, uint32_t dest) {
  if ((base & apic::base::kX2apic) != 0) {
    arch::wrmsr(apic::kX2apicIcrMsr, (static_cast<uint64_t>(dest) << 32) | low);
    return;
  }
  volatile uint32_t* icr_high = xapic_reg(base, apic::kIcrHigh);
  xapic_wait_idle(base);
  const uint32_t saved_high = *icr_high;
  *icr_high = dest << apic::kXapicDestShift;
  *xapic_reg(base, apic::kIcrLow) = low;
  xapic_wait_idle(base);
  *icr_high = saved_high;
}

void send_self_ipi(Vcpu& v, uint8_t vector) {
  const uint64_t base = apic_base();
  // The guest's own view decides: its "disabled" APIC may be a real one that
  // microhv keeps enabled (vmx/apic_base.hpp).
  if (v.cpu_state.apic.mode == ApicMode::kDisabled || (base & apic::base::kEnable) == 0) {
    // The guest disabled its APIC: nothing can deliver or EOI a fixed
    // interrupt. Fall back to VMCS injection.
    if (!v.apic_warned) {
      log::error("local APIC disabled; SINT vector 0x%x injected without APIC state\n", vector);
    }
    v.apic_warned = true;
    v.events.queue_interrupt(vector);
    return;
  }
  if ((base & apic::base::kX2apic) != 0) {
    arch::wrmsr(apic::kX2apicSelfIpiMsr, vector);  // x2APIC SELF IPI register
    return;
  }
  // xAPIC: ICR low with destination shorthand "self", fixed, edge.
  xapic_wait_idle(base);
  *xapic_reg(base, apic::kIcrLow) = icr::kShorthandSelf | icr::kAssert | vector;
}

bool send_kick(Vcpu& self, Vcpu& target) {
  const uint64_t base = apic_base();
  const uint64_t kicks = __atomic_add_fetch(&target.kicks_sent_to, 1, __ATOMIC_RELAXED);
  if ((base & apic::base::kEnable) == 0) {
    if (!self.kick_warned) {
      log::error(
          "cpu %u: local APIC disabled by the guest: cannot kick cpu %u; it takes its interrupts "
          "at its next exit\n",
          self.processor, target.processor);
    }
    self.kick_warned = true;
    return false;
  }
  send_ipi(base, icr::kNmi | icr::kAssert, target.apic_id.value());
  if (kicks == 1) {
    log::info("cpu %u: first kick to cpu %u: NMI IPI to APIC ID %u\n", self.processor,
              target.processor, target.apic_id.value());
  }
  return true;
}

void kick_other_vps(Host& h, Vcpu& self) {
  for (uint32_t i = 0; i < h.cpu_count; ++i) {
    Vcpu& t = h.vcpus[i];
    if (&t == &self || __atomic_load_n(&t.vp, __ATOMIC_ACQUIRE) == nullptr) continue;
    if (t.frame->remote.poke()) send_kick(self, t);
  }
}

void HwInterrupts::raise(VpIndex vp, uint8_t vector, bool auto_eoi) {
  Host& h = host_;
  Vcpu* target = vp.value() < h.cpu_count ? &h.vcpus[vp.value()] : nullptr;
  if (target == nullptr || __atomic_load_n(&target->vp, __ATOMIC_ACQUIRE) == nullptr) {
    log::error("interrupt 0x%x for VP %u dropped: no such VP\n", vector, vp.value());
    return;
  }
  Vcpu& self = *current_vcpu();
  if (target == &self) {
    deliver_local(*target, vector, auto_eoi);
    return;
  }
  RemoteQueue& q = target->frame->remote;
  if (remote_delivery(__atomic_load_n(&q.activity, __ATOMIC_ACQUIRE)) == RemoteDelivery::kDrop) {
    if (__atomic_fetch_add(&target->dropped_for_sipi, 1, __ATOMIC_RELAXED) == 0) {
      log::info(
          "interrupt 0x%x for VP %u dropped: its CPU waits for SIPI (further drops not logged)\n",
          vector, vp.value());
    }
    return;
  }
  if (q.post(vector, auto_eoi)) send_kick(self, *target);
}

}  // namespace microhv::vmx::hw
