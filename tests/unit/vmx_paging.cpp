// The page-table builder (host format and EPT) and the guest EPT layout,
// on fake physical memory that checks every table stays well-formed.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

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

// Low RAM, RAM from 1 MiB to 256 MiB, microhv's memory at 0xDEA9000, a
// 32-bit guest; map() builds its EPT once the test has hidden what it needs.
struct SmallLayout {
  SmallLayout() {
    layout.regions = r;
    layout.region_count = normalize_regions(r, 2);
    layout.address_bits = 32;
    REQUIRE(layout.hide(Hpa(0xDEA9000), 0x280000));
  }
  void map() {
    REQUIRE(pt.init());
    REQUIRE(map_identity(pt, layout, 0, layout.top()));
  }
  MemRegion r[2] = {{Hpa(0), 0xA0000, true}, {Hpa(0x100000), 0xFF00000, true}};
  EptLayout layout;
  FakePhys mem;
  PageTables pt{TableFormat::kEpt, mem, mem, 3, 4, 32};
};

}  // namespace

TEST_CASE("EPT layout: the DMA remapping units' register windows are not present either") {
  SmallLayout small;
  EptLayout& layout = small.layout;
  PageTables& pt = small.pt;
  // Two units, one with a two-page window (vmx/hw/dma.cpp hides each).
  REQUIRE(layout.hide(Hpa(0xFED90000), 0x1000));
  REQUIRE(layout.hide(Hpa(0xFED92000), 0x2000));
  small.map();
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
  CHECK_FALSE(layout.hides(Hpa(0xFED91000)));
  CHECK_FALSE(range_is_guest_ram(layout, Gpa(0xFED90000), 4));
}

TEST_CASE("EPT layout: RAM WB, MMIO UC, microhv's memory not present") {
  SmallLayout small;
  small.map();
  const EptLayout& layout = small.layout;
  PageTables& pt = small.pt;
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

// ---- Issue 9 item 1: an address beyond the tables' width is refused, never
// truncated into another one (bit 52 aliased to bits 47:12 before).
TEST_CASE("page tables: inputs beyond the address width and outputs beyond bit 51 are refused") {
  FakePhys mem;
  PageTables pt(TableFormat::kEpt, mem, mem, 3, 4, 40);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0), Hpa(0), 1ull << 40, kUc));
  const uint64_t before = pt.tables_allocated();
  CHECK(pt.address_bits() == 40);
  CHECK_FALSE(pt.map(Gpa(1ull << 40), Hpa(0x5000), 0x1000, kWb));
  CHECK_FALSE(pt.map(Gpa((1ull << 52) | 0x5000), Hpa(0x7000), 0x1000, kWb));
  CHECK_FALSE(pt.map(Gpa((1ull << 40) - 0x1000), Hpa(0x7000), 0x2000, kWb));  // runs past the top
  CHECK_FALSE(pt.map(Gpa(0x5000), Hpa(1ull << 52), 0x1000, kWb));
  CHECK_FALSE(pt.map(Gpa(0x5000), Hpa((1ull << 52) - 0x1000), 0x2000, kWb));
  CHECK_FALSE(pt.unmap(Gpa(~0ull << 12), 0x1000));
  CHECK(pt.tables_allocated() == before);
  PageTables::Translation t{};
  REQUIRE(pt.translate(0x5000, &t));
  CHECK(t.out == Hpa(0x5000));  // untouched: the refused calls changed nothing
  CHECK(t.attr == kUc);
  CHECK_FALSE(pt.translate((1ull << 52) | 0x5000, &t));
  CHECK_FALSE(pt.translate(1ull << 40, &t));
  // Without an explicit width: what 4 levels reach (48 bits).
  PageTables full(TableFormat::kEpt, mem, mem, 3);
  REQUIRE(full.init());
  CHECK(full.address_bits() == 48);
  CHECK_FALSE(full.map(Gpa(1ull << 48), Hpa(0), 0x1000, kWb));
}

TEST_CASE("page tables: a split page folds back once its entries agree again; tables are reused") {
  FakePhys mem;
  PageTables pt(TableFormat::kEpt, mem, mem, 3);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0), Hpa(0), 4ull << 30, kWb));
  REQUIRE(pt.tables_allocated() == 2);
  // A 4 KiB page with other attributes splits a 1 GiB and a 2 MiB page.
  REQUIRE(pt.map(Gpa(0x40201000), Hpa(0x7777000), 0x1000, MapAttr{kPermR, arch::MemType::kWb}));
  CHECK(pt.tables_allocated() == 4);
  // Restoring it makes the PT, then the PD uniform again: both fold back.
  REQUIRE(pt.map(Gpa(0x40201000), Hpa(0x40201000), 0x1000, kWb));
  CHECK(pt.tables_allocated() == 2);
  CHECK(pt.tables_free() == 2);
  PageTables::Translation t{};
  REQUIRE(pt.translate(0x40201000, &t));
  CHECK(t.level == 3);
  CHECK(t.out == Hpa(0x40201000));
  // The next split takes its tables from the free lists, not the allocator.
  const size_t fresh = mem.pages.size();
  REQUIRE(pt.map(Gpa(0x80000000), Hpa(0x7777000), 0x1000, kUc));
  CHECK(mem.pages.size() == fresh);
  CHECK(pt.tables_free() == 0);
  REQUIRE(pt.translate(0x80000000, &t));
  CHECK(t.out == Hpa(0x7777000));
  REQUIRE(
      pt.translate(0x80001000, &t));  // the reused tables hold the split's entries, not old ones
  CHECK(t.out == Hpa(0x80001000));
  CHECK(t.attr == kWb);
  // Different attributes do not fold: a 2 MiB run of UC inside WB stays split.
  REQUIRE(pt.map(Gpa(0x80000000), Hpa(0x80000000), 0x200000, kUc));
  CHECK(pt.tables_allocated() == 3);  // PML4, PDPT, the PD (PT folded into a 2 MiB UC leaf)
}

