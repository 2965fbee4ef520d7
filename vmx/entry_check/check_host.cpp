// SDM Vol. 3C 27.2.2 - 27.2.4: checks on the host-state area. microhv's
// host is 64-bit code, so the processor is in IA-32e mode at every VM entry
// (27.2.4 then requires "host address-space size" = 1).
#include "vmx/entry_check/check_context.hpp"

namespace microhv::vmx::entry_check {
namespace {

void check_host_registers(Context& c) {
  const VmxCapabilities& m = c.caps().msrs;
  const uint64_t cr0 = c.read(Field::kHostCr0);
  const uint64_t cr4 = c.read(Field::kHostCr4);
  c.require(fixed_bits_ok(cr0, m.cr0_fixed0, m.cr0_fixed1, 0), Rule::kHostCr0, Field::kHostCr0,
            cr0);
  c.require(fixed_bits_ok(cr4, m.cr4_fixed0, m.cr4_fixed1, 0) &&
                ((cr4 & arch::cr4::kCet) == 0 || (cr0 & arch::cr0::kWp) != 0),
            Rule::kHostCr4, Field::kHostCr4, cr4);
  const uint64_t cr3 = c.read(Field::kHostCr3);
  c.require(cr3_ok(cr3, c.caps().maxphyaddr), Rule::kHostCr3, Field::kHostCr3, cr3);
  const Field sysenter[] = {Field::kHostSysenterEsp, Field::kHostSysenterEip};
  require_canonical(c, Rule::kHostSysenter, sysenter);
  c.read(Field::kHostSysenterCs);  // loaded on every VM exit

  if ((c.exit & exit_ctl::kLoadPat) != 0) {
    const uint64_t pat = c.read(Field::kHostPat);
    c.require(pat_valid(pat), Rule::kHostPat, Field::kHostPat, pat);
  }
  const bool host64 = (c.exit & exit_ctl::kHostAddressSpaceSize) != 0;
  if ((c.exit & exit_ctl::kLoadEfer) != 0) {
    const uint64_t efer = c.read(Field::kHostEfer);
    c.require((efer & ~kEferValidBits) == 0 && ((efer & arch::efer::kLma) != 0) == host64 &&
                  ((efer & arch::efer::kLme) != 0) == host64,
              Rule::kHostEfer, Field::kHostEfer, efer);
  }
}

void check_host_segments(Context& c) {
  const bool host64 = (c.exit & exit_ctl::kHostAddressSpaceSize) != 0;
  const Field selectors[] = {Field::kHostEsSel, Field::kHostCsSel, Field::kHostSsSel,
                             Field::kHostDsSel, Field::kHostFsSel, Field::kHostGsSel,
                             Field::kHostTrSel};
  for (Field f : selectors) {
    const uint64_t sel = c.read(f);
    bool ok = (sel & 7) == 0;
    if (f == Field::kHostCsSel || f == Field::kHostTrSel) ok = ok && sel != 0;
    if (f == Field::kHostSsSel && !host64) ok = ok && sel != 0;
    c.require(ok, Rule::kHostSelectors, f, sel);
  }
  const Field bases[] = {Field::kHostFsBase, Field::kHostGsBase, Field::kHostGdtrBase,
                         Field::kHostIdtrBase, Field::kHostTrBase};
  require_canonical(c, Rule::kHostBases, bases);
}

void check_address_space_size(Context& c) {
  const bool host64 = (c.exit & exit_ctl::kHostAddressSpaceSize) != 0;
  c.require(host64, Rule::kHostAddressSpace, Field::kExitControls, c.exit);
  const uint64_t cr4 = c.read(Field::kHostCr4);
  c.require((cr4 & arch::cr4::kPae) != 0, Rule::kHostAddressSpace, Field::kHostCr4, cr4);
  const uint64_t rip = c.read(Field::kHostRip);
  c.require(c.canonical(rip), Rule::kHostAddressSpace, Field::kHostRip, rip);
  c.read(Field::kHostRsp);  // loaded on every VM exit
}

}  // namespace

void check_host_state(Context& c) {
  check_host_registers(c);
  check_host_segments(c);
  check_address_space_size(c);
}

}  // namespace microhv::vmx::entry_check
