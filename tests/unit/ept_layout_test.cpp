// The guest's EPT as GuestEpt::build makes it, walked entry by entry the way
// the processor walks it (SDM Vol. 3C 29.3.2: bits 2:0 permissions, 5:3
// memory type, 7 page size, 51:12 address), against what the guest must
// see: every GPA below 2^MAXPHYADDR maps to itself with its MTRR type (RAM)
// or UC/WC (everything else), microhv's pages are not present, nothing
// beyond the width is, and no leaf spans two types (SDM Vol. 3A 12.11.9).
// Also microhv's own page tables (the same rule) and the table counts for
// MAXPHYADDR 36, 39 and 46 with and without 1 GiB pages.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <vector>

#include "tests/unit/fake_phys.hpp"
#include "vmx/guest_ept.hpp"

using namespace microhv;
using namespace microhv::vmx;
using arch::MemType;
using microhv::test::FakePhys;

namespace {

struct Leaf {
  uint64_t gpa, size, hpa;
  uint8_t perms;
  MemType type;
};

// Every leaf and every not-present range, by walking raw entries.
struct Walk {
  std::vector<Leaf> leaves;
  std::vector<std::pair<uint64_t, uint64_t>> absent;  // [start, end)
};

void walk_table(FakePhys& mem, uint64_t table, unsigned level, uint64_t base, Walk* w) {
  const uint64_t* t = mem.table(Hpa(table));
  const uint64_t span = 1ull << (12 + 9 * (level - 1));
  for (unsigned i = 0; i < 512; ++i) {
    const uint64_t e = t[i], gpa = base + i * span;
    if ((e & 7) == 0) {
      if (!w->absent.empty() && w->absent.back().second == gpa) {
        w->absent.back().second = gpa + span;
      } else {
        w->absent.push_back({gpa, gpa + span});
      }
      continue;
    }
    REQUIRE((e & 7) != 2);  // write without read: a misconfiguration (29.3.3.1)
    const uint64_t addr = e & 0x000FFFFFFFFFF000ull;
    if (level == 1 || (e & (1ull << 7)) != 0) {
      REQUIRE(level <= 3);
      REQUIRE((addr & (span - 1)) == 0);
      w->leaves.push_back(
          {gpa, span, addr, static_cast<uint8_t>(e & 7), static_cast<MemType>((e >> 3) & 7)});
    } else {
      walk_table(mem, addr, level - 1, gpa, w);
    }
  }
}

constexpr uint64_t G = 1ull << 30, M = 1ull << 20;

// A machine as firmware leaves it: 6 GiB of RAM (3 GiB below 4 GiB, the
// rest from 4 GiB on), legacy VGA and ROM holes, the PCI hole with a frame
// buffer, local APIC and flash. MTRRs: default UC, WB for RAM below 4 GiB
// in two ranges, WB from 4 GiB, the frame buffer WC, fixed ranges for the
// first MiB (VGA UC, ROMs WP).
struct Machine {
  MemRegion regions[6] = {{Hpa(0), 0xA0000, true},
                          {Hpa(0x100000), 3 * G - 0x100000, true},
                          {Hpa(0xE0000000), 16 * M, false},  // frame buffer
                          {Hpa(0xFEC00000), 0x400000, false},
                          {Hpa(0xFFC00000), 0x400000, false},
                          {Hpa(4 * G), 3 * G, true}};
  MtrrSnapshot mtrrs;
  EptLayout layout;

