// The exit loop: what every VM exit goes through on the host side. entry.S
// saves the guest GPRs and calls microhv_vmexit, which hands the exit to the
// portable handlers (vmx/exits.cpp decides), moves RIP when told, and
// prepares the next entry: inbox drain, EPT invalidation, event injection.
#include "arch/cpu.hpp"
#include "arch/serial.hpp"
#include "arch/vmx/vmcs_names.hpp"
#include "arch/x86.hpp"
#include "synic/timers.hpp"
#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {

void dump_registers(const GuestRegs& r) {
  log::info("  rax=%016llx rcx=%016llx rdx=%016llx rbx=%016llx\n", (unsigned long long)r.rax,
            (unsigned long long)r.rcx, (unsigned long long)r.rdx, (unsigned long long)r.rbx);
  log::info("  rsp=%016llx rbp=%016llx rsi=%016llx rdi=%016llx\n", (unsigned long long)r.rsp,
            (unsigned long long)r.rbp, (unsigned long long)r.rsi, (unsigned long long)r.rdi);
  log::info("  r8 =%016llx r9 =%016llx r10=%016llx r11=%016llx\n", (unsigned long long)r.r8,
            (unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11);
  log::info("  r12=%016llx r13=%016llx r14=%016llx r15=%016llx\n", (unsigned long long)r.r12,
            (unsigned long long)r.r13, (unsigned long long)r.r14, (unsigned long long)r.r15);
}

namespace {

// The exit path's VMCS access: a VMREAD or VMWRITE that fails has been
// reported (with its VM-instruction error) by HwVmcs; this VP's state is
// then unknown, so its guest stops here instead of going on with a wrong
// value.
uint64_t must_read(Vcpu& v, Field f) {
  uint64_t value = 0;
  if (!v.vmcs.read(f, &value)) stop_guest(v, "VMREAD failed on the exit path", &v.frame->regs);
  return value;
}
void must_write(Vcpu& v, Field f, uint64_t value) {
  if (!v.vmcs.write(f, value)) stop_guest(v, "VMWRITE failed on the exit path", &v.frame->regs);
}

// The synthetic timers of this CPU's VP (synic/timers.hpp): fires those that
// are due -- their interrupts join this entry's injection -- and arms the
// VMX-preemption timer for the earliest deadline left, or turns it off.
// The timer keeps counting while the guest halts (HLT is C1, SDM 26.5.1),
// so a halted VP wakes for its timer. Without a preemption timer the
// partition has no synthetic timers (restrict_features), so nothing is due.
void run_synthetic_timers(Vcpu& v) {
  Host& h = *v.host;
  Vp* vp = v.vp;
  if (!h.preemption_timer || vp == nullptr) return;
  uint64_t deadline = stimers_next_deadline(*vp);
  if (deadline != kNoDeadline) {
    const uint64_t now = vp->partition().reference_time();
    if (deadline <= now) {
      stimers_run(*vp, now);
      deadline = stimers_next_deadline(*vp);
    }
  }
  if (v.pin_controls == 0)
    v.pin_controls = static_cast<uint32_t>(must_read(v, Field::kPinControls));
  const uint32_t want = deadline == kNoDeadline ? (v.pin_controls & ~pin::kPreemptionTimer)
                                                : (v.pin_controls | pin::kPreemptionTimer);
  if (want != v.pin_controls) {
    must_write(v, Field::kPinControls, want);
    v.pin_controls = want;
  }
  if (deadline == kNoDeadline) return;
  const uint64_t target = tsc_at_reference_time(deadline, vp->partition().time.scale);
  must_write(v, Field::kPreemptionTimerValue,
             preemption_timer_value(arch::rdtsc(), target, h.preemption_timer_rate));
}

// This CPU's VP belongs to a stopped partition (vmx/smp.hpp: a crash report,
// hypercall/crash.hpp, or an exit microhv could not handle): it never enters
// again. The other VPs are poked so they stop at their next entry too. No
// lock is held here; microhv stays up.
void park_if_stopped(Vcpu& v) {
  if (!vp_must_park(v.vp)) return;
  kick_other_vps(*v.host, v);
  // crash.reported was written before the partition went inactive (release).
  const Partition& p = v.vp->partition();
  log::info("cpu %u: VP %u parked: partition %llu stopped %s\n", v.processor, v.index,
            static_cast<unsigned long long>(p.id().value()),
            p.crash.reported ? "after its crash report" : "(microhv stays up)");
  halt_forever();
}

// Runs with host interrupts off right before every VM entry (and again from
// microhv_reenter when entry.S finds the inbox non-empty at the last
// moment): takes what other CPUs posted, invalidates EPT if another CPU
// changed it, picks the event to inject, and publishes the activity state
// the guest enters with (senders drop SINTs for a wait-for-SIPI VP).
// `guest_active`: the exit left the guest active (ExitNeeds::guest_active);
// then, with nothing pending (entry_needs_full_prep), the rest is skipped.
void prepare_entry(Vcpu& v, bool guest_active) {
  Host& h = *v.host;
  park_if_stopped(v);
  const uint64_t gen = __atomic_load_n(&h.ept_generation, __ATOMIC_ACQUIRE);
  if (gen != v.ept_seen) {
    v.ept_seen = gen;
    invalidate_ept(h);
  }
  run_synthetic_timers(v);  // may queue this VP's timer interrupts
  RemoteQueue& remote = v.frame->remote;
  // Anything another CPU posts after this load sets `work` again, which
  // entry.S tests right before VMRESUME (then microhv_reenter runs the
  // full preparation).
  if (!entry_needs_full_prep(__atomic_load_n(&remote.work, __ATOMIC_SEQ_CST), v.events, v.entry,
                             guest_active)) {
    if (__atomic_load_n(&remote.activity, __ATOMIC_RELAXED) != activity::kActive)
      __atomic_store_n(&remote.activity, activity::kActive, __ATOMIC_RELEASE);
    return;
  }
  if (remote.take_init()) {
    // An INIT IPI another VP (or this one) sent: reset now, like the INIT
    // exit would; nothing may be injected into wait-for-SIPI.
    if (!apply_init_state(v.vmcs, h.cpu, h.caps, v.bsp, v.frame->regs, v.events)) {
      stop_guest(v, "applying the INIT state failed (VMREAD/VMWRITE)", &v.frame->regs);
    }
    v.entry.injection_armed = false;
    must_write(v, Field::kEntryInterruptionInfo, 0);
    v.entry.entry_info_valid = false;
    ++v.inits_received;
    flush_after_init(v);
  }
  uint32_t act = static_cast<uint32_t>(must_read(v, Field::kGuestActivityState));
  const RemoteQueue::Drained in = remote.drain();
  serve_tlb_inbox(v);  // after the drain: a later post sets `work` again
  if (in.any) {
    if (remote_delivery(act) == RemoteDelivery::kQueue) {
      for_each_vector(in.auto_eoi, [&](uint8_t vec) { v.events.queue_interrupt(vec); });
      for_each_vector(in.apic, [&](uint8_t vec) { send_self_ipi(v, vec); });
    } else if (__atomic_fetch_add(&v.dropped_for_sipi, 1, __ATOMIC_RELAXED) == 0) {
      log::info("cpu %u: SINT vectors queued for VP %u dropped: it waits for SIPI\n", v.processor,
                v.index);
    }
    v.events.nmis += in.nmis;
    v.genuine_nmis += in.nmis;
  }
  if (!write_entry_events(v.vmcs, v.events, v.entry, act)) {
    stop_guest(v, "VMREAD/VMWRITE failed writing the event injection", &v.frame->regs);
  }
  __atomic_store_n(&remote.activity, act, __ATOMIC_RELEASE);
}

// NMIs are blocked after an NMI-caused VM exit until an IRET or the next VM
// entry (and Bochs 2.7 leaves them blocked across VM entries after NMI and
// SIPI exits). An IRET to the next instruction unblocks them now, so the
// next kick reaches this CPU in the host (host_nmi) or in the guest.
void unblock_host_nmis() {
  uint64_t ss = 0, cs = 0;
  asm volatile("mov %%ss, %0" : "=r"(ss));
  asm volatile("mov %%cs, %0" : "=r"(cs));
  asm volatile(
      "mov %%rsp, %%rax\n\t"
      "pushq %[ss]\n\t"
      "pushq %%rax\n\t"
      "pushfq\n\t"
      "pushq %[cs]\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "iretq\n"
      "1:"
      :
      : [ss] "r"(ss), [cs] "r"(cs)
      : "rax", "memory", "cc");
}

// The first VM exit on a CPU proves its VMLAUNCH worked: an AP becomes a VP
// of the partition only now (VP index = its slot, which is the next one
// because APs are brought up one at a time), so vp_count always equals the
// number of CPUs running as VPs.
void first_exit(Vcpu& v, const GuestRegs* regs) {
  Host& h = *v.host;
  v.launched = true;
  bool ok = v.vp != nullptr;
  uint32_t count = 0;
  if (!ok) {
    LockGuard guard(h.hv.lock);
    count = h.partition->vp_count();
    if (count == v.index && h.partition->set_vp_count(v.index + 1)) {
      Vp* vp = h.partition->vp(VpIndex(v.index));
      v.core.attach(*vp, h.testdev);
      __atomic_store_n(&v.vp, vp, __ATOMIC_RELEASE);
      ok = true;
    }
  }
  if (!ok) {
    log::error("cpu %u: cannot become VP %u (the partition has %u VPs)\n", v.processor, v.index,
               count);
    stop_guest(v, "no VP for this CPU", regs);
  }
  log::info("cpu %u: VMLAUNCH ok, VP %u (APIC ID %u)\n", v.processor, v.index, v.apic_id.value());
}

void log_exit_events(Vcpu& v, const ExitContext& ctx) {
  if (ctx.kicked && ++v.kicks == 1) {
    log::info("cpu %u: first kick taken (NMI exit); VP %u drains its inbox before entry\n",
              v.processor, v.index);
  }
  if (ctx.reason == exit_reason::kExceptionOrNmi && !ctx.kicked && ctx.stop_reason == nullptr) {
    if (++v.genuine_nmis == 1) {
      log::info("cpu %u: genuine NMI: re-injected into the guest\n", v.processor);
    }
  }
  if (ctx.reason == exit_reason::kInit) ++v.inits;  // logged at the SIPI: INIT must be handled fast
  if (ctx.reason == exit_reason::kSipi && ++v.sipis == 1) {
    log::info(
        "cpu %u: INIT/SIPI: VP %u restarted in real mode at 0x%llx (SIPI vector 0x%llx; %llu INIT "
        "exit(s) so far; later restarts are not logged)\n",
        v.processor, v.index, (unsigned long long)((ctx.qualification & 0xFF) << 12),
        (unsigned long long)(ctx.qualification & 0xFF), (unsigned long long)v.inits);
  }
  if (ctx.reason == exit_reason::kInit && v.last_reason == exit_reason::kSipi &&
      !v.stale_init_warned) {
    // An INIT exit right after the SIPI exit, before the AP ran: Bochs 2.7
    // keeps a delivered INIT pending (stlintel/Bochs#11, fixed later), so
    // an AP that took INIT while running never gets past its SIPI there.
    // APs that halt with interrupts off are parked in wait-for-SIPI, where
    // INIT is blocked, which avoids this for the usual INIT-SIPI-SIPI.
    v.stale_init_warned = true;
    log::error(
        "cpu %u: INIT again at the SIPI start (a pending INIT the CPU did not consume: Bochs 2.7 "
        "bug); VP %u waits for another SIPI\n",
        v.processor, v.index);
  }
}

}  // namespace

[[noreturn]] void halt_forever() {
  log::stop_holding();
  serial::flush();
  for (;;) {
    arch::cli();
    arch::hlt();
  }
}

[[noreturn]] void stop_guest(Vcpu& v, const char* why, const GuestRegs* regs) {
  log::error("guest stopped on cpu %u (VP %u): %s\n", v.processor, v.index, why);
  if (regs != nullptr) dump_registers(*regs);
  dump_vmcs();
  if (v.vp == nullptr) {
    // Not a VP of the guest (yet): only this CPU is lost to it.
    log::error("guest stopped: %s (microhv halts cpu %u, which is no VP; the others go on)\n", why,
               v.processor);
    halt_forever();
  }
  stop_partition(v.vp->partition());
  kick_other_vps(*v.host, v);
  log::error(
      "guest stopped: %s. Every VP of the guest parks; microhv stays up. The lines above say "
      "why; the machine needs a reset.\n",
      why);
  halt_forever();
}

}  // namespace microhv::vmx::hw

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::vmx::hw;

