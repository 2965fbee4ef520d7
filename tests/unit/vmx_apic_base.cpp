// IA32_APIC_BASE (vmx/apic_base.hpp): the SDM's state transitions (Vol. 3A
// 11.4.4, 11.12.5, Figure 11-27 "Local x2APIC State Transitions"), the
// refused relocation, the read-only BSP bit, and what microhv does to the
// real APIC for each transition.
#include <catch2/catch.hpp>
#include <map>

#include "arch/apic.hpp"
#include "tests/unit/exit_rig.hpp"
#include "vmx/apic_base.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::Rig;

namespace {

constexpr uint64_t kBase = 0xFEE00000, kBsp = 0x100, kEn = 0x800, kExtd = 0x400;

CpuFacts facts() {
  CpuFacts f;
  f.phys_addr_bits = 39;
  f.x2apic = true;
  return f;
}

ApicState in(ApicMode m) {
  ApicState s;
  s.mode = m;
  s.base = Gpa(kBase);
  s.bsp = true;
  return s;
}

// A CPU whose IA32_APIC_BASE and xAPIC registers are modelled: the real
// APIC as microhv leaves it.
class ApicCpu final : public CpuServices {
 public:
  CpuidRegs cpuid(uint32_t, uint32_t) override { return {}; }
  bool rdmsr(uint32_t m, uint64_t* v) override {
    if (m != 0x1B) return false;
    *v = base;
    return true;
  }
  bool wrmsr(uint32_t m, uint64_t v) override {
    if (m != 0x1B) return false;
    writes.push_back(v);
    if (ignore_while_disabled && (base & kEn) == 0) return true;  // Bochs 2.7
    base = v;
    return true;
  }
  uint64_t rdtsc() override { return 0; }
  bool read_xmm(unsigned, unsigned, uint32_t*) override { return false; }
  bool xsetbv(uint32_t, uint64_t) override { return true; }
  void wbinvd() override {}
  uint32_t io_in(uint16_t, uint8_t) override { return 0; }
  void io_out(uint16_t, uint8_t, uint32_t) override {}
  bool step_io_natively(uint16_t) override { return false; }
  bool end_io_step() override { return false; }
  void reset_debug_registers() override {}
  void apic_write(uint32_t offset, uint32_t value) override {
    if (offset == arch::apic::kEoi) {
      for (int i = 7; i >= 0; --i) {  // retire the highest in-service vector
        uint32_t& isr = regs[arch::apic::kIsr0 + 0x10 * i];
        if (isr != 0) {
          isr &= ~(1u << (31 - __builtin_clz(isr)));
          break;
        }
      }
      ++eois;
      return;
    }
    regs[offset] = value;
  }
  uint32_t apic_read(uint32_t offset) override { return regs[offset]; }
  void x2apic_icr_write(uint64_t) override {}

  uint64_t base = kBase | kBsp | kEn;
  bool ignore_while_disabled = false;
  std::vector<uint64_t> writes;
  ApicCpu() { regs[arch::apic::kVersion] = 0x50014; }  // max LVT 5
  std::map<uint32_t, uint32_t> regs;
  int eois = 0;
};

}  // namespace

TEST_CASE("apic base: the guest reads its own mode, base and BSP bit") {
  CHECK(apic_base_value(in(ApicMode::kXapic)) == (kBase | kBsp | kEn));
  CHECK(apic_base_value(in(ApicMode::kX2apic)) == (kBase | kBsp | kEn | kExtd));
  CHECK(apic_base_value(in(ApicMode::kDisabled)) == (kBase | kBsp));
}

TEST_CASE("apic base: valid and invalid transitions (SDM 11.12.5)") {
  const CpuFacts f = facts();
  struct Case {
    ApicMode from;
    uint64_t bits;
    bool gp;
  } cases[] = {
      {ApicMode::kXapic, kEn, false},            // no change
      {ApicMode::kXapic, kEn | kExtd, false},    // -> x2APIC
      {ApicMode::kXapic, 0, false},              // -> disabled
      {ApicMode::kXapic, kExtd, true},           // -> invalid (EN=0, EXTD=1)
      {ApicMode::kX2apic, kEn | kExtd, false},   // no change
      {ApicMode::kX2apic, 0, false},             // -> disabled
      {ApicMode::kX2apic, kEn, true},            // -> xAPIC directly: #GP
      {ApicMode::kX2apic, kExtd, true},          // -> invalid
      {ApicMode::kDisabled, 0, false},           // no change
      {ApicMode::kDisabled, kEn, false},         // -> xAPIC
      {ApicMode::kDisabled, kEn | kExtd, true},  // -> x2APIC directly: #GP
      {ApicMode::kDisabled, kExtd, true},        // -> invalid
  };
  for (const Case& c : cases) {
    INFO("from " << static_cast<int>(c.from) << " bits 0x" << std::hex << c.bits);
    const ApicBaseWrite w = decide_apic_base_write(in(c.from), f, kBase | kBsp | c.bits);
    CHECK(w.gp == c.gp);
  }
}