TEST_CASE("page tables: a large leaf or an unmap over tables frees them, without allocating") {
  FakePhys mem;
  PageTables pt(TableFormat::kEpt, mem, mem, 2);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0), Hpa(0), 1ull << 30, kWb));  // PML4, PDPT, PD
  REQUIRE(pt.map(Gpa(0x201000), Hpa(0x9000), 0x1000, kUc));
  REQUIRE(pt.tables_allocated() == 4);
  // A 2 MiB leaf over the split page replaces (and frees) its PT.
  REQUIRE(pt.map(Gpa(0x200000), Hpa(0x200000), 0x200000, kUc));
  CHECK(pt.tables_allocated() == 3);
  // Unmapping 512 GiB clears one PML4 entry: PDPT and PD go, nothing new.
  const size_t fresh = mem.pages.size();
  REQUIRE(pt.unmap(Gpa(0), 1ull << 39));
  CHECK(mem.pages.size() == fresh);
  CHECK(pt.tables_allocated() == 1);
  CHECK(pt.tables_free() == 3);
  PageTables::Translation t{};
  CHECK_FALSE(pt.translate(0x1000, &t));
  // Unmapping where nothing is mapped costs nothing either.
  REQUIRE(pt.unmap(Gpa(1ull << 39), 1ull << 40));
  CHECK(mem.pages.size() == fresh);
}

TEST_CASE("page tables: out of pages half-way leaves every page with its old or its new mapping") {
  FakePhys mem(4);  // PML4, PDPT, two PDs: no PT for the second split below
  PageTables pt(TableFormat::kEpt, mem, mem, 3);
  REQUIRE(pt.init());
  REQUIRE(pt.map(Gpa(0), Hpa(0), 2ull << 30, kWb));
  REQUIRE(pt.map(Gpa(0x40000000), Hpa(0x40000000), 0x200000, kUc));  // splits 1 GiB: the PD
  CHECK_FALSE(pt.map(Gpa(0x201000), Hpa(0x9000), 0x1000, kUc));      // gets a PD, not the PT
  PageTables::Translation t{};
  for (uint64_t a = 0; a < (2ull << 30); a += 0x1000 * 97) {
    REQUIRE(pt.translate(a, &t));
    CHECK(t.out == Hpa(a));
  }
  REQUIRE(pt.translate(0x201000, &t));
  CHECK(t.attr == kWb);
  CHECK(t.level == 3);  // the split made on the way folded back
  CHECK(pt.tables_allocated() == 3);
  CHECK(pt.tables_free() == 1);
}

// ---- Issue 12: the guest-RAM check by binary search over the normalized
// regions answers as the definition does: every byte of [gpa, gpa + len)
// covered by RAM in the firmware's list (RAM wins an overlap with anything
// else, see normalize_regions), none hidden, len 0 and wrapping ranges not.
namespace {
bool guest_ram_by_definition(const std::vector<MemRegion>& raw, const EptLayout& layout,
                             uint64_t start, uint64_t len) {
  if (len == 0 || start + len < start) return false;
  const uint64_t end = start + len;
  for (uint64_t b = start; b < end; ++b) {
    if (layout.hides(Hpa(b))) return false;
    bool covered = false;
    for (const MemRegion& r : raw)
      covered = covered || (r.ram && b >= r.base.value() && b < r.end());
    if (!covered) return false;
  }
  return true;
}
}  // namespace

TEST_CASE("EPT layout: the guest-RAM check matches its definition on random region sets") {
  std::mt19937_64 rng(12);
  for (int round = 0; round < 300; ++round) {
    const uint32_t n = static_cast<uint32_t>(rng() % 24);
    std::vector<MemRegion> raw;
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t base = (rng() % 64) * 0x40;
      const uint64_t size = (rng() % 8) * 0x40;
      raw.push_back(MemRegion{Hpa(base), size, (rng() % 3) != 0});
    }
    std::vector<MemRegion> norm = raw;
    EptLayout layout;
    layout.region_count = normalize_regions(norm.data(), static_cast<uint32_t>(norm.size()));
    layout.regions = norm.data();
    if (rng() % 2 == 0) REQUIRE(layout.hide(Hpa((rng() % 64) * 0x40), 0x40));
    for (int q = 0; q < 200; ++q) {
      const uint64_t start = rng() % 0x1100;
      const uint64_t len = rng() % 0x180;
      INFO("round " << round << " range [0x" << std::hex << start << ", +0x" << len << ")");
      CHECK(range_is_guest_ram(layout, Gpa(start), len) ==
            guest_ram_by_definition(raw, layout, start, len));
    }
  }
}
