// Capability decisions (VT-d 10.4.2 CAP_REG, 10.4.3 ECAP_REG): the values
// QEMU 7.2's intel-iommu reports (captured by make test-vtd) and those of
// real remapping units from Intel processor datasheets.
#include <catch2/catch.hpp>
#include <string>

#include "arch/vtd.hpp"
#include "tests/unit/vtd_fakes.hpp"
#include "vmx/vtd/caps.hpp"

using namespace microhv::vtd;
namespace t = microhv::vtd::test;

namespace {

// An Intel processor with integrated I/O and two remapping engines, from
// its datasheet (Volume 2, "Processor Integrated I/O (IIO) Configuration
// Registers", 3.5.2.2 VTD_CAP[0:1] and 3.5.2.3 EXT_VTD_CAP[0:1], at VTBAR
// and VTBAR + 0x1000), assembled field by field from the documented reset
// values:
//  - non-isochronous engine: DRD/DWD (55:54) = 11b, MAMV 9, NFR 7 (8
//    records), PSI, no super pages, FRO 0x10 (records at 0x100), ZLR,
//    MGAW 0x2F (48-bit), SAGAW 4h (4-level only), CM 0, PHMR, PLMR, RWBF 0,
//    ND 2 (256 domains); ECAP: MHMV 0xF, IRO 0x20 (IOTLB at 0x200), SC,
//    PT, CH, IR, DT, QI, C = 0;
//  - isochronous engine: the same except NFR 0, ISOCH, MGAW 0x26 (39-bit),
//    SAGAW 2h (3-level only); ECAP without SC and DT.
constexpr uint64_t kIioCap0 = 0x00C90780106F0462ull;
constexpr uint64_t kIioEcap0 = 0x00F020EEull;
constexpr uint64_t kIioCap1 = 0x00C9008010E60262ull;
constexpr uint64_t kIioEcap1 = 0x00F0206Aull;
// A later one (same datasheet series, 3.3.8.2 VTD0_CAP): SAGAW 4h, super
// pages 2 MiB and 1 GiB (SPS 3h), MAMV 0x12, NFR 7, FRO 0x10, MGAW 0x2F.
constexpr uint64_t kIioCapWithSuperpages = 0x00D2078C106F0462ull;

}  // namespace

TEST_CASE("caps: QEMU intel-iommu, aw-bits=39") {
  const UnitCaps c = decode_caps(t::kQemuVer, t::kQemuCapAw39, t::kQemuEcap);
  CHECK(c.sagaw == 0x2);
  CHECK(c.mgaw_bits == 39);
  CHECK(c.superpages == 0x3);
  CHECK(c.domains == 65536);
  CHECK(c.fault_reg == 0x220);
  CHECK(c.fault_count == 1);
  CHECK(c.iotlb_reg == 0xF8);
  CHECK_FALSE(c.write_buffer_flush);
  CHECK_FALSE(c.caching_mode);
  CHECK_FALSE(c.coherent);  // QEMU reports ECAP.C = 0: table writes are flushed
  CHECK(c.queued_invalidation);
  CHECK(c.interrupt_remapping);
  CHECK(c.drain_reads);
  CHECK(c.drain_writes);
  const UnitPlan p = plan_unit(c, 0x1000);
  INFO(p.reason);
  REQUIRE(p.usable);
  CHECK(p.levels == 3);
  CHECK(p.max_leaf_level == 3);
  CHECK(p.reach == (1ull << 39));
  CHECK(p.register_bytes == 0x1000);  // the records at 0x220..0x230 fit in the page
}

TEST_CASE("caps: QEMU intel-iommu, aw-bits=48 gets 4-level tables") {
  const UnitCaps c = decode_caps(t::kQemuVer, t::kQemuCapAw48, t::kQemuEcap);
  CHECK(c.sagaw == 0x6);
  CHECK(c.mgaw_bits == 48);
  const UnitPlan p = plan_unit(c, 0x1000);
  REQUIRE(p.usable);
  CHECK(p.levels == 4);
  CHECK(p.max_leaf_level == 3);
  CHECK(p.reach == (1ull << 48));
}

