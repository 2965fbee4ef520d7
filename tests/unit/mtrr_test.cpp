// MTRR decoding (vmx/mtrr_types.hpp) against SDM Vol. 3A 12.11: the fixed-range
// layout (12.11.2.2, Table 12-9), variable ranges (12.11.2.3), the
// precedence rules (12.11.4.1) and the SDM's own example (12.11.4); then a
// randomized comparison with an independent reading of the same rules, and
// the runs (mtrr_run_end) the page-table builders rely on.
#include <catch2/catch.hpp>
#include <random>

#include "vmx/mtrr_types.hpp"

using namespace microhv;
using namespace microhv::vmx;
using arch::MemType;

namespace {

constexpr uint64_t kE = arch::mtrr::kDefEnable, kFe = arch::mtrr::kDefFixedEnable;
constexpr uint64_t kValid = arch::mtrr::kMaskValid;

MtrrSnapshot machine(unsigned phys_bits = 40) {
  MtrrSnapshot s;
  s.present = true;
  s.cap = arch::mtrr::kCapFixed | 8;
  s.phys_bits = phys_bits;
  s.var_count = 8;
  return s;
}

// A variable range [base, base + size), size a power of two, aligned.
void set_var(MtrrSnapshot& s, uint32_t i, uint64_t base, uint64_t size, MemType t) {
  const uint64_t width = (1ull << s.phys_bits) - 1;
  s.var[i].base = base | static_cast<uint64_t>(t);
  s.var[i].mask = (~(size - 1) & width & ~0xFFFull) | kValid;
}

uint64_t all_bytes(uint8_t t) {
  return 0x0101010101010101ull * t;
}

}  // namespace

TEST_CASE("MTRR: disabled MTRRs make everything UC; no MTRRs at all leave WB (PAT alone)") {
  MtrrSnapshot s = machine();
  s.def_type = 6;  // WB default, but E = 0
  set_var(s, 0, 0, 1ull << 30, MemType::kWb);
  CHECK(mtrr_type(s, 0x1000) == MemType::kUc);
  CHECK(mtrr_type(s, 0x40000000) == MemType::kUc);
  CHECK(mtrr_run_end(s, 0, 1ull << 40) == 1ull << 40);
  MtrrSnapshot none;
  CHECK(mtrr_type(none, 0x1000) == MemType::kWb);
}

TEST_CASE("MTRR: the fixed ranges cover the first MiB in 64K, 16K and 4K steps (Table 12-9)") {
  MtrrSnapshot s = machine();
  s.def_type = kE | kFe | 0;
  s.fixed[0] = 0x0000000000000006ull;                           // 0-64K WB, 64K-512K UC
  s.fixed[1] = 0x0100000000000000ull;                           // 0x9C000-0x9FFFF WC
  s.fixed[2] = all_bytes(0);                                    // A0000-BFFFF UC (legacy VGA)
  for (unsigned i = 3; i < 11; ++i) s.fixed[i] = all_bytes(5);  // C0000-FFFFF WP
  s.fixed[10] = 0x0605050505050505ull;                          // F8000 WP .. FF000 WB
  set_var(s, 0, 0, 1ull << 31, MemType::kWb);
  CHECK(mtrr_type(s, 0x0) == MemType::kWb);
  CHECK(mtrr_type(s, 0xFFFF) == MemType::kWb);
  CHECK(mtrr_type(s, 0x10000) == MemType::kUc);
  CHECK(mtrr_type(s, 0x9BFFF) == MemType::kUc);
  CHECK(mtrr_type(s, 0x9C000) == MemType::kWc);
  CHECK(mtrr_type(s, 0xA0000) == MemType::kUc);
  CHECK(mtrr_type(s, 0xC0000) == MemType::kWp);
  CHECK(mtrr_type(s, 0xF8000) == MemType::kWp);
  CHECK(mtrr_type(s, 0xFF000) == MemType::kWb);
  CHECK(mtrr_type(s, 0x100000) == MemType::kWb);  // above 1 MiB: the variable range
  // Runs end where the type changes, at fixed sub-range granularity.
  CHECK(mtrr_run_end(s, 0, 1ull << 32) == 0x10000);
  CHECK(mtrr_run_end(s, 0x10000, 1ull << 32) == 0x9C000);
  CHECK(mtrr_run_end(s, 0x9C000, 1ull << 32) == 0xA0000);
  CHECK(mtrr_run_end(s, 0xA0000, 1ull << 32) == 0xC0000);
  CHECK(mtrr_run_end(s, 0xC0000, 1ull << 32) == 0xFF000);
  CHECK(mtrr_run_end(s, 0xFF000, 1ull << 32) == 1ull << 31);  // WB from FF000 on, across 1 MiB
  // Fixed ranges off (FE = 0): the first MiB follows the variable ranges.
  s.def_type = kE | 0;
  CHECK(mtrr_type(s, 0xA0000) == MemType::kWb);
  // Fixed ranges on but the processor has none (MTRRCAP.FIX = 0): the same.
  s.def_type = kE | kFe;
  s.cap = 8;
  CHECK(mtrr_type(s, 0xA0000) == MemType::kWb);
}

