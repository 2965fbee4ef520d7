// The DMA tables, checked the way a remapping unit reads them: every
// request goes through hw_walk (root entry 9.1, context entry 9.3,
// second-level entries 9.8) for source ids on several buses; protected
// pages fault with the reason hardware records, everything else is
// identity, and large pages are used exactly where the units allow them.
#include <catch2/catch.hpp>
#include <string>

#include "arch/vtd.hpp"
#include "tests/unit/vtd_fakes.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/vtd/tables.hpp"

using namespace microhv;
using namespace microhv::vtd;
using microhv::vtd::test::FakeMemory;
using microhv::vtd::test::hw_walk;
namespace hw = microhv::arch::vtd;

namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint8_t kSagaw3 = 0x2, kSagaw4 = 0x4;
constexpr uint8_t kAllSuperpages = 0x3;
const uint16_t kSources[] = {0x0010, 0x0000, 0xFFFF, 0x3A07};  // 00:02.0, 00:00.0, ff:1f.7, 3a:00.7

// The address of a table the builder made; fails the test when it made none.
uint64_t addr(const Optional<Hpa>& table) {
  REQUIRE(table.has_value());
  return table.value().value();
}

struct Built {
  FakeMemory mem;
  DmaTables tables;
  bool ok = false;
  std::string error;
};

void build(Built& b, const DmaTableSpec& spec) {
  char error[160] = "";
  b.ok = build_dma_tables(spec, b.mem, b.mem, &b.tables, error, sizeof(error));
  b.error = error;
}

DmaTableSpec spec_for(unsigned levels, unsigned leaf, const ProtectedRange* r, uint32_t n,
                      uint64_t limit = 4 * kGiB) {
  DmaTableSpec s{};
  s.identity_limit = limit;
  s.protect = r;
  s.protect_count = n;
  s.levels = levels;
  s.max_leaf_level = leaf;
  s.need_3level_root = levels == 3;
  s.need_4level_root = levels == 4;
  return s;
}

}  // namespace

TEST_CASE("VT-d page tables: 3-level second-level format (9.8)") {
  FakeMemory mem;
  vmx::PageTables pt(vmx::TableFormat::kVtdSecondLevel, mem, mem, 3, 3);
  REQUIRE(pt.init());
  CHECK(pt.levels() == 3);
  REQUIRE(
      pt.map(0, Hpa(0), 512 * kGiB, vmx::MapAttr{vmx::kPermR | vmx::kPermW, arch::MemType::kUc}));
  CHECK(pt.tables_allocated() == 1);  // the PDPT root holds 512 1 GiB leaves
  // Leaf: address | R | W | PS, nothing else (no memory type, no X).
  CHECK(mem.table(pt.root())[3] == (3 * kGiB | hw::sl::kRead | hw::sl::kWrite | hw::sl::kLarge));
  vmx::PageTables::Translation tr{};
  REQUIRE(pt.translate(0x12345678, &tr));
  CHECK(tr.out == Hpa(0x12345678));
  CHECK(tr.level == 3);
  CHECK(tr.attr.perms == (vmx::kPermR | vmx::kPermW));
  // A 39-bit table ends at 512 GiB.
  CHECK_FALSE(pt.map(512 * kGiB, Hpa(512 * kGiB), 0x1000, vmx::kNotPresent));
  CHECK_FALSE(pt.translate(512 * kGiB, &tr));
  // Read-only and execute-only requests: X alone is not present for devices.
  REQUIRE(pt.map(0x5000, Hpa(0x5000), 0x1000, vmx::MapAttr{vmx::kPermR, arch::MemType::kWb}));
  REQUIRE(pt.translate(0x5000, &tr));
  CHECK(tr.attr.perms == vmx::kPermR);
  REQUIRE(pt.map(0x6000, Hpa(0x6000), 0x1000, vmx::MapAttr{vmx::kPermX, arch::MemType::kWb}));
  CHECK_FALSE(pt.translate(0x6000, &tr));
  // Non-leaf entries grant R and W so that the leaf decides.
  const uint64_t pdpte = mem.table(pt.root())[0];
  CHECK((pdpte & 0xFFF) == (hw::sl::kRead | hw::sl::kWrite));
}

