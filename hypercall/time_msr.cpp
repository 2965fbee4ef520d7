#include "hypercall/time_msr.hpp"

#include <stddef.h>

#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

namespace msr = tlfs::msr;
namespace ref_msr = tlfs::reference_tsc_msr;

// The guest TSC offset every VP shares; false while they differ.
bool uniform_guest_offset(const Partition& p, int64_t* offset) {
  *offset = 0;
  for (uint32_t i = 0; i < p.vp_count(); ++i) {
    const Vp* vp = p.vp(VpIndex(i));
    if (i == 0) {
      *offset = vp->guest_tsc_offset;
    } else if (vp->guest_tsc_offset != *offset) {
      return false;
    }
  }
  return true;
}

uint32_t next_sequence(uint32_t s) {
  ++s;
  return (s == tlfs::kTscSequenceInvalid || s == 0xFFFFFFFFu) ? 1 : s;
}

// Writes the page in the order the TLFS sequence protocol needs: a reader
// that saw the old sequence before and after its reads got the old values.
void publish(Partition& p) {
  GuestPhysicalOverlays& overlays = p.overlays();
  const tlfs::ReferenceTscPage next = reference_tsc_page_contents(p);
  const uint32_t invalid = tlfs::kTscSequenceInvalid;
  overlays.write(OverlayId::kReferenceTscPage, offsetof(tlfs::ReferenceTscPage, sequence), &invalid,
                 sizeof(invalid));
  overlays.write(OverlayId::kReferenceTscPage, offsetof(tlfs::ReferenceTscPage, scale), &next.scale,
                 sizeof(next.scale) + sizeof(next.offset));
  overlays.write(OverlayId::kReferenceTscPage, offsetof(tlfs::ReferenceTscPage, sequence),
                 &next.sequence, sizeof(next.sequence));
}

void republish(Partition& p) {
  p.time.tsc_sequence = next_sequence(p.time.tsc_sequence);
  publish(p);
}

// The overlay follows the MSR like the hypercall page does: placed while
// enabled, moved with the page number, removed when disabled; the RAM
// underneath is never written.
void follow_reference_tsc_msr(Partition& p, uint64_t old_msr) {
  const uint64_t now = p.time.reference_tsc_msr;
  const bool was_on = (old_msr & ref_msr::kEnable) != 0;
  const bool is_on = (now & ref_msr::kEnable) != 0;
  if (is_on) {
    republish(p);
    p.overlays().place(OverlayId::kReferenceTscPage, Gpa(now & ref_msr::kPageMask));
  } else if (was_on) {
    p.overlays().remove(OverlayId::kReferenceTscPage);
  }
}

}  // namespace

bool is_time_msr(uint32_t m) {
  return m == msr::kTimeRefCount || m == msr::kReferenceTsc || m == msr::kTscFrequency ||
         m == msr::kApicFrequency || m == msr::kTscInvariantControl;
}

tlfs::ReferenceTscPage reference_tsc_page_contents(const Partition& p) {
  tlfs::ReferenceTscPage page{};
  int64_t offset = 0;
  if (p.time.tsc_page_forced_invalid || !uniform_guest_offset(p, &offset)) {
    page.sequence = tlfs::kTscSequenceInvalid;
    return page;
  }
  const ReferenceScale s = scale_for_guest_tsc(p.time.scale, offset);
  page.sequence = p.time.tsc_sequence;
  page.scale = s.scale;
  page.offset = s.offset;
  return page;
}

MsrResult time_read_msr(Vp& vp, uint32_t m, uint64_t* value) {
  Partition& p = vp.partition();
  switch (m) {
    case msr::kTimeRefCount:
      *value = p.reference_time();
      return MsrResult::kOk;
    case msr::kReferenceTsc:
      *value = p.time.reference_tsc_msr;
      return MsrResult::kOk;
    case msr::kTscFrequency:
      *value = p.time.base.tsc_hz;
      return MsrResult::kOk;
    case msr::kApicFrequency:
      *value = p.time.base.apic_hz;
      return MsrResult::kOk;
    case msr::kTscInvariantControl:
      *value = p.time.tsc_invariant_control;
      return MsrResult::kOk;
    default:
      return MsrResult::kGp;
  }
}

MsrResult time_write_msr(Vp& vp, uint32_t m, uint64_t value) {
  Partition& p = vp.partition();
  switch (m) {
    case msr::kReferenceTsc: {
      // Bits 11:1 are reserved; like the TLFS asks of guests (preserve them),
      // microhv keeps what was written and reads it back.
      const uint64_t old = p.time.reference_tsc_msr;
      p.time.reference_tsc_msr = value;
      follow_reference_tsc_msr(p, old);
      return MsrResult::kOk;
    }
    case msr::kTscInvariantControl:
      if ((value & ~tlfs::kTscInvariantExpose) != 0) return MsrResult::kGp;
      p.time.tsc_invariant_control = value;
      return MsrResult::kOk;
    default:
      return MsrResult::kGp;  // TIME_REF_COUNT and the frequencies are read-only
  }
}

void set_guest_tsc_offset(Vp& vp, int64_t offset) {
  if (vp.guest_tsc_offset == offset) return;
  vp.guest_tsc_offset = offset;
  Partition& p = vp.partition();
  if ((p.time.reference_tsc_msr & ref_msr::kEnable) != 0) republish(p);
}

void force_reference_tsc_invalid(Partition& p, bool invalid) {
  if (p.time.tsc_page_forced_invalid == invalid) return;
  p.time.tsc_page_forced_invalid = invalid;
  republish(p);
}

}  // namespace microhv
