// The IPI and TLB-flush hypercalls; their checks are listed in the header.
#include "hypercall/processor_calls.hpp"

#include "hypercall/vp_set.hpp"
#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

using tlfs::Status;
namespace flags = tlfs::flush_flags;

CallResult done(Status s, uint32_t reps = 0) {
  return {s, reps};
}

uint32_t vp_count(Vp& caller) {
  LockGuard guard(caller.partition().hypervisor().lock);
  return caller.partition().vp_count();
}

// ---- IPIs
Status check_ipi(uint32_t vector, uint8_t target_vtl) {
  // HV_INPUT_VTL: VTL 0 is the only one, whether named (bit 4 with target
  // 0) or implied (the caller's); reserved bits 7:5 are not zero otherwise.
  if (target_vtl != 0 && target_vtl != tlfs::input_vtl::kUseTarget) {
    return Status::kInvalidParameter;
  }
  if (vector < tlfs::kIpiVectorMin || vector > tlfs::kIpiVectorMax) {
    return Status::kInvalidParameter;
  }
  return Status::kSuccess;
}

// A fixed interrupt on every target: the SINT path without AutoEOI (the
// guest EOIs its local APIC). A target waiting for SIPI takes nothing, as
// on hardware.
Status send_ipi(Vp& caller, uint8_t vector, VpMask requested) {
  Partition& partition = caller.partition();
  LockGuard guard(partition.hypervisor().lock);
  const VpMask targets = requested & VpMask::first(partition.vp_count());
  targets.for_each([&](VpIndex vp) { partition.interrupts().raise(vp, vector, false); });
  return Status::kSuccess;
}

// ---- flushes
struct FlushHeader {
  uint64_t address_space;
  uint64_t flags;
};

Status check_flush(const FlushHeader& h, bool list) {
  if ((h.flags & ~flags::kDefined) != 0) return Status::kInvalidParameter;
  if (list && (h.flags & flags::kNonGlobalMappingsOnly) != 0) return Status::kInvalidParameter;
  if ((h.flags & flags::kAllVirtualAddressSpaces) == 0 &&
      (h.address_space & tlfs::kAddressSpaceReservedMask) != 0) {
    return Status::kInvalidParameter;
  }
  return Status::kSuccess;
}

// VPID tags translations per VP, not per address space: a flush of one
// address space drops them all (more than asked, never less).
Status flush(Vp& caller, VpMask targets, TlbFlushRequest what, uint64_t flush_flags) {
  if ((flush_flags & flags::kAllProcessors) != 0) targets = VpMask::first(vp_count(caller));
  if (targets.empty()) return Status::kSuccess;
  const bool ok = caller.partition().tlb().flush(caller.index(), targets, what);
  return ok ? Status::kSuccess : Status::kTimeout;
}

TlbFlushRequest whole_space(uint64_t flush_flags) {
  TlbFlushRequest r;
  r.scope = (flush_flags & flags::kNonGlobalMappingsOnly) != 0
                ? TlbFlushRequest::Scope::kAllNonGlobal
                : TlbFlushRequest::Scope::kAll;
  return r;
}

// The List calls: this exit's window of GVA ranges, flushed in one round.
CallResult flush_ranges(Vp& caller, const CallInput& in, RepWindow reps, VpMask targets,
                        uint64_t flush_flags) {
  uint64_t ranges[kRepBatch];
  const uint32_t n = reps.end - reps.start;
  for (uint32_t i = 0; i < n && i < kRepBatch; ++i) {
    if (!in.element(reps.start + i, &ranges[i]))
      return done(Status::kInvalidAlignment, reps.start + i);
  }
  TlbFlushRequest what;
  what.scope = TlbFlushRequest::Scope::kRanges;
  what.range_count = n < kRepBatch ? n : kRepBatch;
  what.ranges = ranges;
  const Status s = flush(caller, targets, what, flush_flags);
  return done(s, s == Status::kSuccess ? reps.end : reps.start);
}

