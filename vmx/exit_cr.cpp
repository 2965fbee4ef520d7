// Control-register exits (reason 28). Only CR0/CR4 writes that touch bits
// microhv owns (the VMX fixed bits) exit; the guest sees its own values
// through the read shadows.
#include "arch/x86.hpp"
#include "vmx/exit_handlers.hpp"

namespace microhv::vmx {
namespace {

namespace cr0 = arch::cr0;
namespace cr4 = arch::cr4;
namespace efer = arch::efer;
namespace access = arch::access;

uint64_t visible_cr(ExitContext& c, Field mask_field, Field real_field, Field shadow_field) {
  const uint64_t mask = c.vmcs.read(mask_field);
  return (c.vmcs.read(real_field) & ~mask) | (c.vmcs.read(shadow_field) & mask);
}

ExitAction write_cr0(ExitContext& c, uint64_t value) {
  if ((value >> 32) != 0) return inject_gp(c);
  if ((value & cr0::kPg) != 0 && (value & cr0::kPe) == 0) return inject_gp(c);
  if ((value & cr0::kNw) != 0 && (value & cr0::kCd) == 0) return inject_gp(c);
  if ((value & ~c.caps.cr0_fixed1 & 0xFFFFFFFFull) != 0) return inject_gp(c);
  const uint64_t old = c.vmcs.read(Field::kGuestCr0);
  uint64_t efer = c.vmcs.read(Field::kGuestEfer);
  uint64_t entry = c.vmcs.read(Field::kEntryControls);
  if ((old & cr0::kPg) == 0 && (value & cr0::kPg) != 0 && (efer & efer::kLme) != 0) {
    if ((visible_cr4(c) & cr4::kPae) == 0) return inject_gp(c);
    efer |= efer::kLma;
    entry |= entry_ctl::kIa32eModeGuest;
  } else if ((old & cr0::kPg) != 0 && (value & cr0::kPg) == 0 && (efer & efer::kLma) != 0) {
    if ((c.vmcs.read(Field::kGuestCsAccess) & access::kLong) != 0) return inject_gp(c);
    efer &= ~efer::kLma;
    entry &= ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest);
  }
  c.vmcs.write(Field::kGuestCr0, guest_cr0(c.caps, value, true));
  c.vmcs.write(Field::kCr0ReadShadow, value);
  c.vmcs.write(Field::kGuestEfer, efer);
  c.vmcs.write(Field::kEntryControls, entry);
  return ExitAction::kAdvance;
}

ExitAction write_cr4(ExitContext& c, uint64_t value) {
  // VMX is hidden from the guest (CPUID.1:ECX.VMX = 0), so CR4.VMXE is a
  // reserved bit for it.
  if ((value & cr4::kVmxe) != 0 || (value & ~c.caps.cr4_fixed1) != 0) return inject_gp(c);
  const bool lma = (c.vmcs.read(Field::kGuestEfer) & efer::kLma) != 0;
  if (lma && (value & cr4::kPae) == 0) return inject_gp(c);
  if ((value & cr4::kPcide) != 0 && (visible_cr4(c) & cr4::kPcide) == 0 &&
      (!lma || (c.vmcs.read(Field::kGuestCr3) & 0xFFF) != 0)) {
    return inject_gp(c);
  }
  c.vmcs.write(Field::kGuestCr4, value | c.caps.cr4_fixed0);
  c.vmcs.write(Field::kCr4ReadShadow, value);
  return ExitAction::kAdvance;
}

}  // namespace

uint64_t visible_cr0(ExitContext& c) {
  return visible_cr(c, Field::kCr0Mask, Field::kGuestCr0, Field::kCr0ReadShadow);
}

uint64_t visible_cr4(ExitContext& c) {
  return visible_cr(c, Field::kCr4Mask, Field::kGuestCr4, Field::kCr4ReadShadow);
}

ExitAction on_cr_access(ExitContext& c) {
  const unsigned cr = c.qualification & 0xF;
  const unsigned type = (c.qualification >> 4) & 3;
  const unsigned reg = (c.qualification >> 8) & 0xF;
  switch (type) {
    case 0:  // MOV to CR
      if (cr == 0) return write_cr0(c, c.regs.gpr(reg));
      if (cr == 4) return write_cr4(c, c.regs.gpr(reg));
      return stop(c, "MOV to a control register microhv does not intercept");
    case 2:  // CLTS
      return write_cr0(c, visible_cr0(c) & ~cr0::kTs);
    case 3: {  // LMSW: loads PE, MP, EM, TS; cannot clear PE
      const uint64_t src = (c.qualification >> 16) & 0xF;
      const uint64_t old = visible_cr0(c);
      return write_cr0(c, (old & ~cr0::kLmswBits) | src | (old & cr0::kPe));
    }
    default:
      return stop(c, "MOV from a control register microhv does not intercept");
  }
}

}  // namespace microhv::vmx