  explicit Machine(unsigned bits) {
    mtrrs.present = true;
    mtrrs.cap = arch::mtrr::kCapFixed | 8;
    mtrrs.def_type = arch::mtrr::kDefEnable | arch::mtrr::kDefFixedEnable | 0;
    mtrrs.phys_bits = bits;
    mtrrs.fixed[0] = mtrrs.fixed[1] = 0x0606060606060606ull;
    mtrrs.fixed[2] = 0;                                                        // A0000-BFFFF UC
    for (unsigned i = 3; i < 11; ++i) mtrrs.fixed[i] = 0x0505050505050505ull;  // WP
    const uint64_t width = (1ull << bits) - 1;
    auto var = [&](uint32_t i, uint64_t base, uint64_t size, uint64_t type) {
      mtrrs.var[i] = {base | type, (~(size - 1) & width & ~0xFFFull) | arch::mtrr::kMaskValid};
    };
    var(0, 0, 2 * G, 6);
    var(1, 2 * G, 1 * G, 6);
    var(2, 4 * G, 4 * G, 6);  // beyond RAM's end (7 GiB): the MTRR says WB, but it is not RAM
    var(3, 0xE0000000, 16 * M, 1);
    mtrrs.var_count = 8;
    layout.regions = regions;
    layout.region_count = normalize_regions(regions, 6);
    layout.mtrrs = &mtrrs;
    layout.address_bits = bits;
    layout.low_limit = identity_limit(regions, layout.region_count, bits);
    REQUIRE(layout.hide(Hpa(0xBE54000), 0x29E000));  // microhv's block, in RAM
  }

  // What the guest must see at `pa`, from the spec (not from EptLayout).
  MapAttr expected(uint64_t pa) const {
    if (pa >= 0xBE54000 && pa < 0xBE54000 + 0x29E000) return kNotPresent;
    bool ram = false;
    for (const MemRegion& r : regions) ram |= r.ram && pa >= r.base.value() && pa < r.end();
    const MemType t = mtrr_type(mtrrs, pa);
    if (ram) return MapAttr{kPermRwx, t};
    return MapAttr{kPermRwx, t == MemType::kWc ? MemType::kWc : MemType::kUc};
  }

  // Every address where the expected attributes may change, sorted.
  std::vector<uint64_t> edges() const {
    std::vector<uint64_t> e = {0xBE54000, 0xBE54000 + 0x29E000, 0x100000};
    for (const MemRegion& r : regions) {
      e.push_back(r.base.value());
      e.push_back(r.end());
    }
    for (uint64_t a = 0; a < 0x100000; a += 0x1000) e.push_back(a);
    for (uint32_t i = 0; i < mtrrs.var_count; ++i) {
      VariableRange r{};
      if (!variable_range(mtrrs, i, &r)) continue;
      e.push_back(r.start);
      e.push_back(r.end);
    }
    std::sort(e.begin(), e.end());
    return e;
  }
};

// The edges strictly inside [start, end).
template <typename F>
void edges_inside(const std::vector<uint64_t>& edges, uint64_t start, uint64_t end, F f) {
  for (auto it = std::upper_bound(edges.begin(), edges.end(), start);
       it != edges.end() && *it < end; ++it) {
    f(*it);
  }
}

// Walks `ept` and checks it against the machine up to `mapped`.
void check_against(Machine& m, FakePhys& mem, Hpa root, uint64_t mapped) {
  Walk w;
  walk_table(mem, root.value(), 4, 0, &w);
  const std::vector<uint64_t> edges = m.edges();
  uint64_t covered = 0;
  for (const Leaf& l : w.leaves) {
    INFO("leaf GPA 0x" << std::hex << l.gpa << " size 0x" << l.size);
    REQUIRE(l.gpa + l.size <= mapped);
    CHECK(l.hpa == l.gpa);  // identity
    const MapAttr attr{l.perms, l.type};
    CHECK(attr == m.expected(l.gpa));
    // No leaf spans a change of attributes: every edge inside agrees.
    edges_inside(edges, l.gpa, l.gpa + l.size, [&](uint64_t e) { CHECK(m.expected(e) == attr); });
    covered += l.size;
  }
  uint64_t hidden = 0;
  for (const auto& a : w.absent) {
    if (a.first >= mapped) continue;
    const uint64_t end = a.second < mapped ? a.second : mapped;
    INFO("absent 0x" << std::hex << a.first << "..0x" << end);
    CHECK(m.expected(a.first).perms == 0);
    CHECK(m.expected(end - 0x1000).perms == 0);
    hidden += end - a.first;
  }
  CHECK(hidden == 0x29E000);  // exactly microhv's pages are missing
  CHECK(covered + hidden == mapped);
}

uint64_t eager_tables(unsigned bits, unsigned leaf) {
  Machine m(bits);
  FakePhys mem(1u << 20);
  PageTables pt(TableFormat::kEpt, mem, mem, leaf, 4, bits);
  REQUIRE(pt.init());
  REQUIRE(map_identity(pt, m.layout, 0, m.layout.top()));
  return pt.tables_allocated();
}

// Builds GuestEpt for the machine at each width and leaf size of the report.
template <typename F>
void for_each_configuration(F f) {
  for (unsigned bits : {36u, 39u, 46u}) {
    for (unsigned leaf : {3u, 2u}) {
      Machine m(bits);
      FakePhys mem(1u << 20);
      GuestEpt ept(m.layout, mem, mem, leaf);
      REQUIRE(ept.build());
      f(bits, leaf, m, mem, ept);
    }
  }
}

}  // namespace

