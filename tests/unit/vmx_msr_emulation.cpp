// The emulated MSRs (vmx/exit_msr.cpp, vmx/msr_emulation.hpp, vmx/mtrr.hpp):
// each one's values and the SDM's #GP rules, through the exit handlers.
#include <catch2/catch.hpp>

#include "arch/msr.hpp"
#include "tests/unit/exit_rig.hpp"
#include "vmx/msr_emulation.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::Rig;

namespace {

bool rd(Rig& r, uint32_t m, uint64_t* v) {
  r.events = PendingEvents{};
  r.regs.rcx = m;
  const bool ok = r.run(exit_reason::kRdmsr) == ExitAction::kAdvance;
  *v = (r.regs.rdx << 32) | (r.regs.rax & 0xFFFFFFFF);
  if (!ok) CHECK(r.injected(vector::kGp));
  return ok;
}
bool wr(Rig& r, uint32_t m, uint64_t v) {
  r.events = PendingEvents{};
  r.regs.rcx = m;
  r.regs.rax = v & 0xFFFFFFFF;
  r.regs.rdx = v >> 32;
  const bool ok = r.run(exit_reason::kWrmsr) == ExitAction::kAdvance;
  if (!ok) CHECK(r.injected(vector::kGp));
  return ok;
}
bool wrote_real(const Rig& r, uint32_t m) {
  for (const auto& w : r.cpu.written) {
    if (w.first == m) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("msr: IA32_TSC writes move only this VP's TSC offset; TSC_ADJUST follows (SDM 18.17.3)") {
  Rig r;
  r.cpu.tsc = 5000;
  REQUIRE(wr(r, 0x10, 0));       // the WRMSR IA32_TSC = 0
  CHECK(r.cpu.written.empty());  // the real TSC is never written
  CHECK(r.vmcs.at(Field::kTscOffset) == static_cast<uint64_t>(-5000));
  uint64_t v = 0;
  REQUIRE(rd(r, 0x3B, &v));
  CHECK(v == static_cast<uint64_t>(-5000));  // TSC_ADJUST took the same difference
  // TSC_ADJUST = 0 puts the guest's TSC back on the real one.
  REQUIRE(wr(r, 0x3B, 0));
  CHECK(r.vmcs.at(Field::kTscOffset) == 0);
  // Forward and back again, relative to where the TSC is then.
  r.cpu.tsc = 9000;
  REQUIRE(wr(r, 0x10, 10000));
  CHECK(r.vmcs.at(Field::kTscOffset) == 1000);
  REQUIRE(rd(r, 0x3B, &v));
  CHECK(v == 1000);
  REQUIRE(rd(r, 0x10, &v));  // should RDMSR TSC exit, it reads real + offset
  CHECK(v == 10000);
  // Without TSC_ADJUST in CPUID the MSR does not exist.
  Rig no;
  no.state.facts.tsc_adjust = false;
  CHECK_FALSE(rd(no, 0x3B, &v));
  CHECK_FALSE(wr(no, 0x3B, 0));
}

TEST_CASE("msr: TSC_DEADLINE is translated between the guest's TSC and the real one") {
  CHECK(tsc_deadline_to_real(0, 1234) == 0);  // disarm
  CHECK(tsc_deadline_to_real(5000, 1000) == 4000);
  CHECK(tsc_deadline_to_real(500, 1000) == 1);  // before real TSC 0: fires at once
  CHECK(tsc_deadline_to_real(4000, static_cast<uint64_t>(-1000)) == 5000);
  CHECK(tsc_deadline_to_real(~0ull - 10, static_cast<uint64_t>(-1000)) == ~0ull);
  CHECK(tsc_deadline_to_guest(0, 1000) == 0);  // fired or disarmed
  CHECK(tsc_deadline_to_guest(4000, 1000) == 5000);
  Rig r;
  r.state.tsc_offset = 1000;
  REQUIRE(wr(r, 0x6E0, 5000));
  REQUIRE(r.cpu.written.size() == 1);
  CHECK(r.cpu.written[0] == std::make_pair(0x6E0u, uint64_t{4000}));
  Rig no;
  no.state.facts.tsc_deadline = false;  // CPUID.1:ECX[24] = 0
  CHECK_FALSE(wr(no, 0x6E0, 5000));
  CHECK(no.cpu.written.empty());
}

TEST_CASE("msr: MTRRs are a per-VP copy checked like the hardware (SDM 12.11)") {
  Rig r;
  uint64_t v = 0;
  REQUIRE(rd(r, 0xFE, &v));
  CHECK(v == 0x508);
  CHECK_FALSE(wr(r, 0xFE, 0x508));  // MTRRCAP is read-only
  REQUIRE(wr(r, 0x2FF, 0));         // MTRRs off, default UC
  REQUIRE(rd(r, 0x2FF, &v));
  CHECK(v == 0);
  REQUIRE(wr(r, 0x2FF, 0xC06));       // on, fixed on, WB
  CHECK_FALSE(wr(r, 0x2FF, 0xC02));   // type 2 is reserved
  CHECK_FALSE(wr(r, 0x2FF, 0xC07));   // type 7 is reserved for MTRRs
  CHECK_FALSE(wr(r, 0x2FF, 0x1C06));  // bit 12 reserved
  CHECK_FALSE(wr(r, 0x2FF, 0x306));   // bits 9:8 reserved
  REQUIRE(wr(r, 0x250, 0x0606060606060606ull));
  CHECK_FALSE(wr(r, 0x258, 0x0606060606060603ull));  // one byte with a reserved type
  REQUIRE(wr(r, 0x200, 0x80000006ull));              // PHYSBASE0: 2 GiB, WB
  CHECK_FALSE(wr(r, 0x200, 0x80000106ull));          // bits 11:8 reserved
  CHECK_FALSE(wr(r, 0x200, (1ull << 39) | 6));       // at MAXPHYADDR (39)
  REQUIRE(wr(r, 0x201, 0x7F80000800ull));            // PHYSMASK0: 2 GiB, valid
  CHECK_FALSE(wr(r, 0x201, 0x7F80000801ull));        // bits 10:0 reserved
  REQUIRE(rd(r, 0x201, &v));
  CHECK(v == 0x7F80000800ull);
  REQUIRE(rd(r, 0x20F, &v));      // pair 7 exists (VCNT 8)
  CHECK_FALSE(rd(r, 0x210, &v));  // pair 8 does not
  CHECK_FALSE(wr(r, 0x210, 0));
  for (const auto& w : r.cpu.written) CHECK_FALSE((w.first >= 0x200 && w.first <= 0x2FF));
  // WC only where MTRRCAP.WC; fixed ranges only where MTRRCAP.FIX.
  Rig nowc;
  nowc.state.mtrr.cap = 0x108;
  CHECK_FALSE(wr(nowc, 0x2FF, 0x801));
  Rig nofix;
  nofix.state.mtrr.cap = 0x408;
  CHECK_FALSE(rd(nofix, 0x250, &v));
  CHECK_FALSE(wr(nofix, 0x2FF, 0xC06));  // FE reserved without fixed ranges
  Rig none;
  none.state.facts.mtrr = false;  // CPUID.1:EDX.MTRR = 0
  CHECK_FALSE(rd(none, 0xFE, &v));
  CHECK_FALSE(rd(none, 0x2FF, &v));
}

TEST_CASE("msr: the MTRR copy at launch hides SMRR and caps the variable pairs") {
  test::FakeCpu cpu;
  VpCpuState s;
  capture_vp_cpu_state(cpu, true, &s);
  // FakeCpu's CPUID.1:EDX has MTRR; its MSRs all read 0xAABBCCDD11223344.
  REQUIRE(s.facts.mtrr);
  CHECK((s.mtrr.cap & arch::msr::mtrr::kCapSmrr) == 0);
  CHECK((s.mtrr.cap & 0xFF) <= kMaxVariableMtrrs);
  CHECK(s.facts.tsc_offsetting);
  CHECK((s.misc_enable & arch::msr::misc_enable::kPerfMonAvailable) == 0);
  CHECK((s.misc_enable & arch::msr::misc_enable::kBtsUnavailable) != 0);
  CHECK((s.platform_info & (1ull << 31)) == 0);
}

TEST_CASE("msr: MISC_ENABLE's MONITOR FSM bit reads 0 and stays 0 (MWAIT is hidden)") {
  // SDM Vol. 4 Table 2-2, IA32_MISC_ENABLE bit 18: when 0, MONITOR/MWAIT
  // are not supported (CPUID.01H:ECX[3] = 0), as the guest's CPUID says.
  test::FakeCpu cpu;
  cpu.msr_value = 1ull << 18;  // the firmware enabled it on the real CPU
  VpCpuState s;
  capture_vp_cpu_state(cpu, true, &s);
  REQUIRE(s.facts.misc_enable);
  CHECK((s.misc_enable & arch::msr::misc_enable::kMonitorFsm) == 0);
  Rig r;
  r.state.misc_enable = 0x1801;
  uint64_t v = 0;
  REQUIRE(wr(r, 0x1A0, 0x1801 | (1ull << 18)));  // no #GP: the bit is ignored
  REQUIRE(rd(r, 0x1A0, &v));
  CHECK(v == 0x1801);
  CHECK(r.cpu.written.empty());
}

TEST_CASE("msr: FEATURE_CONTROL reads locked with VMX off; writes #GP (SDM 24.7)") {
  Rig r;
  uint64_t v = 0;
  REQUIRE(rd(r, 0x3A, &v));
  CHECK(v == 1);
  CHECK_FALSE(wr(r, 0x3A, 5));
  CHECK_FALSE(wr(r, 0x3A, 1));
}

TEST_CASE("msr: PT, DS/PEBS, microcode, VMX capabilities, SMM, CET, HFI are refused") {
  Rig r;
  uint64_t v = 0;
  for (uint32_t m :
       {0x560u,  0x561u, 0x570u, 0x571u, 0x572u, 0x580u, 0x587u, 0x600u, 0x3F1u, 0x3F6u,
        0x480u,  0x48Cu, 0x491u, 0x493u, 0x9Bu,  0x9Eu,  0x1F2u, 0x1F3u, 0x34u,  0x6A2u,
        0x17D0u, 0x33u,  0xCFu,  0xD90u, 0x6E1u, 0x345u, 0x38Fu, 0xC1u,  0x186u}) {
    INFO("msr 0x" << std::hex << m);
    CHECK_FALSE(rd(r, m, &v));
    CHECK_FALSE(wr(r, m, 0));
  }
  CHECK(r.cpu.written.empty());
  // Microcode update: ignored, so the CPU under microhv never changes.
  CHECK(wr(r, 0x79, 0x12345000));
  CHECK_FALSE(rd(r, 0x79, &v));
  CHECK(r.cpu.written.empty());
}

TEST_CASE(
    "msr: DEBUGCTL keeps BTF (and bus-lock detection), drops LBR, refuses BTS into the VMCS") {
  Rig r;
  REQUIRE(wr(r, 0x1D9, 0x2));
  CHECK(r.vmcs.at(Field::kGuestDebugctl) == 0x2);
  REQUIRE(wr(r, 0x1D9, 0x3));  // LBR silently dropped
  CHECK(r.vmcs.at(Field::kGuestDebugctl) == 0x2);
  CHECK_FALSE(wr(r, 0x1D9, 0x80));  // TR
  CHECK_FALSE(wr(r, 0x1D9, 0xC0));  // BTS
  CHECK_FALSE(wr(r, 0x1D9, 0x4));   // bus-lock detection without CPUID support
  r.state.facts.bus_lock_detect = true;
  CHECK(wr(r, 0x1D9, 0x4));
  CHECK(r.cpu.written.empty());  // never the real MSR (it is the host's in VMX root)
  uint64_t v = 0;
  REQUIRE(rd(r, 0x1D9, &v));
  CHECK(v == 0x4);
}

TEST_CASE("msr: MSRs held in the VMCS go through the VMCS fields with the WRMSR checks") {
  Rig r;
  uint64_t v = 0;
  REQUIRE(wr(r, 0xC0000100, 0x7FFF00001000ull));  // FS base, canonical
  CHECK(r.vmcs.at(Field::kGuestFsBase) == 0x7FFF00001000ull);
  CHECK_FALSE(wr(r, 0xC0000101, 0x0000800000000000ull));  // not canonical
  REQUIRE(wr(r, 0x277, 0x0007010600070106ull));           // PAT with WC
  CHECK(r.vmcs.at(Field::kGuestPat) == 0x0007010600070106ull);
  CHECK_FALSE(wr(r, 0x277, 0x0007040600070402ull));  // type 2 reserved
  REQUIRE(wr(r, 0x174, 0xFFFF0008));
  CHECK(r.vmcs.at(Field::kGuestSysenterCs) == 0xFFFF0008);
  REQUIRE(rd(r, 0x176, &v));
  CHECK(v == 0xFFFF800000002000ull);
  // EFER: LME cannot change with paging on; LMA is read-only; reserved #GP.
  CHECK_FALSE(wr(r, 0xC0000080, 0x400));  // clears LME with CR0.PG = 1
  CHECK_FALSE(wr(r, 0xC0000080, 0xD00 | (1ull << 12)));
  REQUIRE(wr(r, 0xC0000080, 0x901));  // SCE, keeps LME, LMA taken from the VMCS
  CHECK(r.vmcs.at(Field::kGuestEfer) == 0xD01);
  CHECK(r.cpu.written.empty());
}

TEST_CASE("msr: MISC_ENABLE is a per-VP copy; MISC_FEATURE_ENABLES offers no CPUID faulting") {
  Rig r;
  r.state.misc_enable = 0x1801;  // fast strings, BTS and PEBS unavailable
  uint64_t v = 0;
  REQUIRE(wr(r, 0x1A0, 0x8 | (1ull << 22)));  // TM1, limit CPUID maxval
  REQUIRE(rd(r, 0x1A0, &v));
  CHECK(v == (0x8 | (1ull << 22) | 0x1800));  // read-only bits kept
  CHECK(r.cpu.written.empty());
  REQUIRE(rd(r, 0x140, &v));
  CHECK(v == 0);
  CHECK(wr(r, 0x140, 0));
  CHECK_FALSE(wr(r, 0x140, 1));  // CPUID faulting
  CHECK_FALSE(wr(r, 0x140, 2));  // ring-3 MWAIT
  r.state.platform_info = 0x8000ull;
  REQUIRE(rd(r, 0xCE, &v));
  CHECK(v == 0x8000ull);
  CHECK_FALSE(wr(r, 0xCE, 0));
}

TEST_CASE("msr: IA32_XSS accepts only 0, on the real MSR, fault-safe") {
  Rig r;
  REQUIRE(wr(r, 0xDA0, 0));
  CHECK(wrote_real(r, 0xDA0));
  Rig pt;
  CHECK_FALSE(wr(pt, 0xDA0, 1ull << 8));  // Intel PT state
  CHECK(pt.cpu.written.empty());
  Rig none;
  none.state.facts.xss = false;
  CHECK_FALSE(wr(none, 0xDA0, 0));
}

TEST_CASE("msr: x2APIC ICR writes follow the APIC's mode and reserved bits (SDM 11.12.9)") {
  Rig x;
  CHECK_FALSE(wr(x, 0x830, 0x4500));  // xAPIC mode: #GP, as the hardware
  CHECK(x.cpu.icr_writes.empty());
  CHECK(x.cpu.written.empty());
  Rig d;
  d.state.apic.mode = ApicMode::kDisabled;
  CHECK_FALSE(wr(d, 0x830, 0x4500));
  Rig x2;
  x2.state.apic.mode = ApicMode::kX2apic;
  CHECK_FALSE(wr(x2, 0x830, 0x4500 | (1u << 13)));  // reserved bit
  CHECK_FALSE(wr(x2, 0x830, 0x4500 | (1u << 20)));
  REQUIRE(wr(x2, 0x830, 0x100004500ull));
  REQUIRE(x2.cpu.icr_writes.size() == 1);
  CHECK(x2.cpu.icr_writes[0] == 0x100004500ull);
}
