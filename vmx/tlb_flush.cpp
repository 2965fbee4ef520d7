#include "vmx/tlb_flush.hpp"

#include "hypercall/tlfs/processor_calls.hpp"

namespace microhv::vmx {
namespace {

using Scope = TlbInbox::Scope;

Scope scope_of(const TlbFlushRequest& r) {
  switch (r.scope) {
    case TlbFlushRequest::Scope::kRanges:
      return r.range_count == 0 ? Scope::kNothing : Scope::kPages;
    case TlbFlushRequest::Scope::kAllNonGlobal:
      return Scope::kAllNonGlobal;
    case TlbFlushRequest::Scope::kAll:
      break;
  }
  return Scope::kAll;
}

// 48-bit canonical: bits 63:47 all equal (SDM Vol. 1 3.3.7.1). INVVPID
// fails on an address that is not canonical for the processor; every
// processor accepts these.
constexpr bool canonical48(uint64_t a) {
  const uint64_t top = a >> 47;
  return top == 0 || top == 0x1FFFF;
}

InvvpidOp context_op(Scope scope, const InvvpidSupport& s) {
  if (scope == Scope::kAllNonGlobal && s.single_context_retaining_globals) {
    return {invvpid_type::kSingleContextRetainingGlobals, 0};
  }
  if (s.single_context) return {invvpid_type::kSingleContext, 0};
  return {invvpid_type::kAllContexts, 0};
}

}  // namespace

InvvpidSupport invvpid_support(uint64_t cap, bool vpid_enabled) {
  InvvpidSupport s;
  const bool invvpid = (cap & ept_cap::kInvvpid) != 0;
  s.individual_address = invvpid && (cap & ept_cap::kInvvpidAddress) != 0;
  s.single_context = invvpid && (cap & ept_cap::kInvvpidSingle) != 0;
  s.all_contexts = invvpid && (cap & ept_cap::kInvvpidAll) != 0;
  s.single_context_retaining_globals =
      invvpid && (cap & ept_cap::kInvvpidSingleRetainingGlobals) != 0;
  // VPIDs without a context invalidation could not be flushed at all.
  s.vpid = vpid_enabled && (s.single_context || s.all_contexts);
  return s;
}

uint64_t TlbInbox::post(const TlbFlushRequest& what) {
  LockGuard guard(lock);
  const Scope want = scope_of(what);
  if (want == Scope::kPages && (scope == Scope::kNothing || scope == Scope::kPages) &&
      range_count + what.range_count <= kRanges) {
    for (uint32_t i = 0; i < what.range_count; ++i) ranges[range_count++] = what.ranges[i];
    scope = Scope::kPages;
  } else if (want == Scope::kAllNonGlobal && (scope == Scope::kNothing || scope == want)) {
    scope = Scope::kAllNonGlobal;
  } else if (want != Scope::kNothing) {
    // Pages beyond the inbox, or pages together with a flush that may keep
    // global translations (an address flush removes global ones too): the
    // whole context, which covers both.
    scope = Scope::kAll;
    range_count = 0;
  }
  const uint64_t ticket = posted + 1;
  __atomic_store_n(&posted, ticket, __ATOMIC_RELEASE);  // read without the lock by the owner
  return ticket;
}

bool TlbInbox::done(uint64_t ticket) const {
  return __atomic_load_n(&completed, __ATOMIC_ACQUIRE) >= ticket;
}

TlbInbox::Work TlbInbox::take() {
  Work w;
  LockGuard guard(lock);
  w.scope = scope;
  w.range_count = range_count;
  for (uint32_t i = 0; i < range_count && i < kRanges; ++i) w.ranges[i] = ranges[i];
  w.ticket = posted;
  scope = Scope::kNothing;
  range_count = 0;
  return w;
}

void TlbInbox::complete(uint64_t ticket) {
  // Tickets of one inbox are completed by its owner only, in order.
  if (ticket > __atomic_load_n(&completed, __ATOMIC_RELAXED)) {
    __atomic_store_n(&completed, ticket, __ATOMIC_RELEASE);
  }
}

InvalidationPlan plan_invalidation(const TlbInbox::Work& work, const InvvpidSupport& s) {
  InvalidationPlan plan{};
  if (!s.vpid || work.scope == Scope::kNothing) return plan;
  if (work.scope == Scope::kPages && s.individual_address) {
    bool fits = true;
    for (uint32_t r = 0; r < work.range_count && r < TlbInbox::kRanges && fits; ++r) {
      const uint64_t first = tlfs::gva_range::page(work.ranges[r]);
      const uint32_t pages = tlfs::gva_range::pages(work.ranges[r]);
      for (uint32_t p = 0; p < pages && fits; ++p) {
        const uint64_t a = first + static_cast<uint64_t>(p) * kPageSize;
        fits = plan.count < InvalidationPlan::kMaxAddressOps && canonical48(a) && a >= first;
        if (fits) plan.ops[plan.count++] = {invvpid_type::kIndividualAddress, a};
      }
    }
    if (fits) return plan;
  }
  plan.count = 1;
  plan.ops[0] = context_op(work.scope, s);
  return plan;
}

uint32_t wait_for_targets(FlushTarget* targets, uint32_t count, uint64_t deadline,
                          FlushWaitHost& host) {
  uint32_t left = count;
  for (;;) {
    // Keep the targets not done yet at the front.
    uint32_t kept = 0;
    for (uint32_t i = 0; i < left; ++i) {
      const FlushTarget& t = targets[i];
      const uint32_t activity = __atomic_load_n(&t.queue->activity, __ATOMIC_ACQUIRE);
      if (t.inbox->done(t.ticket) || remote_delivery(activity) == RemoteDelivery::kDrop) continue;
      targets[kept++] = t;
    }
    left = kept;
    if (left == 0) return 0;
    host.serve_own_inbox();
    if (static_cast<int64_t>(host.now() - deadline) > 0) return left;
    host.relax();
  }
}

}  // namespace microhv::vmx
