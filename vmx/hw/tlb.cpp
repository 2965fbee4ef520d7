#include "vmx/hw/tlb.hpp"

#include "arch/cpu.hpp"
#include "vmx/hw/host.hpp"
#include "vmx/tlb_flush.hpp"
#include "vmx/vmcs_setup.hpp"

namespace microhv::vmx::hw {
namespace {

// How long a caller waits for a target's acknowledgment. A target answers
// from its next VM exit (the kick) or from any host-side wait; the slowest
// host paths in between are a serial log line (about 10 ms at 115200 baud)
// and an emulated INIT waiting for its target (bounded at 100 ms, and it
// serves its inbox meanwhile). One second is far above both; a target that
// misses it is stuck (e.g. its guest was stopped), and the guest gets
// HV_STATUS_TIMEOUT (Linux then flushes with IPIs instead).
constexpr uint64_t kAckTimeoutUs = 1000000;

void execute(const InvalidationPlan& plan, uint16_t vpid) {
  for (uint32_t i = 0; i < plan.count && i < InvalidationPlan::kMaxAddressOps; ++i) {
    const InvvpidOp& op = plan.ops[i];
    check(invalidate(Invalidation::kVpid, op.type, {vpid, op.address}), "INVVPID");
  }
}

TlbInbox::Work work_of(const TlbFlushRequest& what) {
  TlbInbox scratch{};
  scratch.post(what);
  return scratch.take();
}

class Waiter final : public FlushWaitHost {
 public:
  explicit Waiter(Vcpu& self) : self_(self) {}
  uint64_t now() override { return arch::rdtsc(); }
  void serve_own_inbox() override { serve_tlb_inbox(self_); }
  void relax() override { arch::pause(); }

 private:
  Vcpu& self_;
};

}  // namespace

void serve_tlb_inbox(Vcpu& v) {
  TlbInbox& inbox = v.frame->tlb;
  if (__atomic_load_n(&inbox.posted, __ATOMIC_ACQUIRE) ==
      __atomic_load_n(&inbox.completed, __ATOMIC_ACQUIRE)) {
    return;  // the common case: nothing asked, no lock taken
  }
  const TlbInbox::Work work = inbox.take();
  execute(plan_invalidation(work, v.host->invvpid), vpid_of(v.index));
  inbox.complete(work.ticket);
}

void flush_after_init(Vcpu& v) {
  TlbInbox& inbox = v.frame->tlb;
  const TlbInbox::Work asked = inbox.take();
  TlbInbox::Work all{};
  all.scope = TlbInbox::kAll;
  execute(plan_invalidation(all, v.host->invvpid), vpid_of(v.index));
  inbox.complete(asked.ticket);
}

bool HwTlb::flush(VpIndex self_index, VpMask targets, const TlbFlushRequest& what) {
  Host& h = host_;
  Vcpu& self = *current_vcpu();
  FlushTarget pending[kMaxCpus];
  uint32_t n = 0;
  bool local = false;
  targets.for_each([&](VpIndex vp) {
    if (vp.value() >= h.cpu_count) return;
    Vcpu& t = h.vcpus[vp.value()];
    if (__atomic_load_n(&t.vp, __ATOMIC_ACQUIRE) == nullptr) return;  // not a VP (yet)
    if (&t == &self) {
      local = true;
      return;
    }
    pending[n++] = {vp, &t.frame->tlb, &t.frame->remote, t.frame->tlb.post(what)};
    if (t.frame->remote.poke()) send_kick(self, t);
  });
  // This VP's own translations go now, in its VMCALL exit: VM entry keeps
  // them (VPID), so the guest sees them gone when the call returns.
  if (local) execute(plan_invalidation(work_of(what), h.invvpid), vpid_of(self.index));
  if (n == 0) return true;
  const uint64_t hz = h.info.tsc_hz != 0 ? h.info.tsc_hz : 1000000000ull;
  const uint64_t deadline = arch::rdtsc() + hz / 1000000 * kAckTimeoutUs;
  Waiter waiter(self);
  const uint64_t t0 = arch::rdtsc();
  const uint32_t stuck = wait_for_targets(pending, n, deadline, waiter);
  if (stuck == 0) {
    if (first_logged_.allow()) {
      log::info(
          "TLB flush hypercall: the first remote one, by VP %u for VPs 0x%llx: %u other VP(s) "
          "acknowledged after %llu TSC ticks (later ones are not logged)\n",
          self_index.value(), (unsigned long long)targets.bits(), n,
          (unsigned long long)(arch::rdtsc() - t0));
    }
    return true;
  }
  if (timeouts_logged_.allow()) {
    const RemoteQueue& q = *pending[0].queue;
    log::error(
        "TLB flush by VP %u: %u target(s) did not acknowledge within %llu ms (VP %u: activity %u, "
        "work %u, kick %u); HV_STATUS_TIMEOUT returned (later ones are not logged)\n",
        self_index.value(), stuck, (unsigned long long)(kAckTimeoutUs / 1000),
        pending[0].vp.value(), __atomic_load_n(&q.activity, __ATOMIC_ACQUIRE),
        __atomic_load_n(&q.work, __ATOMIC_ACQUIRE),
        __atomic_load_n(&q.kick_sent, __ATOMIC_ACQUIRE));
  }
  return false;
}

}  // namespace microhv::vmx::hw
