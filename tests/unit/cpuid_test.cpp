// The Hyper-V CPUID leaves derive from the partition's features.
#include "hypercall/cpuid.hpp"

#include <cstring>

#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;

TEST_CASE("CPUID: 0x40000000 names Microsoft Hv and the highest leaf 0x40000005") {
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000000, &r));
  char vendor[13] = {};
  std::memcpy(vendor, &r.ebx, 4);
  std::memcpy(vendor + 4, &r.ecx, 4);
  std::memcpy(vendor + 8, &r.edx, 4);
  CHECK(std::string(vendor) == "Microsoft Hv");
  CHECK(r.eax == 0x40000005);
}

TEST_CASE("CPUID: 0x40000001 is the Hv#1 interface") {
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000001, &r));
  CHECK(r.eax == 0x31237648);
}

TEST_CASE("CPUID: 0x40000003 reports exactly the partition's MSR access and privileges") {
  // TLFS "Partition Privilege Flags": EAX bit 1 AccessPartitionReferenceCounter
  // (TIME_REF_COUNT), 2 AccessSynicRegs, 3 AccessSyntheticTimerRegs, 5
  // AccessHypercallMsrs, 6 AccessVpIndex, 9 AccessPartitionReferenceTsc, 11
  // AccessFrequencyRegs, 15 AccessTscInvariantControls; EBX bit 4
  // PostMessages, 5 SignalEvents, 6 CreatePort, 7 ConnectPort; EDX bit 8
  // frequency MSRs available, 10 guest crash MSRs, 19 synthetic-timer direct
  // mode. That is everything microhv implements, no more; the platform
  // takes away what the machine cannot back (next test).
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000003, &r));
  CHECK(r.eax == ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 5) | (1u << 6) | (1u << 9) |
                  (1u << 11) | (1u << 15)));
  CHECK(r.ebx == ((1u << 4) | (1u << 5) | (1u << 6) | (1u << 7)));
  CHECK(r.edx == ((1u << 8) | (1u << 10) | (1u << 19)));

  // Whatever the partition holds, never CpuManagement (EBX bit 12: Linux
  // would take itself for the root partition).
  PartitionFeatures f = kFullFeatures;
  f.privileges = (1u << 4) | (1u << 12);
  g.partition->set_features(f);
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000003, &r));
  CHECK(r.ebx == (1u << 4));
}

TEST_CASE("CPUID: hints keep AutoEOI undeprecated and say not nested") {
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000004, &r));
  CHECK((r.eax & tlfs::cpuid::kHintDeprecateAutoEoi) == 0);
  CHECK((r.eax & tlfs::cpuid::kHintNested) == 0);
  // Granted: relaxed timing (bit 5) and the recommendations whose calls
  // microhv accepts (remote flush 2, cluster IPI 10, Ex masks 11); nothing else.
  constexpr uint32_t kGranted = tlfs::cpuid::kHintRelaxedTiming | tlfs::cpuid::kHintRemoteTlbFlush |
                                tlfs::cpuid::kHintClusterIpi | tlfs::cpuid::kHintExProcessorMasks;
  CHECK(r.eax == kGranted);
  // Even a partition holding them never shows bits 9 and 12.
  PartitionFeatures f = kFullFeatures;
  f.hints |= tlfs::cpuid::kHintDeprecateAutoEoi | tlfs::cpuid::kHintNested;
  g.partition->set_features(f);
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000004, &r));
  CHECK(r.eax == kGranted);
}

TEST_CASE("CPUID: a feature the platform cannot back is gone from CPUID and its MSRs #GP") {
  namespace c = tlfs::cpuid;
  namespace msr = tlfs::msr;
  const TimeBase full{1'000'000'000, 100'000'000};
  const PlatformTimeSupport all{true, true};
  CHECK(restrict_features(kFullFeatures, full, all).msr_access == kFullFeatures.msr_access);
  CHECK(restrict_features(kFullFeatures, full, all).misc == kFullFeatures.misc);

  struct Case {
    const char* what;
    TimeBase base;
    PlatformTimeSupport support;
    uint32_t eax_gone, edx_gone;
    uint32_t msr_gone;
  } const cases[] = {
      {"no host timer",
       full,
       {false, true},
       c::kAccessSynicTimers,
       c::kFeatureStimerDirectMode,
       msr::kStimer0Config},
      {"no APIC rate",
       {1'000'000'000, 0},
       all,
       c::kAccessFrequencyMsrs,
       c::kFeatureFrequencyMsrs,
       msr::kApicFrequency},
      {"TSC not the same everywhere",
       full,
       {true, false},
       c::kAccessTscInvariant,
       0,
       msr::kTscInvariantControl},
      {"TSC at 10 MHz: no 64-bit scale",
       {10'000'000, 100'000'000},
       all,
       c::kAccessPartitionReferenceTsc | c::kAccessPartitionRefCounter | c::kAccessSynicTimers |
           c::kAccessTscInvariant,
       c::kFeatureStimerDirectMode,
       msr::kReferenceTsc},
  };
  for (const Case& k : cases) {
    INFO(k.what);
    const PartitionFeatures f = restrict_features(kFullFeatures, k.base, k.support);
    Guest g(1, f);
    CpuidRegs r{};
    REQUIRE(hyperv_cpuid(*g.partition, 0x40000003, &r));
    CHECK((r.eax & k.eax_gone) == 0);
    CHECK((r.edx & k.edx_gone) == 0);
    CHECK(r.eax == (kFullFeatures.msr_access & ~k.eax_gone));
    uint64_t v = 0;
    CHECK(read_synthetic_msr(g.vp(0), k.msr_gone, &v) == MsrResult::kGp);
    CHECK(write_synthetic_msr(g.vp(0), k.msr_gone, 0) == MsrResult::kGp);
  }
  // The crash MSRs follow EDX bit 10.
  PartitionFeatures f = kFullFeatures;
  f.misc &= ~c::kFeatureGuestCrashMsrs;
  Guest g(1, f);
  uint64_t v = 0;
  CHECK(read_synthetic_msr(g.vp(0), msr::kCrashCtl, &v) == MsrResult::kGp);
  CHECK(write_synthetic_msr(g.vp(0), msr::kCrashP0, 1) == MsrResult::kGp);
}

TEST_CASE("CPUID: 0x40000005 reports the VP limit; leaves past it read zero; others are not ours") {
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000005, &r));
  CHECK(r.eax == kMaxVps);
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000006, &r));
  CHECK((r.eax | r.ebx | r.ecx | r.edx) == 0);
  REQUIRE(hyperv_cpuid(*g.partition, 0x400000FF, &r));
  CHECK_FALSE(hyperv_cpuid(*g.partition, 0x40000100, &r));
  CHECK_FALSE(hyperv_cpuid(*g.partition, 0x1, &r));
}
