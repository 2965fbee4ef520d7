// Every CPU a VP: the portable part of running one VP per logical processor
// (unit-tested in tests/unit/vmx_smp.cpp). The hardware side is in vmx/hw/
// (kicks, INIT emulation, the exit loop); VP numbering and the AP bring-up
// handshake are in boot/mp/; vmx/README.md explains the design.
//
//  - RemoteQueue: the per-VP inbox other CPUs post SINT vectors into, and
//    the kick protocol (NMI IPI) that makes the target exit and inject now.
//
// Lock order (the whole hypervisor, outermost first; see vmx/README.md):
//   Hypervisor::lock -> the EPT lock (vmx/hw, overlays: the core places the
//   hypercall page under its lock) -> the log lock (the serial sink, always
//   innermost). Nothing takes them the other way round. RemoteQueue is
//   lock-free (atomic bitmaps), so InterruptSink::raise may post into it
//   with Hypervisor::lock held. No lock is ever held across VM entry.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/vmx/vmcs.hpp"
#include "kernel/partition.hpp"

namespace microhv::vmx {

inline constexpr uint32_t kMaxCpus = kMaxVps;  // every CPU microhv virtualizes is a VP

// ---------------------------------------------------------------- cross-VP delivery

enum class NmiKind : uint8_t { kKick, kGenuine };

// What to do with an interrupt for a VP in guest activity state `activity`
// (published by its CPU): a wait-for-SIPI (or shut-down) processor takes
// nothing but SIPI, so SynIC interrupts for it are dropped, not queued.
enum class RemoteDelivery : uint8_t { kQueue, kDrop };
constexpr RemoteDelivery remote_delivery(uint32_t activity) {
  return activity == activity::kWaitForSipi || activity == activity::kShutdown
             ? RemoteDelivery::kDrop
             : RemoteDelivery::kQueue;
}

// The inbox of one VP. Senders are other CPUs (in the host, possibly with
// Hypervisor::lock held); the owner drains it with host interrupts off just
// before every VM entry. Protocol (all sequentially consistent atomics):
//   sender: set the vector bit, set `work`, then exchange `kick_sent` 0->1;
//           only the sender that saw 0 sends the NMI.
//   owner:  at an NMI exit (or an NMI taken in the host) exchange
//           `kick_sent` 1->0: if it was 1 the NMI was a kick, else a genuine
//           NMI (re-injected into the guest). Before entry: exchange `work`
//           to 0, then take the bitmaps; entry.S tests `work` once more right
//           before VMRESUME and runs the drain again if it is set.
// A kick is never lost: a sender that finds kick_sent = 1 knows an NMI is in
// flight whose consumption precedes the owner's next look at `work`.
// Zero-initialised memory is a valid empty queue.
struct RemoteQueue {
  uint32_t work;          // offset 0, read by entry.S before VMRESUME
  uint32_t kick_sent;     // an NMI kick is on its way and not yet taken
  uint32_t activity;      // guest activity state the owner last entered with
  uint32_t host_nmis;     // genuine NMIs the host's NMI handler took
  uint32_t init_request;  // another CPU sent this VP an INIT IPI (emulated, see decide_icr)
  uint32_t reserved;
  uint64_t auto_eoi[4];  // vectors to inject through the VMCS (AutoEOI SINTs)
  uint64_t apic[4];      // vectors to send as a self-IPI on the owner (non-AutoEOI)

  // Sender. True: send the kick NMI to the owner's CPU now.
  bool post(uint8_t vector, bool auto_eoi);
  // Sender, no vector (e.g. "invalidate EPT before you enter again").
  bool poke();
  // Sender: an INIT for this VP (it resets itself before its next entry).
  bool post_init();

