// SDM Vol. 3C 27.3.1.2: checks on the guest segment registers (CS, SS, DS,
// ES, FS, GS, TR, LDTR), including the relaxations of unrestricted guest
// and the fixed form of virtual-8086 mode.
#include "vmx/entry_check/check_context.hpp"

namespace microhv::vmx::entry_check {
namespace {

struct Segment {
  Field selector_field, base_field, access_field;
  uint64_t selector, base;
  uint32_t limit, access;

  uint32_t type() const { return access & 0xF; }
  bool s() const { return (access >> 4) & 1; }
  uint32_t dpl() const { return (access >> 5) & 3; }
  bool present() const { return (access >> 7) & 1; }
  bool l() const { return (access >> 13) & 1; }
  bool db() const { return (access >> 14) & 1; }
  bool usable() const { return ((access >> 16) & 1) == 0; }
  uint32_t rpl() const { return selector & 3; }
  // Bits 11:8 and 31:17 are reserved (bit 16 is "unusable").
  bool reserved_clear() const { return (access & 0xFFFE0F00u) == 0; }
  // G must be 0 unless limit[11:0] are all ones, 1 if any of limit[31:20] is.
  bool granularity_ok() const {
    const bool g = (access >> 15) & 1;
    if ((limit & 0xFFF) != 0xFFF && g) return false;
    if ((limit & 0xFFF00000u) != 0 && !g) return false;
    return true;
  }
};

// The four fields of the segment whose selector field is `sel` (the guest
// ES..TR fields are laid out in the same order in each width group).
Segment load(Context& c, Field sel) {
  const uint32_t i = (encoding(sel) - encoding(Field::kGuestEsSel)) / 2;
  const auto at = [i](Field first) { return static_cast<Field>(encoding(first) + 2 * i); };
  Segment s{sel, at(Field::kGuestEsBase), at(Field::kGuestEsAccess), 0, 0, 0, 0};
  s.selector = c.read(sel);
  s.base = c.read(s.base_field);
  s.limit = static_cast<uint32_t>(c.read(at(Field::kGuestEsLimit)));
  s.access = static_cast<uint32_t>(c.read(s.access_field));
  return s;
}

// S, P, reserved bits and G: the part of the rules shared by CS and every
// usable SS/DS/ES/FS/GS.
bool common_ok(const Segment& s) {
  return s.s() && s.present() && s.reserved_clear() && s.granularity_ok();
}

void check_virtual_8086(Context& c, const Segment& s) {
  const bool ok = s.base == (s.selector << 4) && s.limit == 0xFFFF && s.access == 0xF3;
  c.require(ok, Rule::kGuestVirtual8086, s.access_field, s.access);
}

void check_cs(Context& c, const Segment& cs, const Segment& ss) {
  const uint32_t t = cs.type();
  const bool code = t == 9 || t == 11 || t == 13 || t == 15;
  bool ok = code || (t == 3 && c.unrestricted());
  if (t == 3) ok = ok && cs.dpl() == 0;
  if (t == 9 || t == 11) ok = ok && cs.dpl() == ss.dpl();
  if (t == 13 || t == 15) ok = ok && cs.dpl() <= ss.dpl();
  if (c.ia32e_guest() && cs.l()) ok = ok && !cs.db();
  c.require(ok && common_ok(cs), Rule::kGuestCsAccess, cs.access_field, cs.access);
}

void check_ss(Context& c, const Segment& ss, const Segment& cs) {
  bool ok = true;
  if (ss.usable()) ok = (ss.type() == 3 || ss.type() == 7) && common_ok(ss);
  if (!c.unrestricted()) ok = ok && ss.dpl() == ss.rpl();
  if (cs.type() == 3 || (c.guest_cr0 & arch::cr0::kPe) == 0) ok = ok && ss.dpl() == 0;
  c.require(ok, Rule::kGuestSsAccess, ss.access_field, ss.access);
}

void check_data(Context& c, const Segment& s) {
  if (!s.usable()) return;
  const uint32_t t = s.type();
  bool ok = (t & 1) != 0 && ((t & 8) == 0 || (t & 2) != 0) && common_ok(s);
  if (!c.unrestricted() && t <= 11) ok = ok && s.dpl() >= s.rpl();
  c.require(ok, Rule::kGuestDataAccess, s.access_field, s.access);
}

void check_system_segments(Context& c, const Segment& tr, const Segment& ldtr) {
  const bool tr_type = tr.type() == 11 || (!c.ia32e_guest() && tr.type() == 3);
  c.require(tr_type && !tr.s() && tr.present() && tr.usable() && tr.reserved_clear() &&
                tr.granularity_ok(),
            Rule::kGuestTrAccess, tr.access_field, tr.access);
  if (ldtr.usable()) {
    c.require(ldtr.type() == 2 && !ldtr.s() && ldtr.present() && ldtr.reserved_clear() &&
                  ldtr.granularity_ok(),
              Rule::kGuestLdtrAccess, ldtr.access_field, ldtr.access);
  }
}

void check_bases(Context& c, const Segment (&segs)[8]) {
  for (const Segment& s : segs) {
    bool ok = true;
    switch (s.selector_field) {
      case Field::kGuestTrSel:
      case Field::kGuestFsSel:
      case Field::kGuestGsSel:
        ok = c.canonical(s.base);
        break;
      case Field::kGuestLdtrSel:
        ok = !s.usable() || c.canonical(s.base);
        break;
      case Field::kGuestCsSel:
        ok = (s.base >> 32) == 0;
        break;
      default:  // SS, DS, ES
        ok = !s.usable() || (s.base >> 32) == 0;
        break;
    }
    c.require(ok, Rule::kGuestSegmentBase, s.base_field, s.base);
  }
}

}  // namespace

void check_guest_segments(Context& c) {
  const bool v86 = (c.read(Field::kGuestRflags) & arch::rflags::kVm) != 0;
  const Segment segs[8] = {load(c, Field::kGuestCsSel), load(c, Field::kGuestSsSel),
                           load(c, Field::kGuestDsSel), load(c, Field::kGuestEsSel),
                           load(c, Field::kGuestFsSel), load(c, Field::kGuestGsSel),
                           load(c, Field::kGuestTrSel), load(c, Field::kGuestLdtrSel)};
  const Segment& cs = segs[0];
  const Segment& ss = segs[1];
  const Segment& tr = segs[6];
  const Segment& ldtr = segs[7];

  c.require((tr.selector & 4) == 0, Rule::kGuestSelectors, Field::kGuestTrSel, tr.selector);
  if (ldtr.usable()) {
    c.require((ldtr.selector & 4) == 0, Rule::kGuestSelectors, Field::kGuestLdtrSel, ldtr.selector);
  }
  if (!v86 && !c.unrestricted()) {
    c.require(ss.rpl() == cs.rpl(), Rule::kGuestSelectors, Field::kGuestSsSel, ss.selector);
  }
  check_bases(c, segs);
  if (v86) {
    for (int i = 0; i < 6; ++i) check_virtual_8086(c, segs[i]);
  } else {
    check_cs(c, cs, ss);
    check_ss(c, ss, cs);
    for (int i = 2; i < 6; ++i) check_data(c, segs[i]);
  }
  check_system_segments(c, tr, ldtr);
}

}  // namespace microhv::vmx::entry_check
