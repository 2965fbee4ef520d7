// The guest's CPUID (vmx/guest_cpuid.hpp): nothing is advertised whose MSRs
// the MSR policy refuses, and the bits that mirror per-VP state follow it.
#include <catch2/catch.hpp>

#include "arch/x86.hpp"
#include "vmx/ept.hpp"
#include "vmx/guest_cpuid.hpp"
#include "vmx/msr_policy.hpp"

using namespace microhv;
using namespace microhv::vmx;

namespace {
constexpr CpuidRegs kAll{~0u, ~0u, ~0u, ~0u};
constexpr GuestCpuidContext kVp{true, arch::cr4::kOsxsave | arch::cr4::kPke};

bool refused(uint32_t msr) {
  const MsrRule* r = find_msr_rule(msr);
  return r == nullptr || (r->read == MsrRead::kGp && r->write == MsrWrite::kGp);
}
}  // namespace

TEST_CASE(
    "guest cpuid: leaf 1 hides VMX, SMX and the DS/PMU enumeration; sets the hypervisor bit") {
  const CpuidRegs r = guest_cpuid(1, 0, kAll, kVp);
  CHECK((r.ecx & arch::cpuid1_ecx::kVmx) == 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kSmx) == 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kDtes64) == 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kDsCpl) == 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kPdcm) == 0);
  CHECK((r.edx & arch::cpuid1_edx::kDs) == 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kHypervisor) != 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kX2apic) != 0);  // x2APIC transitions are emulated
  CHECK((r.edx & arch::cpuid1_edx::kMtrr) != 0);    // MTRRs are virtualized
  // The MSRs behind what is hidden are refused, behind what stays are not.
  CHECK(refused(0x600));  // DS_AREA
  CHECK(refused(0x345));  // PERF_CAPABILITIES
  CHECK(refused(0x480));  // VMX_BASIC
  CHECK_FALSE(refused(0x2FF));
  CHECK_FALSE(refused(0x802));
}

TEST_CASE("guest cpuid: MONITOR/MWAIT are not offered (leaf 1 ECX[3] clear, leaf 5 reads 0)") {
  // The synthetic timers run on the VMX-preemption timer, which does not
  // count in C-states deeper than C2 (SDM Vol. 3C 26.5.1): MWAIT is hidden
  // so the guest idles with HLT (the timer counts in the HLT state).
  CHECK((guest_cpuid(1, 0, kAll, kVp).ecx & arch::cpuid1_ecx::kMonitor) == 0);
  const CpuidRegs leaf5 = guest_cpuid(5, 0, kAll, kVp);
  CHECK((leaf5.eax | leaf5.ebx | leaf5.ecx | leaf5.edx) == 0);
  // IA32_MISC_ENABLE bit 18 (MONITOR FSM) is emulated, never the real one.
  const MsrRule* misc_enable = find_msr_rule(0x1A0);
  REQUIRE(misc_enable != nullptr);
  CHECK(misc_enable->read == MsrRead::kEmulate);
  CHECK(misc_enable->write == MsrWrite::kEmulate);
}

TEST_CASE("guest cpuid: APIC, OSXSAVE and OSPKE mirror the VP's state, not microhv's") {
  CpuidRegs r = guest_cpuid(1, 0, kAll, GuestCpuidContext{false, 0});
  CHECK((r.edx & arch::cpuid1_edx::kApic) == 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kOsxsave) == 0);
  r = guest_cpuid(1, 0, CpuidRegs{}, kVp);
  CHECK((r.edx & arch::cpuid1_edx::kApic) != 0);
  CHECK((r.ecx & arch::cpuid1_ecx::kOsxsave) != 0);
  CHECK((guest_cpuid(7, 0, kAll, GuestCpuidContext{true, 0}).ecx & arch::cpuid7_ecx::kOspke) == 0);
  CHECK((guest_cpuid(7, 0, CpuidRegs{}, kVp).ecx & arch::cpuid7_ecx::kOspke) != 0);
}

