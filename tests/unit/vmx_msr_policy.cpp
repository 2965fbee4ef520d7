// The MSR policy table (vmx/msr_policy.hpp): its shape, the bitmap made from
// it, and every row's decision as the exit handlers carry it out.
#include <catch2/catch.hpp>
#include <vector>

#include "arch/msr.hpp"
#include "tests/unit/exit_rig.hpp"
#include "vmx/msr_policy.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::Rig;

namespace {

std::vector<uint32_t> samples(const MsrRule& r) {
  std::vector<uint32_t> v{r.first};
  if (r.last != r.first) v.push_back(r.last);
  if (r.last - r.first > 1) v.push_back(r.first + (r.last - r.first) / 2);
  return v;
}

bool in_bitmap_range(uint32_t m) {
  return m <= 0x1FFF || (m >= 0xC0000000 && m <= 0xC0001FFF);
}

ExitAction rdmsr(Rig& r, uint32_t m) {
  r.regs.rcx = m;
  return r.run(exit_reason::kRdmsr);
}
ExitAction wrmsr(Rig& r, uint32_t m, uint64_t v) {
  r.regs.rcx = m;
  r.regs.rax = v & 0xFFFFFFFF;
  r.regs.rdx = v >> 32;
  return r.run(exit_reason::kWrmsr);
}

}  // namespace

TEST_CASE(
    "msr policy: rows are sorted, disjoint, documented, and pass-through stays in the bitmap") {
  const MsrRules rules = msr_rules();
  CHECK(rules.count == 75);  // vmx/README.md ("The MSR policy") states the size
  for (uint32_t i = 0; i < rules.count; ++i) {
    const MsrRule& r = rules.rows[i];
    INFO("row " << i << " " << r.name);
    CHECK(r.first <= r.last);
    if (i > 0) CHECK(rules.rows[i - 1].last < r.first);
    CHECK(r.name != nullptr);
    CHECK(r.why != nullptr);
    CHECK(r.ref != nullptr);
    CHECK((std::string(r.ref).rfind("SDM", 0) == 0 || std::string(r.ref).rfind("TLFS", 0) == 0));
    // A pass-through row outside the bitmap's ranges could not pass through.
    if (r.read == MsrRead::kPass || r.write == MsrWrite::kPass) {
      CHECK(in_bitmap_range(r.first));
      CHECK(in_bitmap_range(r.last));
    }
    // Only emulated rows say how; pass-through rows may name the VMCS field
    // that holds the guest value (used if such an MSR ever exits).
    if (r.read == MsrRead::kEmulate || r.write == MsrWrite::kEmulate) {
      CHECK(r.how != MsrEmulation::kNone);
    }
  }
}

TEST_CASE("msr policy: the bitmap passes exactly the pass-through directions; the rest exits") {
  std::vector<uint8_t> bitmap(kMsrBitmapSize, 0);
  build_msr_bitmap(bitmap.data());
  for (uint32_t base : {0u, 0xC0000000u}) {
    for (uint32_t m = base; m <= base + 0x1FFF; ++m) {
      const MsrRule* r = find_msr_rule(m);
      INFO("msr 0x" << std::hex << m);
      CHECK(msr_bitmap_passes(bitmap.data(), m, false) ==
            (r != nullptr && r->read == MsrRead::kPass));
      CHECK(msr_bitmap_passes(bitmap.data(), m, true) ==
            (r != nullptr && r->write == MsrWrite::kPass));
    }
  }
  // Outside the two ranges everything exits (the synthetic MSRs among them).
  CHECK_FALSE(msr_bitmap_passes(bitmap.data(), 0x40000000, false));
  CHECK_FALSE(msr_bitmap_passes(bitmap.data(), 0x40000000, true));
  // What issue 9 named: never without an exit.
  for (uint32_t m : {0x1Bu, 0x10u /* write */, 0x3Bu, 0x79u, 0x200u, 0x2FFu, 0x3Au, 0x480u, 0x570u,
                     0x600u, 0x3F1u, 0x830u /* write */, 0x1D9u, 0x1F2u, 0x6E0u}) {
    INFO("msr 0x" << std::hex << m);
    CHECK_FALSE(msr_bitmap_passes(bitmap.data(), m, true));
  }
}

