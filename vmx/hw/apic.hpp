// The local APIC from the host side. The guest owns its APIC (no APIC
// virtualization), so microhv uses it in whatever mode (xAPIC or x2APIC) the
// guest chose: to raise non-AutoEOI SINTs as self-IPIs, to kick another CPU
// with an NMI IPI, and to send the INITs the guest's ICR writes ask for.
// InterruptSink::raise (the core's "vector V to VP n") is here too.
#pragma once

#include <stdint.h>

#include "kernel/platform/interrupts.hpp"

namespace microhv::vmx::hw {

struct Host;
struct Vcpu;

// IA32_APIC_BASE of this CPU.
uint64_t apic_base();
volatile uint32_t* xapic_reg(uint64_t apic_base, uint32_t offset);

// One IPI with physical destination `dest`: x2APIC writes the 64-bit ICR;
// xAPIC waits for the previous one, sets ICR high, writes ICR low, waits
// again and puts the guest's ICR high back (the guest may be in the middle
// of its own two-register ICR write).
void send_ipi(uint64_t apic_base, uint32_t low, uint32_t dest);

// A fixed, edge-triggered self-IPI with `vector` on this CPU's APIC; VMCS
// injection when the guest disabled its APIC (logged once).
void send_self_ipi(Vcpu& v, uint8_t vector);

// Kicks the CPU of `target` out of the guest: an NMI IPI (NMI exiting is
// on). False when this CPU cannot send IPIs (its guest disabled the APIC);
// the target then picks its inbox up at its next exit.
bool send_kick(Vcpu& self, Vcpu& target);
// Pokes every other CPU that is a VP (RemoteQueue::poke) and kicks those
// not already kicked: each exits and runs prepare_entry before it enters
// the guest again (an EPT change to invalidate, a stopped partition).
void kick_other_vps(Host& h, Vcpu& self);

// The core's InterruptSink (called with Hypervisor::lock held, on whichever
// CPU the core runs):
//  - target = this CPU: AutoEOI SINTs are queued for VMCS injection at this
//    entry; non-AutoEOI SINTs become a self-IPI through the guest's own local
//    APIC now (see vmx/README.md);
//  - target = another CPU: the vector goes into that VP's inbox and the CPU
//    is kicked, so it exits and does the above itself, right away
//    (vmx/smp.hpp). A target waiting for SIPI gets nothing.
class HwInterrupts final : public InterruptSink {
 public:
  explicit HwInterrupts(Host& host) : host_(host) {}
  void raise(VpIndex vp, uint8_t vector, bool auto_eoi) override;

 private:
  Host& host_;
};

}  // namespace microhv::vmx::hw
