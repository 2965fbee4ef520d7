// Guest accesses that fault in EPT (reason 48) and EPT misconfigurations
// (49). What a violation means is GuestEpt::classify's decision (vmx/
// guest_ept.hpp); here it is carried out: stores to the xAPIC page are
// emulated, accesses to microhv's memory, an overlay page or beyond the
// guest's physical width get #GP(0), an access EPT allows by now (it
// changed since) or high MMIO mapped on demand is retried, and anything
// microhv cannot explain -- or a misconfiguration, which only a microhv bug
// can cause -- is reported with the GPA, the qualification and RIP and
// stops the guest (README: every VP parks; microhv stays up).
#include "arch/x86.hpp"
#include "kernel/base/log.hpp"
#include "vmx/decode.hpp"
#include "vmx/exit_handlers.hpp"
#include "vmx/guest_walk.hpp"

namespace microhv::vmx {
namespace {

namespace efer = arch::efer;
namespace access = arch::access;

// ---- Writes to the local APIC page. EPT maps the xAPIC page read-only, so
// a guest store to it exits here before it happens: the instruction is
// fetched through the guest's page tables and decoded (vmx/decode.hpp),
// and the value goes to the back end, which writes the real register (or
// emulates an INIT IPI to a VP). RIP moves past the store, which also ends
// an STI/MOV-SS shadow. VM exits for EPT violations report no instruction
// length, hence the decoding.
ExitAction emulate_apic_write(ExitContext& c, uint32_t offset) {
  uint64_t efer = 0, cs_access = 0, rip = 0, cs_base = 0, cr0 = 0, cr3 = 0, cr4 = 0, intr = 0;
  if (!read(c, Field::kGuestEfer, &efer) || !read(c, Field::kGuestCsAccess, &cs_access) ||
      !read(c, Field::kGuestRip, &rip) || !read(c, Field::kGuestCsBase, &cs_base) ||
      !read(c, Field::kGuestCr0, &cr0) || !read(c, Field::kGuestCr3, &cr3) ||
      !read(c, Field::kGuestCr4, &cr4) || !read(c, Field::kGuestInterruptibility, &intr)) {
    return vmcs_failed(c);
  }
  const CodeSize size = ((efer & efer::kLma) != 0 && (cs_access & access::kLong) != 0)
                            ? CodeSize::k64
                        : (cs_access & access::kDefault32) != 0 ? CodeSize::k32
                                                                : CodeSize::k16;
  uint64_t linear = cs_base + rip;
  if (size != CodeSize::k64) linear &= 0xFFFFFFFFull;
  const GuestPaging paging{cr0, cr3, cr4, efer};
  uint8_t bytes[15] = {};
  const uint32_t got =
      c.memory != nullptr ? fetch_guest_bytes(*c.memory, paging, linear, bytes, sizeof(bytes)) : 0;
  const StoreDecode d = decode_store(bytes, got, size);
  if (!d.ok || d.width != 4 || (offset & 3) != 0) {
    log::error(
        "local APIC page: write to offset 0x%x at RIP 0x%llx by an instruction microhv cannot "
        "emulate (%u bytes fetched: %02x %02x %02x %02x %02x %02x)\n",
        offset, static_cast<unsigned long long>(rip), got, bytes[0], bytes[1], bytes[2], bytes[3],
        bytes[4], bytes[5]);
    return stop(c, "unsupported write to the local APIC page");
  }
  uint64_t gpr[16];
  for (unsigned r = 0; r < 16; ++r) gpr[r] = c.regs.gpr(r);
  const uint32_t value = static_cast<uint32_t>(store_value(d, gpr));
  // XCHG also loads the old register value into the source register.
  const bool is_xchg = d.opcode == 0x87;
  if (is_xchg) {
    const uint32_t old = c.cpu.apic_read(offset);
    c.regs.gpr(d.reg) = old;  // a 32-bit register write clears bits 63:32
  }
  c.cpu.apic_write(offset, value);
  write(c, Field::kGuestRip, rip + d.length);
  constexpr uint64_t kShadows =
      interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs;
  if ((intr & kShadows) != 0) write(c, Field::kGuestInterruptibility, intr & ~kShadows);
  return ExitAction::kRetry;
}

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
  const EptFaultInfo f = c.ept != nullptr ? c.ept->on_violation(gpa, c.qualification)
                                          : EptFaultInfo{EptFault::kStop, "no EPT to ask about it"};
  switch (f.action) {
    case EptFault::kEmulateApicWrite:
      return emulate_apic_write(c, static_cast<uint32_t>(gpa.page_offset()));
    case EptFault::kRetry:
    case EptFault::kMapOnDemand:  // on_violation resolves it; treated as mapped
      c.invalidate_ept = true;
      keep_nmi_blocking(c);
      return ExitAction::kRetry;
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