TEST_CASE("caps: a datasheet platform with a 4-level-only and a 3-level-only engine") {
  const UnitCaps c0 = decode_caps(0x10, kIioCap0, kIioEcap0);
  CHECK(c0.sagaw == 0x4);
  CHECK(c0.mgaw_bits == 48);
  CHECK(c0.superpages == 0);
  CHECK(c0.fault_count == 8);
  CHECK(c0.fault_reg == 0x100);
  CHECK(c0.iotlb_reg == 0x208);
  CHECK(c0.domains == 256);
  CHECK_FALSE(c0.coherent);
  CHECK(c0.queued_invalidation);
  const UnitPlan p0 = plan_unit(c0, 0x1000);
  REQUIRE(p0.usable);
  CHECK(p0.levels == 4);
  CHECK(p0.max_leaf_level == 1);  // no super pages: 4 KiB leaves only

  const UnitCaps c1 = decode_caps(0x10, kIioCap1, kIioEcap1);
  CHECK(c1.sagaw == 0x2);
  CHECK(c1.mgaw_bits == 39);
  CHECK(c1.fault_count == 1);
  const UnitPlan p1 = plan_unit(c1, 0x1000);
  REQUIRE(p1.usable);
  CHECK(p1.levels == 3);
  CHECK(p1.reach == (1ull << 39));

  const UnitCaps c2 = decode_caps(0x10, kIioCapWithSuperpages, kIioEcap0);
  CHECK(c2.superpages == 0x3);
  CHECK(c2.fault_count == 8);
  CHECK(plan_unit(c2, 0x1000).max_leaf_level == 3);
}

TEST_CASE("caps: write buffer flushing, caching mode and coherency are decoded") {
  using namespace microhv::arch::vtd;
  const UnitCaps c =
      decode_caps(0x10, t::kQemuCapAw39 | cap::kRwbf | cap::kCm, t::kQemuEcap | ecap::kC);
  CHECK(c.write_buffer_flush);
  CHECK(c.caching_mode);
  CHECK(c.coherent);
  // 2 MiB without 1 GiB pages.
  const uint64_t only_2m =
      (t::kQemuCapAw39 & ~(cap::kSllpsMask << cap::kSllpsShift)) | 1ull << cap::kSllpsShift;
  CHECK(plan_unit(decode_caps(0x10, only_2m, t::kQemuEcap), 0x1000).max_leaf_level == 2);
}

TEST_CASE("caps: a unit that cannot be used gets one reason") {
  using namespace microhv::arch::vtd;
  SECTION("no 3- or 4-level tables") {
    const uint64_t five_only =
        (t::kQemuCapAw48 & ~(cap::kSagawMask << cap::kSagawShift)) | 0x8ull << cap::kSagawShift;
    const UnitPlan p = plan_unit(decode_caps(0x10, five_only, t::kQemuEcap), 0x1000);
    CHECK_FALSE(p.usable);
    CHECK(std::string(p.reason) ==
          "supports neither 3-level (39-bit) nor 4-level (48-bit) second-level tables (SAGAW 0x8)");
  }
  SECTION("registers read all ones") {
    const UnitPlan p = plan_unit(decode_caps(0xFFFFFFFF, ~0ull, ~0ull), 0x1000);
    CHECK_FALSE(p.usable);
    CHECK(std::string(p.reason).find("all ones") != std::string::npos);
  }
}

TEST_CASE("caps: the register window grows to where CAP/ECAP put the registers") {
  using namespace microhv::arch::vtd;
  // FRO 0x100 (records at 0x1000) with 8 records: a one-page DMAR window
  // (Size 0, tables before rev. 2.2) becomes two pages.
  const uint64_t far_records =
      (kIioCap0 & ~(cap::kFroMask << cap::kFroShift)) | 0x100ull << cap::kFroShift;
  const UnitPlan p = plan_unit(decode_caps(0x10, far_records, kIioEcap0), 0x1000);
  REQUIRE(p.usable);
  CHECK(p.register_bytes == 0x2000);
  // A larger DMAR window is kept.
  CHECK(plan_unit(decode_caps(0x10, kIioCap0, kIioEcap0), 0x4000).register_bytes == 0x4000);
}
