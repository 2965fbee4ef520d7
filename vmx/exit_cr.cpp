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

bool visible_cr(ExitContext& c, Field mask_field, Field real_field, Field shadow_field,
                uint64_t* value) {
  uint64_t mask = 0, real = 0, shadow = 0;
  if (!read(c, mask_field, &mask) || !read(c, real_field, &real) ||
      !read(c, shadow_field, &shadow)) {
    return false;
  }
  *value = (real & ~mask) | (shadow & mask);
  return true;
}

ExitAction write_cr0(ExitContext& c, uint64_t value) {
  if ((value >> 32) != 0) return inject_gp(c);
  if ((value & cr0::kPg) != 0 && (value & cr0::kPe) == 0) return inject_gp(c);
  if ((value & cr0::kNw) != 0 && (value & cr0::kCd) == 0) return inject_gp(c);
  if ((value & ~c.caps.cr0_fixed1 & 0xFFFFFFFFull) != 0) return inject_gp(c);
  uint64_t old = 0, efer = 0, entry = 0, cr4 = 0, cs_access = 0;
  if (!read(c, Field::kGuestCr0, &old) || !read(c, Field::kGuestEfer, &efer) ||
      !read(c, Field::kEntryControls, &entry) || !visible_cr4(c, &cr4) ||
      !read(c, Field::kGuestCsAccess, &cs_access)) {
    return vmcs_failed(c);
  }
  if ((old & cr0::kPg) == 0 && (value & cr0::kPg) != 0 && (efer & efer::kLme) != 0) {
    if ((cr4 & cr4::kPae) == 0) return inject_gp(c);
    efer |= efer::kLma;
    entry |= entry_ctl::kIa32eModeGuest;
  } else if ((old & cr0::kPg) != 0 && (value & cr0::kPg) == 0 && (efer & efer::kLma) != 0) {
    if ((cs_access & access::kLong) != 0) return inject_gp(c);
    efer &= ~efer::kLma;
    entry &= ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest);
  }
  write(c, Field::kGuestCr0, guest_cr0(c.caps, value, true));
  write(c, Field::kCr0ReadShadow, value);
  write(c, Field::kGuestEfer, efer);
  write(c, Field::kEntryControls, entry);
  return ExitAction::kAdvance;
}

ExitAction write_cr4(ExitContext& c, uint64_t value) {
  // VMX is hidden from the guest (CPUID.1:ECX.VMX = 0), so CR4.VMXE is a
  // reserved bit for it.
  if ((value & cr4::kVmxe) != 0 || (value & ~c.caps.cr4_fixed1) != 0) return inject_gp(c);
  uint64_t efer = 0, old = 0, cr3 = 0;
  if (!read(c, Field::kGuestEfer, &efer) || !visible_cr4(c, &old) ||
      !read(c, Field::kGuestCr3, &cr3)) {
    return vmcs_failed(c);
  }
  const bool lma = (efer & efer::kLma) != 0;
  if (lma && (value & cr4::kPae) == 0) return inject_gp(c);
  // Setting PCIDE needs IA-32e mode and CR3[11:0] = 0 (SDM Vol. 3A 4.10.1).
  if ((value & cr4::kPcide) != 0 && (old & cr4::kPcide) == 0 && (!lma || (cr3 & 0xFFF) != 0)) {
    return inject_gp(c);
  }
  write(c, Field::kGuestCr4, value | c.caps.cr4_fixed0);
  write(c, Field::kCr4ReadShadow, value);
  return ExitAction::kAdvance;
}

}  // namespace

bool visible_cr0(ExitContext& c, uint64_t* value) {
  return visible_cr(c, Field::kCr0Mask, Field::kGuestCr0, Field::kCr0ReadShadow, value);
}

bool visible_cr4(ExitContext& c, uint64_t* value) {
  return visible_cr(c, Field::kCr4Mask, Field::kGuestCr4, Field::kCr4ReadShadow, value);
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
    case 2: {  // CLTS
      uint64_t old = 0;
      if (!visible_cr0(c, &old)) return vmcs_failed(c);
      return write_cr0(c, old & ~cr0::kTs);
    }
    case 3: {  // LMSW: loads PE, MP, EM, TS; cannot clear PE
      const uint64_t src = (c.qualification >> 16) & 0xF;
      uint64_t old = 0;
      if (!visible_cr0(c, &old)) return vmcs_failed(c);
      return write_cr0(c, (old & ~cr0::kLmswBits) | src | (old & cr0::kPe));
    }
    default:
      return stop(c, "MOV from a control register microhv does not intercept");
  }
}

}  // namespace microhv::vmx
