// Guest accesses that fault in EPT (reason 48) and EPT misconfigurations
// (49). What a violation means is GuestEpt::classify's decision (vmx/
// guest_ept.hpp); here it is carried out: stores to the xAPIC page are
// emulated (vmx/exit_apic.cpp), accesses to microhv's memory, an overlay page or beyond the
// guest's physical width get #GP(0), an access EPT allows by now (it
// changed since) or high MMIO mapped on demand is retried, and anything
// microhv cannot explain -- or a misconfiguration, which only a microhv bug
// can cause -- is reported with the GPA, the qualification and RIP and
// stops the guest (README: every VP parks; microhv stays up).
#include "kernel/base/log.hpp"
#include "vmx/exit_handlers.hpp"

namespace microhv::vmx {
namespace {

// An access that faulted is not re-executed as it was: if it was an IRET
// that unblocked NMIs (qualification bit 12, virtual NMIs), NMIs must be
// blocked again before the guest runs the instruction anew or takes the
// #GP in its place (SDM Vol. 3C 28.2.3, 29.3.3.2). Not when the violation
// hit an event delivery: bit 12 is undefined then.
void keep_nmi_blocking(ExitContext& c) {
  if ((c.qualification & ept_qual::kNmiUnblocking) == 0) return;
  uint64_t vectoring = 0, intr = 0;
  if (!read(c, Field::kIdtVectoringInfo, &vectoring) || (vectoring & intr_info::kValid) != 0 ||
      !read(c, Field::kGuestInterruptibility, &intr)) {
    return;
  }
  write(c, Field::kGuestInterruptibility, intr | interruptibility::kBlockingByNmi);
}

const char* access_name(uint64_t q) {
  return (q & ept_qual::kWrite) != 0   ? "write"
         : (q & ept_qual::kFetch) != 0 ? "instruction fetch"
                                       : "read";
}

}  // namespace

ExitAction on_ept_violation(ExitContext& c) {
  uint64_t raw_gpa = 0, rip = 0;
  if (!read(c, Field::kGuestPhysicalAddress, &raw_gpa) || !read(c, Field::kGuestRip, &rip)) {
    return vmcs_failed(c);
  }
  const Gpa gpa(raw_gpa);
  // The xAPIC page this VP's APIC answers at (the back end sets apic_page
  // only then): its stores are emulated whatever else EPT says.
  if (c.apic_page && gpa.page_base() == c.apic_page.value() &&
      (c.qualification & ept_qual::kWrite) != 0) {
    return emulate_apic_write(c, static_cast<uint32_t>(gpa.page_offset()));
  }
  EptFaultInfo f = c.ept != nullptr ? c.ept->on_violation(gpa, c.qualification)
                                    : EptFaultInfo{EptFault::kStop, "no EPT to ask about it"};
  switch (f.action) {
    case EptFault::kRetry:
    case EptFault::kMapOnDemand:  // on_violation resolves it; treated as mapped
      c.invalidate_ept = true;
      keep_nmi_blocking(c);
      return ExitAction::kRetry;
    case EptFault::kEmulateApicWrite:
      // The page EPT protects, but this VP's APIC is elsewhere (launch
      // reported it): no APIC of this VP is there to write. Denied.
      f.what = "a write to the xAPIC page while this VP's APIC is elsewhere";
      [[fallthrough]];
    case EptFault::kInjectGp:
      if (c.denied_log == nullptr || c.denied_log->allow()) {
        log::info(
            "EPT: guest %s of GPA 0x%llx at RIP 0x%llx denied (%s, qualification 0x%llx); "
            "injecting #GP(0) (at most 16 such lines are logged)\n",
            access_name(c.qualification), static_cast<unsigned long long>(gpa.value()),
            static_cast<unsigned long long>(rip), f.what,
            static_cast<unsigned long long>(c.qualification));
      }
      keep_nmi_blocking(c);
      return inject_gp(c);
    case EptFault::kStop:
      break;
  }
  log::error(
      "EPT violation microhv cannot explain: guest %s of GPA 0x%llx at RIP 0x%llx, qualification "
      "0x%llx: %s\n",
      access_name(c.qualification), static_cast<unsigned long long>(gpa.value()),
      static_cast<unsigned long long>(rip), static_cast<unsigned long long>(c.qualification),
      f.what);
  return stop(c, "EPT violation microhv cannot explain");
}

// ---- EPT misconfiguration (49): an entry microhv wrote breaks a rule of
// SDM Vol. 3C 29.3.3.1 (reserved bits, write without read, a memory type
// or leaf size the processor lacks). Only a microhv bug does that; the
// guest cannot go on through that entry. The qualification is undefined.
ExitAction on_ept_misconfig(ExitContext& c) {
  uint64_t raw_gpa = 0, rip = 0;
  if (!read(c, Field::kGuestPhysicalAddress, &raw_gpa) || !read(c, Field::kGuestRip, &rip)) {
    return vmcs_failed(c);
  }
  uint64_t e[4] = {};
  const unsigned n = c.ept != nullptr ? c.ept->walk(Gpa(raw_gpa), e) : 0;
  log::error(
      "EPT misconfiguration at GPA 0x%llx, guest RIP 0x%llx (a microhv bug: please report it with "
      "this line); the walk read %u entries: %016llx %016llx %016llx %016llx\n",
      static_cast<unsigned long long>(raw_gpa), static_cast<unsigned long long>(rip), n,
      static_cast<unsigned long long>(e[0]), static_cast<unsigned long long>(e[1]),
      static_cast<unsigned long long>(e[2]), static_cast<unsigned long long>(e[3]));
  return stop(c, "EPT misconfiguration");
}

}  // namespace microhv::vmx
