// Remote TLB flushes with VPID, the portable part (unit-tested in
// tests/unit/vmx_tlb_flush.cpp); vmx/hw/tlb.cpp runs it on the machine and
// implements the core's GuestTlb with it.
//
// Why a protocol: with VPID the guest's linear translations are tagged with
// its VP's VPID and outlive VM exits and entries, and INVVPID removes them
// only on the logical processor that executes it (SDM Vol. 3C 29.4,
// "INVVPID"). So each target VP's own CPU must invalidate:
//   caller: posts the request into the target's TlbInbox (getting a ticket),
//           pokes the target's RemoteQueue and kicks its CPU (NMI), then
//           waits, bounded, until every target has completed its ticket or
//           waits for SIPI. While it waits it serves its own inbox, so two
//           VPs flushing each other both finish.
//   target: takes its inbox before every VM entry (and while it waits in
//           the host for anything), executes the INVVPIDs plan_invalidation()
//           chooses, then completes the ticket it took.
// A VP waiting for SIPI counts as flushed at once: it runs no guest code
// before its next entry, and that entry serves the inbox first (the drain
// runs after every exit; entry.S tests `work` once more right before
// VMRESUME, and poke() set it). Tickets only grow, so a late completion
// never satisfies a newer request.
//
// Lock order: TlbInbox::lock is a leaf. It is taken without any other lock
// held (flush hypercalls run without Hypervisor::lock, prepare_entry holds
// none), and nothing is taken inside it.
#pragma once

#include <stdint.h>

#include "arch/vmx/capabilities.hpp"
#include "kernel/base/spinlock.hpp"
#include "kernel/platform/tlb.hpp"
#include "vmx/smp.hpp"

namespace microhv::vmx {

// The INVVPID types this processor offers (IA32_VMX_EPT_VPID_CAP bits
// 40-43, SDM Vol. 3D A.10), and whether VPIDs are in use at all.
struct InvvpidSupport {
  bool vpid = false;  // false: every VM entry and exit flushes (SDM 29.4.3.1)
  bool individual_address = false;
  bool single_context = false;
  bool all_contexts = false;
  bool single_context_retaining_globals = false;
};
InvvpidSupport invvpid_support(uint64_t ept_vpid_cap, bool vpid_enabled);

// The requests pending for one VP, merged. Lives in the VP's exit frame;
// zero-initialised memory is an empty inbox.
struct TlbInbox {
  static constexpr uint32_t kRanges = 16;  // more pending GVA ranges: a full flush
  enum Scope : uint8_t { kNothing = 0, kPages, kAllNonGlobal, kAll };  // widening order

  struct Work {
    Scope scope;
    uint32_t range_count;
    uint64_t ranges[kRanges];  // TLFS HV_GVA ranges
    uint64_t ticket;           // complete() this once done
  };

  // Requester: merges `what` in and returns its ticket.
  uint64_t post(const TlbFlushRequest& what);
  // Requester: the flush with this ticket has been done.
  bool done(uint64_t ticket) const;
  // Owner: everything posted so far, emptying the inbox (scope kNothing
  // when nothing was), then complete(work.ticket) once it is done.
  Work take();
  void complete(uint64_t ticket);

  SpinLock lock;
  Scope scope;
  uint32_t range_count;
  uint64_t ranges[kRanges];
  uint64_t posted;     // tickets handed out (under lock)
  uint64_t completed;  // highest ticket done (atomic; read without the lock)
};

// One INVVPID: its type (arch/vmx/capabilities.hpp invvpid_type) and the
// linear address for the individual-address type.
struct InvvpidOp {
  uint64_t type;
  uint64_t address;
};

// The INVVPIDs a VP executes for `work` with its own VPID: one per page of
// a few GVA ranges (individual-address, at most kMaxAddressOps; a page whose
// address is not canonical in 48 bits turns the whole work into a context
// flush, more than asked, never less), else one context invalidation --
// single-context retaining globals for kAllNonGlobal when offered,
// single-context, or all-contexts (each CPU runs one VP, so that is still
// only this VP's). Nothing without VPIDs: the VM entry flushes then.
struct InvalidationPlan {
  static constexpr uint32_t kMaxAddressOps = 32;
  uint32_t count;
  InvvpidOp ops[kMaxAddressOps];
};
InvalidationPlan plan_invalidation(const TlbInbox::Work& work, const InvvpidSupport& support);

// The caller's side of one flush round.
struct FlushTarget {
  VpIndex vp;
  TlbInbox* inbox;
  const RemoteQueue* queue;  // its published activity state
  uint64_t ticket;
};

// What the wait needs from the machine.
class FlushWaitHost {
 public:
  virtual uint64_t now() = 0;          // monotonic ticks (the TSC)
  virtual void serve_own_inbox() = 0;  // take, invalidate, complete this VP's requests
  virtual void relax() = 0;            // PAUSE

 protected:
  ~FlushWaitHost() = default;
};

// Waits until every target is done (ticket completed, or the VP waits for
// SIPI) or `deadline` passes, serving the caller's own inbox all along.
// Returns how many targets were not done; their entries are left at the
// front of `targets` (for the error message).
uint32_t wait_for_targets(FlushTarget* targets, uint32_t count, uint64_t deadline,
                          FlushWaitHost& host);

}  // namespace microhv::vmx