// SDM Vol. 3A 12.11.4 (11.11.4 in older editions): the example for a system
// with 96 MiB of RAM and a 8 MiB frame buffer at 0xA0000000, MAXPHYADDR 40.
TEST_CASE("MTRR: the SDM's example set-up decodes as the SDM describes it") {
  MtrrSnapshot s = machine(40);
  s.def_type = kE | 0;                                        // default UC
  s.var[0] = {0x0000000000000006ull, 0x000000FFFC000800ull};  // 0-64 MiB WB
  s.var[1] = {0x0000000004000006ull, 0x000000FFFE000800ull};  // 64-96 MiB WB
  s.var[2] = {0x0000000006000006ull, 0x000000FFFFC00800ull};  // 96-100 MiB WB
  s.var[3] = {0x0000000004000000ull, 0x000000FFFFC00800ull};  // 64-68 MiB UC
  s.var[4] = {0x0000000000F00000ull, 0x000000FFFFF00800ull};  // 15-16 MiB UC
  s.var[5] = {0x00000000A0000001ull, 0x000000FFFF800800ull};  // A0000000-A0800000 WC
  constexpr uint64_t M = 1ull << 20;
  CHECK(mtrr_type(s, 10 * M) == MemType::kWb);
  CHECK(mtrr_type(s, 15 * M) == MemType::kUc);  // WB and UC overlap: UC
  CHECK(mtrr_type(s, 65 * M) == MemType::kUc);  // WB and UC overlap: UC
  CHECK(mtrr_type(s, 70 * M) == MemType::kWb);
  CHECK(mtrr_type(s, 99 * M) == MemType::kWb);
  CHECK(mtrr_type(s, 100 * M) == MemType::kUc);  // default
  CHECK(mtrr_type(s, 0xA0400000) == MemType::kWc);
  CHECK(mtrr_type(s, 0xA0800000) == MemType::kUc);
  CHECK(mtrr_run_end(s, 0, 1ull << 32) == 15 * M);
  CHECK(mtrr_run_end(s, 16 * M, 1ull << 32) == 64 * M);
  CHECK(mtrr_run_end(s, 68 * M, 1ull << 32) == 100 * M);  // 68-96 and 96-100 join: both WB
  CHECK(mtrr_run_end(s, 100 * M, 1ull << 32) == 0xA0000000);
  CHECK(mtrr_run_end(s, 0xA0000000, 1ull << 32) == 0xA0800000);
  VariableRange r{};
  REQUIRE(variable_range(s, 5, &r));
  CHECK(r.start == 0xA0000000);
  CHECK(r.end == 0xA0800000);
  CHECK(r.contiguous);
  CHECK_FALSE(variable_range(s, 6, &r));  // not valid
  CHECK_FALSE(variable_range(s, 8, &r));  // beyond VCNT
}

