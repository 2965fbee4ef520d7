// The page-table builder (host format and EPT) and the guest EPT layout,
// on fake physical memory that checks every table stays well-formed.
#include <catch2/catch.hpp>

#include "tests/unit/fake_phys.hpp"
#include "vmx/ept.hpp"
#include "vmx/page_tables.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::FakePhys;

namespace {

constexpr MapAttr kWb{kPermRwx, arch::MemType::kWb};
constexpr MapAttr kUc{kPermRwx, arch::MemType::kUc};

}  // namespace

TEST_CASE("page tables: identity map with 1 GiB pages uses one PDPT") {
  FakePhys mem;
  PageTables pt(TableFormat::kHost, mem, mem, 3);
  REQUIRE(pt.init());
  REQUIRE(pt.map(0, Hpa(0), 4ull << 30, kWb));
  CHECK(pt.tables_allocated() == 2);  // PML4 + PDPT
  PageTables::Translation t{};
  REQUIRE(pt.translate(0x12345678, &t));
  CHECK(t.out == Hpa(0x12345678));
  CHECK(t.level == 3);
  CHECK_FALSE(pt.translate(4ull << 30, &t));
  // Host format: present + writable + PS, no NX.
  const uint64_t pdpte = mem.table(Hpa(mem.table(pt.root())[0] & arch::kPteAddrMask))[1];
  CHECK(pdpte == ((1ull << 30) | arch::pte::kPresent | arch::pte::kWritable | arch::pte::kLarge));
}

TEST_CASE("page tables: 2 MiB pages when 1 GiB pages are unsupported") {
  FakePhys mem;
  PageTables pt(TableFormat::kHost, mem, mem, 2);
  REQUIRE(pt.init());
  REQUIRE(pt.map(0, Hpa(0), 1ull << 30, kWb));
  CHECK(pt.tables_allocated() == 3);  // PML4 + PDPT + 1 PD
  PageTables::Translation t{};
  REQUIRE(pt.translate(0x3FFFFFFF, &t));
  CHECK(t.level == 2);
  CHECK(t.out == Hpa(0x3FFFFFFF));
}

TEST_CASE("page tables: a 4 KiB hole splits large pages and keeps the rest mapped") {
  FakePhys mem;
  PageTables pt(TableFormat::kEpt, mem, mem, 3);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0), Hpa(0), 2ull << 30, kWb));
  REQUIRE(pt.unmap(0x40201000, 0x1000));
  PageTables::Translation t{};
  CHECK_FALSE(pt.translate(0x40201000, &t));
  CHECK_FALSE(pt.translate(0x40201FFF, &t));
  REQUIRE(pt.translate(0x40200FFF, &t));
  CHECK(t.level == 1);
  CHECK(t.attr == kWb);
  REQUIRE(pt.translate(0x40202000, &t));
  CHECK(t.out == Hpa(0x40202000));
  REQUIRE(pt.translate(0x40400000, &t));
  CHECK(t.level == 2);  // the neighbouring 2 MiB stayed large
  REQUIRE(pt.translate(0x0, &t));
  CHECK(t.level == 3);  // the other 1 GiB too
  // PML4 + PDPT + PD (split 1G) + PT (split 2M)
  CHECK(pt.tables_allocated() == 4);
}

TEST_CASE("page tables: EPT leaf encoding carries permissions and memory type") {
  FakePhys mem;
  PageTables pt(TableFormat::kEpt, mem, mem, 3);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0xFEE00000), Hpa(0xFEE00000), 0x1000, kUc));
  REQUIRE(
      pt.map(Gpa(0x5000), Hpa(0x7777000), 0x1000, MapAttr{kPermR | kPermX, arch::MemType::kWb}));
  PageTables::Translation t{};
  REQUIRE(pt.translate(0x5123, &t));
  CHECK(t.out == Hpa(0x7777123));
  CHECK(t.attr.perms == (kPermR | kPermX));
  CHECK(t.attr.memtype == arch::MemType::kWb);
  REQUIRE(pt.translate(0xFEE00300, &t));
  CHECK(t.attr.memtype == arch::MemType::kUc);
  // Non-leaf EPT entries grant RWX so the leaf decides.
  const uint64_t pml4e = mem.table(pt.root())[0];
  CHECK((pml4e & 7) == 7);
  CHECK((pml4e & arch::ept::kLarge) == 0);
}

TEST_CASE("page tables: every table linked is complete (no half-built state)") {
  // Splitting a 1 GiB page builds the 512-entry PD before linking it: check
  // that right after the split the whole 1 GiB still translates.
  FakePhys mem;
  PageTables pt(TableFormat::kEpt, mem, mem, 3);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0), Hpa(0), 1ull << 30, kWb));
  REQUIRE(pt.map(Gpa(0x200000), Hpa(0x200000), 0x200000, kUc));  // forces a split to 2M
  PageTables::Translation t{};
  for (uint64_t a = 0; a < (1ull << 30); a += 0x200000) {
    REQUIRE(pt.translate(a, &t));
    CHECK(t.out == Hpa(a));
    CHECK(t.attr.memtype == (a == 0x200000 ? arch::MemType::kUc : arch::MemType::kWb));
  }
}

