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
  const uint64_t efer = c.vmcs.read(Field::kGuestEfer);
  const uint32_t cs_access = static_cast<uint32_t>(c.vmcs.read(Field::kGuestCsAccess));
  const CodeSize size = ((efer & efer::kLma) != 0 && (cs_access & access::kLong) != 0)
                            ? CodeSize::k64
                        : (cs_access & access::kDefault32) != 0 ? CodeSize::k32
                                                                : CodeSize::k16;
  const uint64_t rip = c.vmcs.read(Field::kGuestRip);
  uint64_t linear = c.vmcs.read(Field::kGuestCsBase) + rip;
  if (size != CodeSize::k64) linear &= 0xFFFFFFFFull;
  const GuestPaging paging{c.vmcs.read(Field::kGuestCr0), c.vmcs.read(Field::kGuestCr3),
                           c.vmcs.read(Field::kGuestCr4), efer};
  uint8_t bytes[15] = {};
  const uint32_t got =
      c.memory != nullptr ? fetch_guest_bytes(*c.memory, paging, linear, bytes, sizeof(bytes)) : 0;
  const StoreDecode d = decode_store(bytes, got, size);
  if (!d.ok || d.width != 4 || (offset & 3) != 0) {
    log::error(
        "local APIC page: write to offset 0x%x at RIP 0x%llx by an instruction microhv cannot "
        "emulate (%u "
        "bytes fetched: %02x %02x %02x %02x %02x %02x)\n",
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
  c.vmcs.write(Field::kGuestRip, rip + d.length);
  const uint64_t intr = c.vmcs.read(Field::kGuestInterruptibility);
  if ((intr & (interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs)) != 0) {
    c.vmcs.write(Field::kGuestInterruptibility,
                 intr & ~static_cast<uint64_t>(interruptibility::kBlockingBySti |
                                               interruptibility::kBlockingByMovSs));
  }
  return ExitAction::kRetry;
}

}  // namespace

// ---- EPT violation (48): the guest touched microhv's memory or wrote to
// the hypercall overlay. It gets #GP(0) at the faulting instruction and
// never sees the data.
ExitAction on_ept_violation(ExitContext& c) {
  const uint64_t gpa = c.vmcs.read(Field::kGuestPhysicalAddress);
  if (c.apic_page != ~0ull && (gpa & ~0xFFFull) == c.apic_page && (c.qualification & 2) != 0) {
    return emulate_apic_write(c, static_cast<uint32_t>(gpa & 0xFFF));
  }
  const uint64_t rip = c.vmcs.read(Field::kGuestRip);
  const char* what = (c.qualification & 2)   ? "write"
                     : (c.qualification & 4) ? "instruction fetch"
                                             : "read";
  const bool hidden =
      c.hidden_size != 0 && gpa >= c.hidden_base && gpa - c.hidden_base < c.hidden_size;
  const bool overlay = (gpa & ~0xFFFull) == c.overlay_gpa;
  if (!hidden && !overlay) {
    log::error(
        "EPT violation: guest %s of GPA 0x%llx at RIP 0x%llx (qualification 0x%llx) outside "
        "microhv's "
        "memory\n",
        what, static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(rip),
        static_cast<unsigned long long>(c.qualification));
    return stop(c, "EPT violation outside microhv's memory");
  }
  log::info("EPT: guest %s of GPA 0x%llx at RIP 0x%llx denied (%s); injecting #GP(0)\n", what,
            static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(rip),
            hidden ? "microhv memory" : "hypercall page is read+execute");
  return inject_gp(c);
}

}  // namespace microhv::vmx
