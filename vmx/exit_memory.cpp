// Guest accesses that fault in EPT (reason 48): stores to the xAPIC page
// (emulated) and accesses to microhv's own memory or the hypercall overlay
// (#GP).
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

}  // namespace

// ---- EPT violation (48): the guest touched microhv's memory (or the DMA
// remapping registers, which count as microhv's) or wrote to the hypercall
// overlay. It gets #GP(0) at the faulting instruction and
// never sees the data.
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
  const bool overlay = c.overlay_page && gpa.page_base() == c.overlay_page.value();
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
        !hidden                                   ? "hypercall page is read+execute"
        : c.hidden->hides_more(identity_hpa(gpa)) ? "DMA remapping registers"
                                                  : "microhv memory");
  }
  return inject_gp(c);
}

}  // namespace microhv::vmx