TEST_CASE("EPT layout: every GPA maps to itself with its MTRR type; microhv's pages are absent") {
  // 4 KiB leaves only: microhv refuses such a processor (vmx/hw/root.cpp).
  for (unsigned leaf : {3u, 2u}) {
    INFO("leaves up to level " << leaf);
    Machine m(39);
    FakePhys mem(1u << 20);
    GuestEpt ept(m.layout, mem, mem, leaf);
    REQUIRE(ept.build());
    check_against(m, mem, ept.root(), ept.mapped_until());
    CHECK(ept.mapped_until() == (leaf == 3 ? 1ull << 39 : m.layout.low_limit));
  }
}

TEST_CASE("EPT layout: spot checks of the machine's types") {
  Machine m(39);
  CHECK(m.layout.identity_attr(Gpa(0x1000)) == (MapAttr{kPermRwx, MemType::kWb}));
  CHECK(m.layout.identity_attr(Gpa(0xB8000)) == (MapAttr{kPermRwx, MemType::kUc}));  // VGA
  CHECK(m.layout.identity_attr(Gpa(0xF0000)) == (MapAttr{kPermRwx, MemType::kUc}));  // ROM: not RAM
  CHECK(m.layout.identity_attr(Gpa(0xE0001000)) == (MapAttr{kPermRwx, MemType::kWc}));
  CHECK(m.layout.identity_attr(Gpa(0xFEE00000)) == (MapAttr{kPermRwx, MemType::kUc}));
  CHECK(m.layout.identity_attr(Gpa(5 * G)) == (MapAttr{kPermRwx, MemType::kWb}));
  CHECK(m.layout.identity_attr(Gpa(7 * G + 0x1000)) == (MapAttr{kPermRwx, MemType::kUc}));
  CHECK(m.layout.identity_attr(Gpa(0xBE54000)) == kNotPresent);
  CHECK(m.layout.identity_attr(Gpa(1ull << 39)) == kNotPresent);
  CHECK(m.layout.kind(Gpa(1ull << 39)) == GpaKind::kBeyondWidth);
  CHECK(m.layout.kind(Gpa((1ull << 52) | 0xBE54000)) == GpaKind::kBeyondWidth);
}