TEST_CASE("MTRR: overlaps other than UC-wins and WT-with-WB, and reserved types, are UC") {
  MtrrSnapshot s = machine();
  s.def_type = kE | 6;
  set_var(s, 0, 0x40000000, 0x40000000, MemType::kWt);
  set_var(s, 1, 0x40000000, 0x10000000, MemType::kWb);
  set_var(s, 2, 0x80000000, 0x10000000, MemType::kWc);
  set_var(s, 3, 0x80000000, 0x10000000, MemType::kWb);
  set_var(s, 4, 0xC0000000, 0x10000000, MemType::kWp);
  set_var(s, 5, 0xC0000000, 0x10000000, MemType::kWp);
  s.var[6].base = 0xD0000000 | 2;  // reserved type 2
  s.var[6].mask = (~0xFFFFFFFull & 0xFFFFFFFFFFull) | kValid;
  CHECK(mtrr_type(s, 0x40000000) == MemType::kWt);  // WT + WB: WT
  CHECK(mtrr_type(s, 0x50000000) == MemType::kWt);
  CHECK(mtrr_type(s, 0x80000000) == MemType::kUc);  // WC + WB: undefined in the SDM -> UC
  CHECK(mtrr_type(s, 0xC0000000) == MemType::kWp);  // identical types
  CHECK(mtrr_type(s, 0xD0000000) == MemType::kUc);  // reserved type
  CHECK(mtrr_type(s, 0xE0000000) == MemType::kWb);  // default
  s.def_type = kE | 3;                              // reserved default type
  CHECK(mtrr_type(s, 0xE0000000) == MemType::kUc);
}

TEST_CASE("MTRR: mask bits above MAXPHYADDR do not count; a non-contiguous mask covers its span") {
  MtrrSnapshot s = machine(36);
  s.def_type = kE | 0;
  s.var[0] = {0x100000000ull | 6, 0xFFFFFF00000000ull | 0xF00000000ull | kValid};  // 4-8 GiB
  VariableRange r{};
  REQUIRE(variable_range(s, 0, &r));
  CHECK(r.start == 0x100000000ull);
  CHECK(r.end == 0x200000000ull);
  CHECK(mtrr_type(s, 0x180000000ull) == MemType::kWb);
  // Non-contiguous: bits 35:32 and 29:12 set, 31:30 clear -> the SDM would
  // match four 4 KiB pages 1 GiB apart from 16 GiB on; microhv takes the
  // span from the first to the last, [16 GiB, 19 GiB + 4 KiB).
  s.var[1] = {0x400000000ull | 1, 0xF3FFFF000ull | kValid};
  REQUIRE(variable_range(s, 1, &r));
  CHECK_FALSE(r.contiguous);
  CHECK(r.start == 0x400000000ull);
  CHECK(r.end == 0x4C0001000ull);
  CHECK(mtrr_type(s, 0x420000000ull) == MemType::kWc);  // between two matches: in the span
  CHECK(mtrr_type(s, 0x4C0001000ull) == MemType::kUc);
}

namespace {

// An independent reading of SDM 12.11.4.1 with exact mask matching.
MemType reference_type(const MtrrSnapshot& s, uint64_t pa) {
  if ((s.def_type & kE) == 0) return MemType::kUc;
  auto valid = [](uint64_t t) { return t == 0 || t == 1 || t == 4 || t == 5 || t == 6; };
  if (pa < 0x100000 && (s.def_type & kFe) != 0 && (s.cap & arch::mtrr::kCapFixed) != 0) {
    unsigned msr = 0, field = 0;
    if (pa < 0x80000) {
      field = static_cast<unsigned>(pa >> 16);
    } else if (pa < 0xC0000) {
      msr = 1 + static_cast<unsigned>((pa - 0x80000) / 0x20000);
      field = static_cast<unsigned>(((pa - 0x80000) % 0x20000) >> 14);
    } else {
      msr = 3 + static_cast<unsigned>((pa - 0xC0000) / 0x8000);
      field = static_cast<unsigned>(((pa - 0xC0000) % 0x8000) >> 12);
    }
    const uint64_t t = (s.fixed[msr] >> (8 * field)) & 0xFF;
    return valid(t) ? static_cast<MemType>(t) : MemType::kUc;
  }
  const uint64_t width = (1ull << s.phys_bits) - 1;
  int matches = 0;
  bool uc = false, wt = false, wb = false, other = false;
  uint64_t first = 0;
  for (uint32_t i = 0; i < s.var_count; ++i) {
    if ((s.var[i].mask & kValid) == 0) continue;
    const uint64_t mask = s.var[i].mask & width & ~0xFFFull;
    if ((pa & mask) != (s.var[i].base & mask)) continue;
    uint64_t t = s.var[i].base & 0xFF;
    if (!valid(t)) t = 0;
    if (matches++ == 0) first = t;
    uc |= t == 0;
    wt |= t == 4;
    wb |= t == 6;
    other |= t != first;
  }
  if (matches == 0) {
    const uint64_t t = s.def_type & 0xFF;
    return valid(t) ? static_cast<MemType>(t) : MemType::kUc;
  }
  if (uc) return MemType::kUc;
  if (!other) return static_cast<MemType>(first);
  if (wt && wb) {
    bool only = true;
    for (uint32_t i = 0; i < s.var_count; ++i) {
      const uint64_t mask = s.var[i].mask & width & ~0xFFFull;
      if ((s.var[i].mask & kValid) != 0 && (pa & mask) == (s.var[i].base & mask)) {
        const uint64_t t = s.var[i].base & 0xFF;
        only = only && (t == 4 || t == 6);
      }
    }
    if (only) return MemType::kWt;
  }
  return MemType::kUc;
}

}  // namespace

