// Guest accesses that fault in EPT (reason 48): stores to the xAPIC page
// (emulated, vmx/exit_apic.cpp) and accesses to microhv's own memory or the
// hypercall overlay (#GP).
#include "kernel/base/log.hpp"
#include "vmx/exit_handlers.hpp"

namespace microhv::vmx {

// ---- EPT violation (48): the guest touched microhv's memory (or the DMA
// remapping registers, which count as microhv's) or wrote to an overlay (the
// hypercall or the reference TSC page). It gets #GP(0) at the faulting
// instruction and never sees the data.
ExitAction on_ept_violation(ExitContext& c) {
  uint64_t raw_gpa = 0, rip = 0;
  if (!read(c, Field::kGuestPhysicalAddress, &raw_gpa) || !read(c, Field::kGuestRip, &rip)) {
    return vmcs_failed(c);
  }
  const Gpa gpa(raw_gpa);
  const bool write_access = (c.qualification & 2) != 0;
  if (c.apic_page && gpa.page_base() == c.apic_page.value() && write_access) {
    return emulate_apic_write(c, static_cast<uint32_t>(gpa.page_offset()));
  }
  const char* what = write_access ? "write" : (c.qualification & 4) ? "instruction fetch" : "read";
  const bool hidden = c.hidden != nullptr && c.hidden->hides(identity_hpa(gpa));
  bool overlay = false;
  for (const Optional<Gpa>& page : c.overlay_pages) {
    overlay = overlay || (page && gpa.page_base() == page.value());
  }
  if (!hidden && !overlay) {
    log::error(
        "EPT violation: guest %s of GPA 0x%llx at RIP 0x%llx (qualification 0x%llx) outside "
        "microhv's memory\n",
        what, static_cast<unsigned long long>(gpa.value()), static_cast<unsigned long long>(rip),
        static_cast<unsigned long long>(c.qualification));
    return stop(c, "EPT violation outside microhv's memory");
  }
  if (c.denied_log == nullptr || c.denied_log->allow()) {
    log::info(
        "EPT: guest %s of GPA 0x%llx at RIP 0x%llx denied (%s); injecting #GP(0) (at most 16 such "
        "lines are logged)\n",
        what, static_cast<unsigned long long>(gpa.value()), static_cast<unsigned long long>(rip),
        !hidden ? "an overlay page: hypercall or reference TSC page"
        : c.hidden->hides_more(identity_hpa(gpa)) ? "DMA remapping registers"
                                                  : "microhv memory");
  }
  return inject_gp(c);
}

}  // namespace microhv::vmx