// The non-Ex forms name up to 64 VPs in one mask.
Status mask_targets(Vp& caller, const tlfs::FlushSpaceInput& h, bool list, VpMask* targets) {
  const Status s = check_flush({h.address_space, h.flags}, list);
  if (s != Status::kSuccess) return s;
  if ((h.flags & flags::kAllProcessors) == 0 && h.processor_mask == 0) {
    return Status::kInvalidParameter;  // an empty mask without "all processors"
  }
  *targets = VpMask(h.processor_mask) & VpMask::first(vp_count(caller));
  return Status::kSuccess;
}

Status set_targets(Vp& caller, const tlfs::FlushSpaceExHeader& h, const CallInput& in, bool list,
                   VpMask* targets) {
  const Status s = parse_vp_set(h.processor_set, in, vp_count(caller), targets);
  return s != Status::kSuccess ? s : check_flush({h.address_space, h.flags}, list);
}

}  // namespace

CallResult hv_send_ipi(Vp& caller, const CallInput& in, CallOutput&, RepWindow) {
  tlfs::SendIpiInput h;
  if (!in.read(0, &h, sizeof(h))) return done(Status::kInvalidAlignment);
  const Status s = check_ipi(h.vector, h.target_vtl);
  if (s != Status::kSuccess) return done(s);
  return done(send_ipi(caller, static_cast<uint8_t>(h.vector), VpMask(h.processor_mask)));
}

CallResult hv_send_ipi_ex(Vp& caller, const CallInput& in, CallOutput&, RepWindow) {
  tlfs::SendIpiExHeader h;
  if (!in.read(0, &h, sizeof(h))) return done(Status::kInvalidAlignment);
  VpMask targets;
  Status s = parse_vp_set(h.processor_set, in, vp_count(caller), &targets);
  if (s == Status::kSuccess) s = check_ipi(h.vector, h.target_vtl);
  if (s != Status::kSuccess) return done(s);
  return done(send_ipi(caller, static_cast<uint8_t>(h.vector), targets));
}

CallResult hv_flush_space(Vp& caller, const CallInput& in, CallOutput&, RepWindow) {
  tlfs::FlushSpaceInput h;
  if (!in.read(0, &h, sizeof(h))) return done(Status::kInvalidAlignment);
  VpMask targets;
  const Status s = mask_targets(caller, h, false, &targets);
  if (s != Status::kSuccess) return done(s);
  return done(flush(caller, targets, whole_space(h.flags), h.flags));
}

CallResult hv_flush_list(Vp& caller, const CallInput& in, CallOutput&, RepWindow reps) {
  tlfs::FlushSpaceInput h;
  if (!in.read(0, &h, sizeof(h))) return done(Status::kInvalidAlignment, reps.start);
  VpMask targets;
  const Status s = mask_targets(caller, h, true, &targets);
  if (s != Status::kSuccess) return done(s, reps.start);
  return flush_ranges(caller, in, reps, targets, h.flags);
}

CallResult hv_flush_space_ex(Vp& caller, const CallInput& in, CallOutput&, RepWindow) {
  tlfs::FlushSpaceExHeader h;
  if (!in.read(0, &h, sizeof(h))) return done(Status::kInvalidAlignment);
  VpMask targets;
  const Status s = set_targets(caller, h, in, false, &targets);
  if (s != Status::kSuccess) return done(s);
  return done(flush(caller, targets, whole_space(h.flags), h.flags));
}

CallResult hv_flush_list_ex(Vp& caller, const CallInput& in, CallOutput&, RepWindow reps) {
  tlfs::FlushSpaceExHeader h;
  if (!in.read(0, &h, sizeof(h))) return done(Status::kInvalidAlignment, reps.start);
  VpMask targets;
  const Status s = set_targets(caller, h, in, true, &targets);
  if (s != Status::kSuccess) return done(s, reps.start);
  return flush_ranges(caller, in, reps, targets, h.flags);
}

}  // namespace microhv