TEST_CASE(
    "guest cpuid: leaf 7 hides PT, MPX, SGX, RDT, CET, PKS, TME, KL, PCONFIG, arch LBR, core "
    "caps") {
  const CpuidRegs r = guest_cpuid(7, 0, kAll, kVp);
  CHECK((r.ebx & arch::cpuid7_ebx::kProcessorTrace) == 0);
  CHECK((r.ebx & arch::cpuid7_ebx::kMpx) == 0);
  CHECK((r.ebx & arch::cpuid7_ebx::kSgx) == 0);
  CHECK((r.ebx & (arch::cpuid7_ebx::kRdtMonitoring | arch::cpuid7_ebx::kRdtAllocation)) == 0);
  CHECK((r.ecx & (arch::cpuid7_ecx::kCetShadowStack | arch::cpuid7_ecx::kPks |
                  arch::cpuid7_ecx::kTme | arch::cpuid7_ecx::kKeyLocker)) == 0);
  CHECK((r.edx & (arch::cpuid7_edx::kCetIbt | arch::cpuid7_edx::kArchLbr |
                  arch::cpuid7_edx::kCoreCapabilities | arch::cpuid7_edx::kPconfig)) == 0);
  CHECK((r.ebx & arch::cpuid7_ebx::kTscAdjust) != 0);  // emulated with the TSC offset
  CHECK(refused(0x570));                               // RTIT_CTL
  CHECK(refused(0xD90));                               // BNDCFGS
  CHECK(refused(0x6A2));                               // S_CET
  CHECK(refused(0x6E1));                               // PKRS
  CHECK(refused(0xCF));                                // CORE_CAPABILITIES
  CHECK_FALSE(refused(0x3B));
}

TEST_CASE(
    "guest cpuid: PMU, PT, SGX, RDT, Key Locker, PCONFIG leaves read 0; no supervisor XSAVE") {
  for (uint32_t leaf : {0xAu, 0xFu, 0x10u, 0x12u, 0x14u, 0x19u, 0x1Bu}) {
    const CpuidRegs r = guest_cpuid(leaf, 0, kAll, kVp);
    INFO("leaf 0x" << std::hex << leaf);
    CHECK((r.eax | r.ebx | r.ecx | r.edx) == 0);
  }
  CHECK((guest_cpuid(0xD, 0, kAll, kVp).eax & 0x18) == 0);  // MPX in XCR0
  const CpuidRegs d1 = guest_cpuid(0xD, 1, kAll, kVp);
  CHECK(d1.ecx == 0);
  CHECK(d1.edx == 0);
  CHECK(guest_cpuid(0xD, 8, CpuidRegs{0x80, 0, 1, 0}, kVp).eax == 0);  // PT state (supervisor)
  CHECK(guest_cpuid(0xD, 2, CpuidRegs{0x100, 0x240, 0, 0}, kVp).eax == 0x100);  // AVX stays
  CHECK((guest_cpuid(6, 0, kAll, kVp).eax & arch::cpuid6_eax::kHwFeedback) == 0);
  CHECK(refused(0x17D0));
}

TEST_CASE("guest cpuid: 80000008 gives the guest at most the 48 bits EPT translates") {
  // EAX[7:0] physical, [15:8] linear address bits (SDM Vol. 2A CPUID). 4-level
  // EPT translates 48-bit GPAs (SDM Vol. 3C 29.3.2), and microhv checks every
  // GPA against the width the guest is told (vmx/ept.hpp).
  const CpuidRegs narrow = guest_cpuid(0x80000008, 0, {0x3027, 1, 2, 3}, kVp);
  CHECK(narrow.eax == 0x3027);  // 39 bits: the processor's own
  CHECK(guest_cpuid(0x80000008, 0, {0x302E, 0, 0, 0}, kVp).eax == 0x302E);  // 46
  const CpuidRegs wide = guest_cpuid(0x80000008, 0, {0x3934, 1, 2, 3}, kVp);
  CHECK(wide.eax == 0x3930);  // 52 physical bits: 48; the linear width stays
  CHECK((wide.ebx == 1 && wide.ecx == 2 && wide.edx == 3));
  CHECK(guest_address_bits(52) == 48);
  CHECK(guest_address_bits(36) == 36);
}