  // Owner.
  NmiKind take_nmi();
  void note_host_nmi();  // a genuine NMI arrived while the host ran
  bool take_init();
  struct Drained {
    uint64_t auto_eoi[4];
    uint64_t apic[4];
    uint32_t nmis;
    bool any;
  };
  Drained drain();
};
static_assert(offsetof(RemoteQueue, work) == 0);

// An NMI the host's own NMI handler took (NMI-exiting covers only NMIs that
// arrive in the guest). If it interrupted the last instructions before
// VMRESUME -- [check, vmresume], after entry.S's final test of `work` --
// execution resumes at `check` so the test runs again: the kick (or the
// genuine NMI, recorded with note_host_nmi) is handled before the guest runs.
struct HostNmiOutcome {
  NmiKind kind;
  uint64_t rip;  // where the interrupted host code resumes
};
HostNmiOutcome host_nmi(RemoteQueue& q, uint64_t rip, uint64_t check, uint64_t vmresume);

constexpr uint64_t entry_window_fixup(uint64_t rip, uint64_t check, uint64_t vmresume) {
  return rip > check && rip <= vmresume ? check : rip;
}

// ---------------------------------------------------------------- INIT IPIs
//
// An INIT IPI the guest sends to a CPU that is a VP is not sent: microhv
// resets the target VP to the INIT state itself (its CPU, kicked, does it
// before its next entry and then waits for SIPI in the guest's
// wait-for-SIPI activity state), and the sender's ICR write completes once
// the target is there. The SIPIs that follow are sent as written: a SIPI
// to a VP waiting for it is a SIPI VM exit (vmx/init_sipi.hpp). Physical
// INITs are still handled (INIT VM exit), but avoided because (a) a CPU in
// VMX root operation drops a SIPI, so an INIT exit still being handled when
// the SIPI arrives loses it, and (b) Bochs 2.7 keeps a delivered INIT
// pending after its VM exit (stlintel/Bochs#11), so the AP never gets past
// its SIPI there. ICR writes are seen through the MSR bitmap (x2APIC ICR,
// MSR 0x830) and the read-only EPT mapping of the xAPIC page. ICR fields:
// arch/apic.hpp.

//
// A broadcast SIPI (shorthand "all" / "all but self", or the broadcast id) is
// sent as one SIPI per target CPU instead. On hardware that is the same
// thing (every CPU gets the SIPI; one not waiting for it discards it). Bochs
// 2.7 delivers a broadcast by calling each target's SIPI handling in turn,
// and a target in the guest's wait-for-SIPI state takes its SIPI VM exit by
// unwinding (longjmp) out of that loop, so the later targets never get the
// SIPI: with 4 CPUs, OVMF's INIT-SIPI-SIPI broadcast at ExitBootServices
// starts 2 of the 3 waiting APs and the firmware waits for the third for
// ever. Unicast SIPIs reach every target there too.
enum class IcrAction : uint8_t {
  kPassThrough,  // write the ICR as the guest did
  kDrop,         // an INIT level de-assert: no effect on any CPU since the Pentium 4
  kEmulateInit,  // INIT the VPs in `vps` (bit n = VP n) without sending it
  kUnicastSipi,  // a broadcast SIPI: send it to each VP in `vps` (and the natives) one by one
};
struct IcrDecision {
  IcrAction action = IcrAction::kPassThrough;
  uint64_t vps = 0;
  // kEmulateInit / kUnicastSipi: also send it to every CPU that is not a VP
  bool natives_too = false;
};

// `low`: ICR bits 31:0; `dest`: the destination field (xAPIC: ICR bits
// 63:56, x2APIC: bits 63:32). `vp_apic[0..vp_count)`: the APIC id of each
// VP; `self`: the sender's VP; `natives`: some CPU runs without microhv.
// Logical destination mode is passed through (not used for INIT by OVMF or
// Linux).
IcrDecision decide_icr(uint32_t low, uint32_t dest, bool x2apic, const ApicId* vp_apic,
                       uint32_t vp_count, uint32_t self, bool natives);

// ---------------------------------------------------------------- stopping the guest

// One guest partition runs on every CPU, so "stop the guest" stops the
// partition, not one CPU: a VP that cannot go on (an EPT violation or
// misconfiguration microhv cannot explain, a failed VMREAD/VMWRITE, a
// failed VM entry, a triple fault) marks its partition stopped (inactive:
// its ports refuse messages, so nothing is queued for it any more), the
// other VPs are kicked, and each of them parks in the host at its next
// entry with one log line. Halting only the CPU that hit the problem would
// leave the guest's other CPUs waiting for it for ever (IPIs, TLB
// shoot-downs). microhv itself stays up: parked CPUs hold no lock and
// still take NMIs. Lock-free (Partition::active is atomic): every VM entry
// asks vp_must_park.
void stop_partition(Partition& partition);
// Whether the CPU running `vp` (nullptr: not a VP yet) must park instead
// of entering the guest.
bool vp_must_park(const Vp* vp);

// Visits the set bits of a 256-bit vector bitmap, lowest first.
template <typename F>
void for_each_vector(const uint64_t (&bits)[4], F f) {
  for (uint32_t w = 0; w < 4; ++w) {
    for (uint64_t b = bits[w]; b != 0; b &= b - 1)
      f(static_cast<uint8_t>(w * 64 + __builtin_ctzll(b)));
  }
}

}  // namespace microhv::vmx