TEST_CASE("DMA tables: identity everywhere but the protected pages, for every device") {
  const ProtectedRange ranges[] = {{Hpa(0x7000000), 0x1000},
                                   {Hpa(0x40001000), 0x2800}};  // 1 + 3 pages
  for (unsigned levels : {3u, 4u}) {
    INFO(levels << " levels");
    Built b;
    build(b, spec_for(levels, 3, ranges, 2));
    INFO(b.error);
    REQUIRE(b.ok);
    const uint64_t rt = addr(root_for_levels(b.tables, levels));
    const uint8_t sagaw = levels == 3 ? kSagaw3 : kSagaw4;
    for (uint16_t sid : kSources) {
      // Protected: a write faults with reason 5, a read with reason 6 (7.1.3).
      for (uint64_t a : {0x7000000ull, 0x7000ff8ull, 0x40001000ull, 0x40003fffull}) {
        const auto w = hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, a, true);
        const auto r = hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, a, false);
        CHECK_FALSE(w.ok);
        CHECK(w.fault == hw::fault::kWriteNotAllowed);
        CHECK_FALSE(r.ok);
        CHECK(r.fault == hw::fault::kReadNotAllowed);
      }
      // The pages around them, and memory elsewhere, are identity and writable.
      for (uint64_t a : std::initializer_list<uint64_t>{
               0x6fff000, 0x7001000, 0x40000ff8, 0x40004000, 0x0, 0xfee00000, 4 * kGiB - 8}) {
        const auto w = hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, a, true);
        CHECK(w.ok);
        CHECK(w.hpa == a);
        CHECK(w.domain == kDomainId);
      }
      // Large pages where nothing is protected.
      CHECK(hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, 2 * kGiB, false).leaf_level == 3);
      CHECK(hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, 0x7200000, false).leaf_level == 2);
      CHECK(hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, 0x7001000, false).leaf_level == 1);
      // Past the identity limit: not mapped; past the address width: beyond.
      CHECK(hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, 4 * kGiB, false).fault ==
            hw::fault::kReadNotAllowed);
      CHECK(hw_walk(b.mem, rt, sagaw, kAllSuperpages, sid, 1ull << (levels == 3 ? 39 : 48), false)
                .fault == hw::fault::kBeyondAddressWidth);
    }
  }
}

TEST_CASE("DMA tables: one root and one context table for every bus and device") {
  const ProtectedRange r{Hpa(0x100000), 0x1000};
  Built b;
  build(b, spec_for(3, 3, &r, 1));
  REQUIRE(b.ok);
  const uint64_t* root = b.mem.table(Hpa(addr(b.tables.root_3level)));
  const uint64_t context = root[0] & hw::kTableAddrMask;
  for (unsigned bus = 0; bus < 256; ++bus) {
    CHECK(root[2 * bus] == (context | hw::kRootPresent));
    CHECK(root[2 * bus + 1] == 0);
  }
  const uint64_t* ctx = b.mem.table(Hpa(context));
  for (unsigned devfn = 0; devfn < 256; ++devfn) {
    // P, FPD = 0, TT = 00, the PDPT; AW 1 (3 levels), domain 1.
    CHECK(ctx[2 * devfn] == (addr(b.tables.second_level) | hw::kContextPresent));
    CHECK(ctx[2 * devfn + 1] == (1 | uint64_t{kDomainId} << 8));
  }
  // PDPT, PD and PT for the protected page, plus the root and context tables.
  CHECK(b.tables.pages == 5);
  CHECK(b.tables.pages == b.mem.pages.size());
}

TEST_CASE("DMA tables: 4-level tables also serve 3-level walkers (mixed platform)") {
  const ProtectedRange r{Hpa(0x7000000), 0x1000};
  DmaTableSpec spec = spec_for(4, 1, &r, 1);  // an engine without super pages
  spec.need_3level_root = true;
  Built b;
  build(b, spec);
  REQUIRE(b.ok);
  REQUIRE(b.tables.root_3level.has_value());
  REQUIRE(b.tables.root_4level.has_value());
  CHECK(b.tables.root_3level != b.tables.root_4level);
  for (uint64_t a :
       std::initializer_list<uint64_t>{0x0, 0x7000000, 0x7001000, 3 * kGiB + 0x123000}) {
    // No PS bit anywhere: hw_walk flags PS as reserved when SLLPS is 0.
    const auto w3 = hw_walk(b.mem, addr(b.tables.root_3level), kSagaw3, 0, 0x10, a, true);
    const auto w4 = hw_walk(b.mem, addr(b.tables.root_4level), kSagaw4, 0, 0x10, a, true);
    CHECK(w3.ok == w4.ok);
    CHECK(w3.fault == w4.fault);
    CHECK(w3.hpa == w4.hpa);
    if (w3.ok) CHECK(w3.leaf_level == 1);
  }
  CHECK(hw_walk(b.mem, addr(b.tables.root_3level), kSagaw3, 0, 0x10, 0x7000000, true).fault ==
        hw::fault::kWriteNotAllowed);
  CHECK(b.tables.pages <= table_pages_needed(spec));
}

