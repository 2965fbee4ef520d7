// SDM Vol. 3C 27.3.1.1 (control registers, debug registers, MSRs),
// 27.3.1.3 (GDTR/IDTR) and 27.3.1.4 (RIP, RFLAGS).
#include "vmx/entry_check/check_context.hpp"

namespace microhv::vmx::entry_check {
namespace {

constexpr uint64_t kRflagsReserved = ~0x3FFFFFull | (1ull << 15) | (1ull << 5) | (1ull << 3);
// IA32_DEBUGCTL bits defined for Intel 64 processors: LBR, BTF and bits
// 15:6 (TR ... RTM_DEBUG); bits 5:2 and 63:16 are reserved.
constexpr uint64_t kDebugctlValid = 0xFFC3;

void check_control_registers(Context& c) {
  const VmxCapabilities& m = c.caps().msrs;
  const uint64_t cr0 = c.guest_cr0;
  // CD and NW are never checked: VM entry does not change them (27.3.1.1).
  const uint64_t exempt =
      arch::cr0::kCd | arch::cr0::kNw | (c.unrestricted() ? (arch::cr0::kPe | arch::cr0::kPg) : 0);
  c.require(fixed_bits_ok(cr0, m.cr0_fixed0, m.cr0_fixed1, exempt), Rule::kGuestCr0,
            Field::kGuestCr0, cr0);
  c.require((cr0 & arch::cr0::kPg) == 0 || (cr0 & arch::cr0::kPe) != 0, Rule::kGuestCr0PgWithoutPe,
            Field::kGuestCr0, cr0);
  const uint64_t cr4 = c.read(Field::kGuestCr4);
  c.require(fixed_bits_ok(cr4, m.cr4_fixed0, m.cr4_fixed1, 0) &&
                ((cr4 & arch::cr4::kCet) == 0 || (cr0 & arch::cr0::kWp) != 0),
            Rule::kGuestCr4, Field::kGuestCr4, cr4);
  if (c.ia32e_guest()) {
    c.require((cr0 & arch::cr0::kPg) != 0, Rule::kGuestIa32eMode, Field::kGuestCr0, cr0);
    c.require((cr4 & arch::cr4::kPae) != 0, Rule::kGuestIa32eMode, Field::kGuestCr4, cr4);
  } else {
    c.require((cr4 & arch::cr4::kPcide) == 0, Rule::kGuestIa32eMode, Field::kGuestCr4, cr4);
  }
  const uint64_t cr3 = c.read(Field::kGuestCr3);
  c.require(cr3_ok(cr3, c.caps().maxphyaddr), Rule::kGuestCr3, Field::kGuestCr3, cr3);
}

void check_msrs(Context& c) {
  // Processors that only support "load debug controls" = 1 check DEBUGCTL
  // unconditionally; microhv always loads it.
  if ((c.entry & entry_ctl::kLoadDebugControls) != 0) {
    const uint64_t debugctl = c.read(Field::kGuestDebugctl);
    c.require((debugctl & ~kDebugctlValid) == 0, Rule::kGuestDebugctl, Field::kGuestDebugctl,
              debugctl);
    const uint64_t dr7 = c.read(Field::kGuestDr7);
    c.require((dr7 >> 32) == 0, Rule::kGuestDr7, Field::kGuestDr7, dr7);
  }
  const Field sysenter[] = {Field::kGuestSysenterEsp, Field::kGuestSysenterEip};
  require_canonical(c, Rule::kGuestSysenter, sysenter);
  c.read(Field::kGuestSysenterCs);  // loaded on every VM entry
  if ((c.entry & entry_ctl::kLoadPat) != 0) {
    const uint64_t pat = c.read(Field::kGuestPat);
    c.require(pat_valid(pat), Rule::kGuestPat, Field::kGuestPat, pat);
  }
  if ((c.entry & entry_ctl::kLoadEfer) != 0) {
    const uint64_t efer = c.read(Field::kGuestEfer);
    const bool lma = (efer & arch::efer::kLma) != 0;
    const bool lme = (efer & arch::efer::kLme) != 0;
    c.require((efer & ~kEferValidBits) == 0 && lma == c.ia32e_guest() &&
                  ((c.guest_cr0 & arch::cr0::kPg) == 0 || lme == lma),
              Rule::kGuestEfer, Field::kGuestEfer, efer);
  }
}

void check_descriptor_tables(Context& c) {
  const Field bases[] = {Field::kGuestGdtrBase, Field::kGuestIdtrBase};
  require_canonical(c, Rule::kGuestDescriptorTables, bases);
  const Field limits[] = {Field::kGuestGdtrLimit, Field::kGuestIdtrLimit};
  for (Field f : limits) {
    const uint64_t limit = c.read(f);
    c.require((limit >> 16) == 0, Rule::kGuestDescriptorTables, f, limit);
  }
}

void check_rip_rflags(Context& c) {
  const uint64_t rip = c.read(Field::kGuestRip);
  c.read(Field::kGuestRsp);  // loaded on every VM entry
  const bool long_cs = (c.read(Field::kGuestCsAccess) & arch::access::kLong) != 0;
  if (c.ia32e_guest() && long_cs) {
    // Bits 63:N identical, N = the linear-address width.
    const uint64_t top = rip >> c.linear_bits();
    const uint64_t all = ~0ull >> c.linear_bits();
    c.require(top == 0 || top == all, Rule::kGuestRip, Field::kGuestRip, rip);
  } else {
    c.require((rip >> 32) == 0, Rule::kGuestRip, Field::kGuestRip, rip);
  }
  const uint64_t rflags = c.read(Field::kGuestRflags);
  c.require((rflags & kRflagsReserved) == 0 && (rflags & arch::rflags::kFixed1) != 0,
            Rule::kGuestRflags, Field::kGuestRflags, rflags);
  if (c.ia32e_guest() || (c.guest_cr0 & arch::cr0::kPe) == 0) {
    c.require((rflags & arch::rflags::kVm) == 0, Rule::kGuestRflagsVm, Field::kGuestRflags, rflags);
  }
  const auto type = (c.injection & intr_info::kTypeMask) >> intr_info::kTypeShift;
  if (c.injection != 0 && type == static_cast<uint32_t>(EventType::kExternalInterrupt)) {
    c.require((rflags & arch::rflags::kIf) != 0, Rule::kGuestRflagsIf, Field::kGuestRflags, rflags);
  }
}

}  // namespace

void check_guest_registers(Context& c) {
  check_control_registers(c);
  check_msrs(c);
  check_descriptor_tables(c);
  check_rip_rflags(c);
}

}  // namespace microhv::vmx::entry_check