TEST_CASE("MTRR: random configurations agree with the SDM rules, and runs never hide a change") {
  std::mt19937_64 rng(9);
  const MemType types[] = {MemType::kUc, MemType::kWc, MemType::kWt, MemType::kWp, MemType::kWb};
  for (int round = 0; round < 300; ++round) {
    MtrrSnapshot s = machine(36 + static_cast<unsigned>(rng() % 11));
    s.def_type = kE | (rng() % 2 ? kFe : 0) | static_cast<uint64_t>(types[rng() % 5]);
    for (uint64_t& f : s.fixed) {
      for (unsigned b = 0; b < 8; ++b) f |= static_cast<uint64_t>(types[rng() % 5]) << (8 * b);
    }
    for (uint32_t i = 0; i < 8; ++i) {
      if (rng() % 4 == 0) continue;
      const unsigned size_bits = 12 + static_cast<unsigned>(rng() % (s.phys_bits - 12));
      const uint64_t base = (rng() & ((1ull << s.phys_bits) - 1)) & ~((1ull << size_bits) - 1);
      set_var(s, i, base, 1ull << size_bits, types[rng() % 5]);
    }
    const uint64_t top = 1ull << s.phys_bits;
    // Every address where a type can change: fixed sub-ranges, 1 MiB, the
    // variable ranges' edges. Probe at and just below each, and at random.
    std::vector<uint64_t> edges;
    for (uint64_t a = 0x10000; a <= 0x80000; a += 0x10000) edges.push_back(a);
    for (uint64_t a = 0x84000; a <= 0xC0000; a += 0x4000) edges.push_back(a);
    for (uint64_t a = 0xC1000; a <= 0x100000; a += 0x1000) edges.push_back(a);
    for (uint32_t i = 0; i < 8; ++i) {
      VariableRange r{};
      if (!variable_range(s, i, &r)) continue;
      edges.push_back(r.start);
      edges.push_back(r.end);
    }
    std::vector<uint64_t> probes;
    for (uint64_t e : edges) {
      if (e >= 0x1000 && e < top) probes.push_back(e - 0x1000);
      if (e < top) probes.push_back(e);
    }
    for (int i = 0; i < 40; ++i) probes.push_back((rng() % top) & ~0xFFFull);
    for (int i = 0; i < 40; ++i) probes.push_back((rng() % 0x100000) & ~0xFFFull);
    for (uint64_t p : probes) {
      INFO("round " << round << " pa 0x" << std::hex << p);
      REQUIRE(mtrr_type(s, p) == reference_type(s, p));
      const uint64_t end = mtrr_run_end(s, p, top);
      REQUIRE(end > p);
      REQUIRE(end <= top);
      REQUIRE((end & 0xFFF) == 0);
      if (end < top) CHECK(reference_type(s, end) != reference_type(s, p));
      // Inside the run the type cannot change: check it at every edge there.
      for (uint64_t e : edges) {
        if (e > p && e < end) REQUIRE(reference_type(s, e) == reference_type(s, p));
      }
    }
  }
}