extern "C" GuestRegs* microhv_vmexit(GuestRegs* regs) {
  Vcpu& v = *current_vcpu();
  Host& h = *v.host;
  ++v.exits;
  v.entry.injection_armed = false;  // a VM exit invalidates the VM-entry event fields
  if (!v.launched) first_exit(v, regs);
  ExitStart start;
  if (!begin_exit(v.vmcs, *regs, v.events, &start))
    stop_guest(v, "VMREAD failed on the exit path", regs);
  const uint32_t reason = start.reason;
  if ((start.raw_reason & exit_reason::kEntryFailureBit) != 0) {
    log::error("VM entry failed: exit reason %u (%s), qualification 0x%llx\n", reason,
               exit_reason_name(reason),
               (unsigned long long)must_read(v, Field::kExitQualification));
    stop_guest(v, "VM entry failed (see bochs.log / the VMCS dump for the failing check)", regs);
  }

  ExitContext ctx{reason, start.qualification, *regs, v.vmcs, h.cpu, v.core, v.events, h.caps};
  ctx.ept = &h.ept_faults;
  ctx.denied_log = &h.denied_logged;
  ctx.remote = &v.frame->remote;
  ctx.bsp = v.bsp;
  ctx.testdev = h.info.testdev;
  // The xAPIC page EPT write-protects, when it is this VP's (all VPs share
  // one EPT; launch_this_cpu reports a VP whose APIC sits elsewhere).
  if (h.apic_page && h.apic_page.value() == v.cpu_state.apic.base) ctx.apic_page = h.apic_page;
  ctx.memory = &h.memory;
  ctx.cpu_state = &v.cpu_state;
  ctx.refused_log = &h.refused_logged;
  const ExitAction action = dispatch_exit(ctx);
  if (!start.needs.guest_active) {
    // NMI, INIT and SIPI exits (never an instruction-caused one): their
    // log lines, the TLB flush after INIT, NMIs unblocked.
    log_exit_events(v, ctx);
    if (reason == exit_reason::kInit && action != ExitAction::kStop) flush_after_init(v);
    if (reason == exit_reason::kExceptionOrNmi || reason == exit_reason::kSipi) unblock_host_nmis();
  }
  v.last_reason = reason;
  if (ctx.invalidate_ept) v.ept_seen = ~0ull;  // INVEPT in prepare_entry
  if (action == ExitAction::kStop) {
    if (!start.needs.rsp) regs->rsp = must_read(v, Field::kGuestRsp);  // for the dump
    log::error("unhandled VM exit: reason %u (%s), qualification 0x%llx, guest RIP 0x%llx\n",
               reason, exit_reason_name(reason), (unsigned long long)ctx.qualification,
               (unsigned long long)must_read(v, Field::kGuestRip));
    stop_guest(v, ctx.stop_reason != nullptr ? ctx.stop_reason : "unhandled exit", regs);
  }
  if (!finish_exit(v.vmcs, *regs, start, action))
    stop_guest(v, "VMREAD/VMWRITE failed on the exit path", regs);
  if (v.index == 0) poll_dma_faults(h);
  prepare_entry(v, start.needs.guest_active && action == ExitAction::kAdvance);
  return regs;
}

// entry.S found the inbox non-empty right before VMRESUME: drain it again.
// No exit happened, so there is nothing to handle and RSP/RIP stay as they are.
extern "C" GuestRegs* microhv_reenter(GuestRegs* regs) {
  prepare_entry(*current_vcpu(), false);
  return regs;
}

extern "C" void microhv_vmresume_failed(GuestRegs* regs, uint64_t rflags) {
  const VmxStatus s =
      status_from_flags((rflags & arch::rflags::kCf) != 0, (rflags & arch::rflags::kZf) != 0);
  report_vmx_failure("VMRESUME", s);
  stop_guest(*current_vcpu(), "VMRESUME failed", regs);
}