TEST_CASE("DMA tables: RMRRs stay identity-mapped, protection wins where they overlap") {
  ReservedRegion regions[2] = {};
  regions[0].base = 5 * kGiB;  // above the 4 GiB limit
  regions[0].limit = 5 * kGiB + 0xFFFF;
  regions[1].base = 0x7000000;  // overlaps the protected page
  regions[1].limit = 0x7003FFF;
  const ProtectedRange r{Hpa(0x7001000), 0x1000};
  DmaTableSpec spec = spec_for(4, 3, &r, 1);
  spec.regions = regions;
  spec.region_count = 2;
  Built b;
  build(b, spec);
  REQUIRE(b.ok);
  const uint64_t rt = addr(b.tables.root_4level);
  CHECK(hw_walk(b.mem, rt, kSagaw4, kAllSuperpages, 0x10, 5 * kGiB + 0xFFF8, true).hpa ==
        5 * kGiB + 0xFFF8);
  CHECK_FALSE(hw_walk(b.mem, rt, kSagaw4, kAllSuperpages, 0x10, 5 * kGiB + 0x10000, false).ok);
  CHECK_FALSE(hw_walk(b.mem, rt, kSagaw4, kAllSuperpages, 0x10, 0x7001000, false).ok);
  CHECK(b.tables.blocked_rmrr == 1);
  CHECK(b.tables.pages <= table_pages_needed(spec));
}

TEST_CASE("DMA tables: every page is visited once, for cache flushing") {
  const ProtectedRange r[] = {{Hpa(0x7000000), 0x1000}, {Hpa(0x9000000), 0x200000}};
  DmaTableSpec spec = spec_for(4, 2, r, 2);
  spec.need_3level_root = true;
  Built b;
  build(b, spec);
  REQUIRE(b.ok);
  std::multiset<uint64_t> seen;
  visit_table_pages(
      b.tables, 4, b.mem,
      [](void* ctx, Hpa page) { static_cast<std::multiset<uint64_t>*>(ctx)->insert(page.value()); },
      &seen);
  std::multiset<uint64_t> all;
  for (const auto& p : b.mem.pages) all.insert(p.first);
  CHECK(seen == all);
}

TEST_CASE("DMA tables: running out of pages and bad specs are reported") {
  const ProtectedRange r{Hpa(0x7000000), 0x1000};
  Built small;
  small.mem = FakeMemory(2);
  build(small, spec_for(3, 3, &r, 1));
  CHECK_FALSE(small.ok);
  CHECK(small.error == "out of pages for the DMA tables after 2 pages");
  Built bad;
  DmaTableSpec spec = spec_for(3, 3, &r, 1);
  spec.need_4level_root = true;
  build(bad, spec);
  CHECK_FALSE(bad.ok);
  CHECK(bad.error == "a unit walks 4 levels but the tables have 3");
}

TEST_CASE("DMA tables: table_pages_needed bounds what is used, also with 4 KiB pages only") {
  const ProtectedRange r[] = {{Hpa(0x7000000), 0x1000}, {Hpa(0x80000000), 0x280000}};
  for (unsigned levels : {3u, 4u}) {
    for (unsigned leaf : {1u, 2u, 3u}) {
      INFO(levels << " levels, leaf " << leaf);
      const DmaTableSpec spec = spec_for(levels, leaf, r, 2, 6 * kGiB);
      Built b;
      build(b, spec);
      REQUIRE(b.ok);
      CHECK(b.tables.pages <= table_pages_needed(spec));
      if (leaf == 1) CHECK(b.tables.pages > 3072);  // one PT per 2 MiB of 6 GiB
    }
  }
}