TEST_CASE("apic base: relocation, reserved bits and bits above MAXPHYADDR are #GP; BSP ignored") {
  const CpuFacts f = facts();
  const ApicState s = in(ApicMode::kXapic);
  CHECK(decide_apic_base_write(s, f, 0xFED00000 | kEn).gp);            // moved
  CHECK(decide_apic_base_write(s, f, 0x1000 | kEn).gp);                // onto RAM
  CHECK(decide_apic_base_write(s, f, kBase | kEn | 0x1).gp);           // bit 0
  CHECK(decide_apic_base_write(s, f, kBase | kEn | 0x200).gp);         // bit 9
  CHECK(decide_apic_base_write(s, f, kBase | kEn | (1ull << 39)).gp);  // MAXPHYADDR 39
  CHECK_FALSE(decide_apic_base_write(s, f, kBase | kEn).gp);           // BSP cleared: ignored
  CpuFacts no_x2 = f;
  no_x2.x2apic = false;  // EXTD is reserved without CPUID.1:ECX.x2APIC
  CHECK(decide_apic_base_write(s, no_x2, kBase | kEn | kExtd).gp);
}

TEST_CASE(
    "apic base: xAPIC -> x2APIC writes the real MSR; disabled is emulated on an enabled APIC") {
  ApicCpu cpu;
  ApicState s = in(ApicMode::kXapic);
  cpu.regs[arch::apic::kIsr0 + 0x30] = 0x3;  // two vectors in service
  REQUIRE(apply_apic_transition(cpu, s, ApicMode::kDisabled));
  CHECK(s.mode == ApicMode::kDisabled);
  CHECK(s.disabled_emulated);
  CHECK(cpu.writes.empty());                                         // the real APIC stays enabled
  CHECK(cpu.regs[arch::apic::kLvtLint0] == arch::apic::kLvtExtInt);  // INTR goes through
  CHECK(cpu.regs[arch::apic::kLvtLint1] == arch::apic::kLvtNmi);
  CHECK(cpu.regs[arch::apic::kLvtTimer] == arch::apic::kLvtMasked);
  CHECK(cpu.regs[arch::apic::kLvtThermal] == arch::apic::kLvtMasked);
  // Enabled again: the state after power-up (SDM 10.4.7.1).
  REQUIRE(apply_apic_transition(cpu, s, ApicMode::kXapic));
  CHECK(s.mode == ApicMode::kXapic);
  CHECK(cpu.writes.empty());
  CHECK(cpu.regs[arch::apic::kSvr] == 0xFF);
  CHECK(cpu.regs[arch::apic::kLvtLint0] == arch::apic::kLvtMasked);
  CHECK(cpu.regs[arch::apic::kDfr] == 0xFFFFFFFFu);
  CHECK(cpu.regs[arch::apic::kIsr0 + 0x30] == 0);
  CHECK(cpu.eois == 2);
  REQUIRE(apply_apic_transition(cpu, s, ApicMode::kX2apic));
  CHECK(s.mode == ApicMode::kX2apic);
  CHECK(cpu.base == (kBase | kBsp | kEn | kExtd));
}

TEST_CASE(
    "apic base: x2APIC -> disabled leaves the real APIC in xAPIC mode, or says the CPU refused") {
  ApicCpu cpu;
  cpu.base = kBase | kBsp | kEn | kExtd;
  ApicState s = in(ApicMode::kX2apic);
  REQUIRE(apply_apic_transition(cpu, s, ApicMode::kDisabled));
  REQUIRE(cpu.writes.size() == 2);
  CHECK(cpu.writes[0] == (kBase | kBsp));        // x2APIC -> disabled
  CHECK(cpu.writes[1] == (kBase | kBsp | kEn));  // -> xAPIC
  CHECK(s.disabled_emulated);
  CHECK(apic_base_value(s) == (kBase | kBsp));
  REQUIRE(apply_apic_transition(cpu, s, ApicMode::kXapic));
  CHECK(s.mode == ApicMode::kXapic);

  // Bochs 2.7: the enable while disabled is ignored; the VP keeps the
  // disabled APIC the hardware shows, and enabling it again does nothing.
  ApicCpu bochs;
  bochs.base = kBase | kBsp | kEn | kExtd;
  bochs.ignore_while_disabled = true;
  ApicState b = in(ApicMode::kX2apic);
  REQUIRE(apply_apic_transition(bochs, b, ApicMode::kDisabled));
  CHECK_FALSE(b.disabled_emulated);
  CHECK(b.mode == ApicMode::kDisabled);
  REQUIRE(apply_apic_transition(bochs, b, ApicMode::kXapic));
  CHECK(b.mode == ApicMode::kDisabled);
}

TEST_CASE("apic base: through the WRMSR exit, relocation and invalid transitions are #GP") {
  Rig r;
  r.regs.rcx = 0x1B;
  r.regs.rax = 0xFED00000 | kEn;
  CHECK(r.run(exit_reason::kWrmsr) == ExitAction::kRetry);
  CHECK(r.injected(vector::kGp));
  CHECK(r.cpu.written.empty());
  Rig x2;
  x2.state.apic.mode = ApicMode::kX2apic;
  x2.regs.rcx = 0x1B;
  x2.regs.rax = kBase | kBsp | kEn;
  CHECK(x2.run(exit_reason::kWrmsr) == ExitAction::kRetry);
  CHECK(x2.injected(vector::kGp));
  Rig rd;
  rd.regs.rcx = 0x1B;
  REQUIRE(rd.run(exit_reason::kRdmsr) == ExitAction::kAdvance);
  CHECK(rd.regs.rax == (kBase | kBsp | kEn));
}