TEST_CASE("msr policy: every row's decision, both directions, as the exit handlers carry it out") {
  const MsrRules rules = msr_rules();
  for (uint32_t i = 0; i < rules.count; ++i) {
    const MsrRule& row = rules.rows[i];
    for (uint32_t m : samples(row)) {
      INFO(row.name << " msr 0x" << std::hex << m);
      Rig r;
      const ExitAction read = rdmsr(r, m);
      switch (row.read) {
        case MsrRead::kGp:
          CHECK(read == ExitAction::kRetry);
          CHECK(r.injected(vector::kGp));
          break;
        case MsrRead::kPass:
        case MsrRead::kEmulate:
          // Emulated reads succeed on a CPU that has the feature (the Rig's);
          // pass-through ones, should they exit, are replayed.
          if (row.how != MsrEmulation::kSynthetic && row.how != MsrEmulation::kMtrrVariable) {
            CHECK(read == ExitAction::kAdvance);
          }
          break;
      }
      Rig w;
      const ExitAction write = wrmsr(w, m, 0);
      switch (row.write) {
        case MsrWrite::kGp:
          CHECK(write == ExitAction::kRetry);
          CHECK(w.injected(vector::kGp));
          CHECK(w.cpu.written.empty());
          break;
        case MsrWrite::kIgnore:
          CHECK(write == ExitAction::kAdvance);
          CHECK(w.cpu.written.empty());
          break;
        case MsrWrite::kPass:
        case MsrWrite::kEmulate:
          break;  // per emulation: tests/unit/vmx_msr_emulation.cpp
      }
    }
  }
}

TEST_CASE(
    "msr policy: every MSR OVMF and Linux 6.1 touched has a row, and Linux's own needs hold") {
  // The MSRs seen (with their access) when OVMF and Linux 6.1 booted on
  // Bochs with every MSR trapped (issue 9's trace), besides the synthetic
  // ones and the x2APIC ICR.
  const uint32_t touched[] = {
      0x140, 0x179,      0x17a,      0x186,      0x187,      0x188,      0x189,     0x19b,
      0x19c, 0x1a0,      0x1a6,      0x1a7,      0x1b,       0x1b0,      0x1b2,     0x1c9,
      0x1fc, 0x200,      0x201,      0x20f,      0x250,      0x258,      0x259,     0x268,
      0x26f, 0x2ff,      0x34,       0x345,      0x38d,      0x3a,       0x3b,      0x3f6,
      0x66a, 0x66c,      0x6e0,      0x8b,       0xc4,       0xce,       0xe7,      0xe8,
      0xfe,  0xc0000081, 0xc0000082, 0xc0000084, 0xc0000102, 0xc0000103, 0xc0011029};
  for (uint32_t m : touched) {
    INFO("msr 0x" << std::hex << m);
    CHECK(find_msr_rule(m) != nullptr);
  }
  // Linux reads these without a fixup (rdmsrl/wrmsrl): they must work.
  for (uint32_t m : {0x179u, 0x1a0u, 0x19bu, 0x1b0u, 0x1b2u, 0x1fcu, 0x1bu, 0x3bu, 0x8bu, 0x2ffu,
                     0x200u, 0x250u, 0xfeu}) {
    INFO("msr 0x" << std::hex << m);
    Rig r;
    CHECK(rdmsr(r, m) == ExitAction::kAdvance);
  }
  // MISC_FEATURE_ENABLES: read with rdmsrl_safe, then written back without
  // the CPUID-faulting bit with plain wrmsrl.
  Rig mf;
  REQUIRE(rdmsr(mf, 0x140) == ExitAction::kAdvance);
  CHECK(mf.regs.rax == 0);
  CHECK(wrmsr(mf, 0x140, 0) == ExitAction::kAdvance);
  // Microcode revision: Linux writes 0, executes CPUID, reads it.
  Rig ucode;
  CHECK(wrmsr(ucode, 0x8b, 0) == ExitAction::kAdvance);
  CHECK(ucode.cpu.written.empty());
}