TEST_CASE("EPT layout: microhv's page tables never span two MTRR types") {
  Machine m(39);
  FakePhys mem(1u << 20);
  PageTables host(TableFormat::kHost, mem, mem, 3);
  REQUIRE(host.init());
  REQUIRE(map_host_identity(host, m.mtrrs, 8 * G));
  const std::vector<uint64_t> edges = m.edges();
  // Every leaf: one MTRR type throughout (the host format has no type bits).
  for (uint64_t a = 0; a < 8 * G;) {
    PageTables::Translation t{};
    REQUIRE(host.translate(a, &t));
    const uint64_t size = arch::level_page_size(t.level);
    const uint64_t start = a & ~(size - 1);
    CHECK(t.out == Hpa(a));
    edges_inside(edges, start, start + size, [&](uint64_t e) {
      INFO("host leaf 0x" << std::hex << start << " size 0x" << size << " edge 0x" << e);
      CHECK(mtrr_type(m.mtrrs, e) == mtrr_type(m.mtrrs, start));
    });
    a = start + size;
  }
  // 1 GiB pages where the types allow: 0-2 GiB (WB) is one run of two, 4-8 GiB four.
  PageTables::Translation t{};
  REQUIRE(host.translate(1 * G, &t));
  CHECK(t.level == 3);
  REQUIRE(host.translate(5 * G, &t));
  CHECK(t.level == 3);
  REQUIRE(host.translate(0xE0000000, &t));  // 3-4 GiB holds UC and WC: split
  CHECK(t.level < 3);
}

TEST_CASE("EPT layout: table counts for MAXPHYADDR 36, 39 and 46, with and without 1 GiB pages") {
  // Eagerly mapped: the PML4, one table per 512 GiB (1 GiB leaves) or per
  // GiB (2 MiB leaves), plus the splits of the low 4 GiB (the first MiB's
  // fixed ranges, microhv's block, the frame buffer, the holes).
  const uint64_t splits3 = eager_tables(36, 3) - 2;
  CHECK(identity_table_cost(0, 1ull << 36, 3) == 1);
  CHECK(eager_tables(39, 3) == 2 + splits3);
  CHECK(identity_table_cost(0, 1ull << 46, 3) == 128);
  CHECK(identity_table_cost(0, 1ull << 36, 2) == 1 + 64);
  CHECK(identity_table_cost(0, 1ull << 39, 2) == 1 + 512);
  CHECK(identity_table_cost(0, 1ull << 46, 2) == 128 + 65536);
  // What GuestEpt decides: eager while the part above low_limit costs at
  // most kEagerHighTables, else on demand.
  for_each_configuration([](unsigned, unsigned leaf, Machine& m, FakePhys& mem, GuestEpt& ept) {
    const bool eager =
        identity_table_cost(m.layout.low_limit, m.layout.top(), leaf) <= GuestEpt::kEagerHighTables;
    CHECK(ept.mapped_until() == (eager ? m.layout.top() : m.layout.low_limit));
    CHECK(ept.tables_in_use() <= 1 + identity_table_cost(0, ept.mapped_until(), leaf) + 16);
    check_against(m, mem, ept.root(), ept.mapped_until());
  });
}

// `unit_tests "[report]"` prints the figures README.md quotes, and how long
// building GuestEpt takes on the host (fake memory; a guide, not a bound).
TEST_CASE("EPT layout: report of table counts", "[.][report]") {
  std::printf("MAXPHYADDR  leaves  eager-all tables  GuestEpt at take-over  build (host)\n");
  for_each_configuration([](unsigned bits, unsigned leaf, Machine& m, FakePhys&, GuestEpt& ept) {
    FakePhys again(1u << 20);
    GuestEpt timed(m.layout, again, again, leaf);
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(timed.build());
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    // 46 bits with 2 MiB leaves is 256 MiB of tables: counted, not built.
    const uint64_t splits = eager_tables(36, leaf) - 1 - identity_table_cost(0, 1ull << 36, leaf);
    const uint64_t all = (bits == 46 && leaf == 2)
                             ? 1 + identity_table_cost(0, 1ull << bits, leaf) + splits
                             : eager_tables(bits, leaf);
    std::printf("%10u  %6s  %16llu  %llu (%s)  %lld us\n", bits, leaf == 3 ? "1 GiB" : "2 MiB",
                static_cast<unsigned long long>(all),
                static_cast<unsigned long long>(ept.tables_in_use()),
                ept.mapped_until() == m.layout.top() ? "all eager" : "above 7 GiB on demand",
                static_cast<long long>(us));
  });
}