TEST_CASE("page tables: misaligned requests and exhaustion are refused") {
  FakePhys mem(2);
  PageTables pt(TableFormat::kHost, mem, mem, 2);
  REQUIRE(pt.init());
  CHECK_FALSE(pt.map(0x1001, Hpa(0x1001), 0x1000, kWb));
  CHECK_FALSE(pt.map(0, Hpa(0), 0x1000, kWb));  // needs PDPT+PD+PT, only 1 page left
}

TEST_CASE("EPT layout: regions are sorted and merged") {
  MemRegion r[] = {{Hpa(0x100000), 0x100000, true},
                   {Hpa(0), 0xA0000, true},
                   {Hpa(0x200000), 0x300000, true},
                   {Hpa(0xFFE00000), 0x200000, false},
                   {Hpa(0xA0000), 0x60000, false}};
  const uint32_t n = normalize_regions(r, 5);
  REQUIRE(n == 4);
  CHECK(r[0].base == Hpa(0));
  CHECK(r[1].base == Hpa(0xA0000));
  CHECK(r[2].base == Hpa(0x100000));
  CHECK(r[2].size == 0x400000);
  CHECK(r[2].ram);
  CHECK(r[3].base == Hpa(0xFFE00000));
}

TEST_CASE("EPT layout: identity limit is >= 4 GiB, covers RAM, respects MAXPHYADDR") {
  MemRegion small[] = {{Hpa(0), 256ull << 20, true}};
  CHECK(identity_limit(small, 1, 40) == (4ull << 30));
  MemRegion big[] = {{Hpa(0), (6ull << 30) + 5, true}};
  CHECK(identity_limit(big, 1, 40) == (7ull << 30));
  CHECK(identity_limit(big, 1, 32) == (4ull << 30));
}

namespace {

// Low RAM, RAM from 1 MiB to 256 MiB, microhv's memory at 0xDEA9000.
struct EptRig {
  EptRig() : n(normalize_regions(r, 2)) { REQUIRE(pt.init()); }
  MemRegion r[2] = {{Hpa(0), 0xA0000, true}, {Hpa(0x100000), 0xFF00000, true}};
  uint32_t n;
  EptLayout layout{r, n, 4ull << 30, Hpa(0xDEA9000), 0x280000};
  FakePhys mem;
  PageTables pt{TableFormat::kEpt, mem, mem, 3};
};

}  // namespace

TEST_CASE("EPT layout: the DMA remapping units' register windows are not present either") {
  EptRig rig;
  EptLayout& layout = rig.layout;
  PageTables& pt = rig.pt;
  // Two units, one with a two-page window; one window beyond the limit.
  const HiddenRange windows[] = {
      {Hpa(0xFED90000), 0x1000}, {Hpa(0xFED92000), 0x2000}, {Hpa(0x1000000000ull), 0x1000}};
  layout.hide_more(windows, 3);
  REQUIRE(build_guest_ept(pt, layout));
  PageTables::Translation t{};
  CHECK_FALSE(pt.translate(0xFED90000, &t));
  CHECK_FALSE(pt.translate(0xFED90FFF, &t));
  REQUIRE(pt.translate(0xFED91000, &t));  // between the windows: ordinary MMIO
  CHECK(t.attr == kUc);
  CHECK_FALSE(pt.translate(0xFED92000, &t));
  CHECK_FALSE(pt.translate(0xFED93FF8, &t));
  REQUIRE(pt.translate(0xFED94000, &t));
  REQUIRE(pt.translate(0xFED8F000, &t));
  CHECK_FALSE(pt.translate(0xDEA9000, &t));  // microhv's own memory still hidden
  CHECK(layout.hides(Hpa(0xFED93000)));
  CHECK(layout.hides_more(Hpa(0xFED93000)));
  CHECK_FALSE(layout.hides_more(Hpa(0xDEA9000)));
  CHECK(layout.hides(Hpa(0xDEA9000)));
  CHECK_FALSE(layout.hides(Hpa(0xFED91000)));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0xFED90000), 4));
}

TEST_CASE("EPT layout: RAM WB, MMIO UC, microhv's memory not present") {
  EptRig rig;
  const EptLayout& layout = rig.layout;
  PageTables& pt = rig.pt;
  REQUIRE(build_guest_ept(pt, layout));
  PageTables::Translation t{};
  REQUIRE(pt.translate(0x1000, &t));
  CHECK(t.attr == kWb);
  REQUIRE(pt.translate(0xB8000, &t));  // legacy VGA
  CHECK(t.attr == kUc);
  REQUIRE(pt.translate(0xFEE00000, &t));  // local APIC
  CHECK(t.attr == kUc);
  REQUIRE(pt.translate(0x8000000, &t));
  CHECK(t.attr == kWb);
  CHECK(t.level == 2);
  CHECK_FALSE(pt.translate(0xDEA9000, &t));
  CHECK_FALSE(pt.translate(0xDEA9000 + 0x27FFFF, &t));
  REQUIRE(pt.translate(0xDEA8FFF, &t));
  REQUIRE(pt.translate(0xDEA9000 + 0x280000, &t));
  CHECK(t.attr == kWb);
  // Guest RAM for GuestMemory: not MMIO, not microhv, not straddling.
  CHECK(range_is_guest_ram(layout, Gpa(0x1000), 0x1000));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0xB8000), 8));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0xDEA9000), 8));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0xDEA8FF8), 16));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0x9FFF8), 16));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0x1000), 0));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(~0ull - 4), 8));
}
