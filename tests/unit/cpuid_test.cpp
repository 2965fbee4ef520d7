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
  // (TIME_REF_COUNT), 2 AccessSynicRegs, 5 AccessHypercallMsrs, 6
  // AccessVpIndex; EBX bit 4 PostMessages, 5 SignalEvents, 6 CreatePort, 7
  // ConnectPort. That is what microhv implements, no more (Linux prints
  // "privilege flags low 0x66, high 0xf0").
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000003, &r));
  CHECK(r.eax == ((1u << 1) | (1u << 2) | (1u << 5) | (1u << 6)));
  CHECK(r.eax == 0x66);
  CHECK((r.eax & (1u << 9)) == 0);  // no reference TSC page: not implemented
  CHECK((r.eax & (1u << 3)) == 0);  // no synthetic timers
  CHECK(r.ebx == ((1u << 4) | (1u << 5) | (1u << 6) | (1u << 7)));

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
