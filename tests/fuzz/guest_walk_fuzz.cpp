// libFuzzer target for the guest page walk the exit handlers use to fetch
// an instruction (vmx/guest_walk.hpp). The fuzzer builds the guest's page
// tables itself, in one of the four modes (no paging; 32-bit paging with or
// without PSE 4 MiB pages; PAE; 4-level with 2 MiB and 1 GiB pages; SDM Vol.
// 3 chapter 4), from a list of mappings, and keeps the list: the expected
// translation of any linear address is a lookup in it, never a walk. Then:
//  - every queried address translates exactly as the list says, or fails
//    when nothing maps it or a table it needs lies outside guest RAM;
//  - a fetch returns the bytes of the mapped pages, in order, across page
//    boundaries, and stops at the first page that does not translate;
//  - with random bytes written over the tables afterwards, nothing faults
//    and every read stays inside guest RAM (the fake refuses the rest).
#include <vector>

#include "arch/paging.hpp"
#include "arch/x86.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/unit/fakes.hpp"
#include "vmx/guest_walk.hpp"

using namespace microhv;
using namespace microhv::fuzz;

namespace {

constexpr uint64_t kPages = 64;      // guest RAM
constexpr uint64_t kHoleStart = 60;  // pages 60..63: not RAM
constexpr uint64_t kTableBase = 1;   // tables from page 1 on; data pages from 32

enum class Mode { kNone, k32, kPae, k4Level };

struct Mapping {
  uint64_t linear, physical, size;
};

struct Tables {
  Tables(test::FakeMemory& m, Mode md, bool p) : mem(m), mode(md), pse(p) {}
  test::FakeMemory& mem;
  Mode mode;
  bool pse;
  uint64_t next_table = kTableBase;
  uint64_t root = 0;
  std::vector<Mapping> maps;
  bool broken_root = false;

  // A fresh (zeroed) table page; 0 when pages 1..31 are used up.
  uint64_t new_table() { return next_table < 32 ? kPageSize * next_table++ : 0; }
  uint64_t entry_size() const { return mode == Mode::k32 ? 4 : 8; }
  uint64_t read(uint64_t gpa) const {
    return entry_size() == 4 ? mem.load<uint32_t>(gpa) : mem.load<uint64_t>(gpa);
  }
  void write(uint64_t gpa, uint64_t v) {
    if (entry_size() == 4) {
      mem.store<uint32_t>(gpa, static_cast<uint32_t>(v));
    } else {
      mem.store<uint64_t>(gpa, v);
    }
  }
  bool covered(uint64_t linear, uint64_t size) const {
    for (const Mapping& m : maps) {
      if (linear < m.linear + m.size && m.linear < linear + size) return true;
    }
    return false;
  }

  // Levels from the root down: shift of the index and its width.
  struct Level {
    unsigned shift, bits;
  };
  std::vector<Level> levels() const {
    switch (mode) {
      case Mode::k32:
        return {{22, 10}, {12, 10}};
      case Mode::kPae:
        return {{30, 2}, {21, 9}, {12, 9}};
      default:
        return {{39, 9}, {30, 9}, {21, 9}, {12, 9}};
    }
  }
  // Noise in bits that do not change the translation: R/W, U/S, PWT, PCD,
  // A, D, G, the bits software may use, and XD where entries have it.
  uint64_t noise(Reader& in) const {
    uint64_t n = in.take<uint16_t>() & 0xE7E;  // bits 1-6, 8-11
    if (mode != Mode::k32 && in.flag()) n |= 1ull << 63;
    return n;
  }

  // Maps `size` bytes at `linear` to `physical` through a leaf at the level
  // whose page has that size, if no mapping overlaps it.
  void map(Reader& in, uint64_t linear, uint64_t physical, uint64_t size) {
    if (covered(linear, size)) return;
    const std::vector<Level> ls = levels();
    uint64_t table = root;
    for (size_t i = 0; i < ls.size(); ++i) {
      const uint64_t page = 1ull << ls[i].shift;
      const uint64_t slot =
          table + ((linear >> ls[i].shift) & ((1ull << ls[i].bits) - 1)) * entry_size();
      const bool leaf = page == size;
      if (leaf) {
        uint64_t e = physical | 1 | noise(in);
        if (page != kPageSize) {
          e |= arch::pte::kLarge;
          if (mode == Mode::k32) {  // PSE-36: physical bits 39:32 in bits 20:13
            e = (physical & 0xFFC00000ull) | ((physical >> 32) & 0xFF) << 13 | 1 |
                arch::pte::kLarge | (noise(in) & 0xFFFFFFFF);
          }
        }
        write(slot, e);
        maps.push_back({linear, physical, size});
        return;
      }
      uint64_t e = read(slot);
      if ((e & 1) == 0) {
        const uint64_t next = new_table();
        if (next == 0) return;  // out of table pages: the mapping is not made
        e = next | 1 | (mode == Mode::kPae && i == 0 ? 0 : noise(in) & ~arch::pte::kLarge);
        write(slot, e);
      } else if ((e & arch::pte::kLarge) != 0) {
        return;  // a large page is in the way (covered() saw it already)
      }
      table = e & (entry_size() == 4 ? 0xFFFFF000ull : 0x000FFFFFFFFFF000ull);
    }
  }
};

Mode mode_of(uint32_t m) {
  return static_cast<Mode>(m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One memory for every input: data pages 32..59 hold their own number
  // (so fetched bytes say where they came from) and never change; the table
  // pages below them are cleared per input.
  static test::FakeMemory* mem = [] {
    auto* m = new test::FakeMemory(kPages);
    m->hole_start = kHoleStart * kPageSize;
    m->hole_end = kPages * kPageSize;
    for (uint64_t p = 32; p < kHoleStart; ++p) {
      for (uint64_t i = 0; i < kPageSize; i += 8)
        m->store<uint64_t>(p * kPageSize + i, p << 32 | i);
    }
    return m;
  }();
  std::memset(mem->bytes.data(), 0, 32 * kPageSize);
  Reader in{data, size};
  Tables t{*mem, mode_of(in.pick(4)), in.flag()};
  vmx::GuestPaging paging{};
  paging.cr0 = t.mode == Mode::kNone ? 0 : arch::cr0::kPg;
  paging.cr4 = t.mode == Mode::kPae ? arch::cr4::kPae : (t.pse ? arch::cr4::kPse : 0);
  paging.efer = t.mode == Mode::k4Level ? arch::efer::kLma : 0;
  if (t.mode == Mode::kPae) {
    t.root = t.new_table() + 32 * in.pick(8);  // a 32-byte aligned PDPT anywhere in a page
  } else {
    t.root = t.new_table();
  }
  if (in.pick(16) == 0) t.root = kHoleStart * kPageSize;  // the root itself outside RAM
  paging.cr3 = t.root;
  const bool writable_root = mem->is_ram(Gpa(t.root), 8);

  const uint64_t linear_mask = t.mode == Mode::k4Level ? (1ull << 48) - 1 : 0xFFFFFFFFull;
  const uint32_t n_maps = writable_root ? in.pick(12) : 0;
  for (uint32_t i = 0; i < n_maps && t.mode != Mode::kNone; ++i) {
    const uint32_t kind = in.pick(3);
    uint64_t page = kPageSize;
    if (kind == 1 && (t.mode != Mode::k32 || t.pse))
      page = t.mode == Mode::k32 ? 1ull << 22 : 1ull << 21;
    if (kind == 2 && t.mode == Mode::k4Level) page = 1ull << 30;
    const uint64_t linear = (in.take<uint64_t>() & linear_mask) & ~(page - 1);
    uint64_t physical =
        page == kPageSize ? (32 + in.pick(28)) * kPageSize : in.take<uint64_t>() & ~(page - 1);
    physical &= t.mode == Mode::k32 ? 0xFFFFFFFFFFull : 0x000FFFFFFFFFFFFFull;
    if (t.mode == Mode::k32 && page == kPageSize) physical &= 0xFFFFFFFFull;
    t.map(in, linear, physical, page);
  }

  // Queries: mapped addresses (and their neighbours), and anything.
  for (uint32_t q = 0; q < 8; ++q) {
    uint64_t linear = in.take<uint64_t>() & linear_mask;
    if (!t.maps.empty() && in.pick(4) != 0) {
      const Mapping& m = t.maps[in.pick(static_cast<uint32_t>(t.maps.size()))];
      linear = m.linear + in.take<uint64_t>() % m.size;
    }
    Gpa gpa(0);
    const bool ok = vmx::guest_linear_to_physical(*mem, paging, linear, &gpa);
    if (t.mode == Mode::kNone) {
      expect(ok && gpa.value() == (linear & 0xFFFFFFFFull), "no paging: linear is physical");
      continue;
    }
    const Mapping* hit = nullptr;
    for (const Mapping& m : t.maps) {
      if (linear >= m.linear && linear < m.linear + m.size) hit = &m;
    }
    expect(ok == (hit != nullptr),
           ok ? "an unmapped address translated" : "a mapped address failed");
    if (hit != nullptr) {
      expect(gpa.value() == hit->physical + (linear - hit->linear), "wrong translation");
    }
    // A fetch across pages: bytes as mapped, up to the first hole.
    uint8_t got[24] = {};
    const uint64_t at = (linear | 0xFF8) - in.pick(24);
    // In 32-bit modes linear addresses wrap at 4 GiB; in 4-level paging a
    // fetch running past the top of the 48-bit space is non-canonical and
    // faults on the CPU: nothing to compare there.
    if (t.mode == Mode::k4Level && at + sizeof(uint8_t[24]) > linear_mask) continue;
    const uint32_t n = vmx::fetch_guest_bytes(*mem, paging, at, got, sizeof(got));
    auto lin = [&](uint32_t i) { return (at + i) & linear_mask; };
    uint32_t want = 0;
    for (; want < sizeof(got); ++want) {
      const Mapping* m = nullptr;
      for (const Mapping& c : t.maps) {
        if (lin(want) >= c.linear && lin(want) < c.linear + c.size) m = &c;
      }
      if (m == nullptr) break;
      const uint64_t phys = m->physical + (lin(want) - m->linear);
      if (!mem->is_ram(Gpa(phys), 1)) break;
      expect(got[want] == mem->bytes[phys], "a fetched byte differs from guest memory");
    }
    expect(n == want, "the fetch stopped at the wrong byte");
  }

  // Garbage over the tables: only the absence of faults and of reads
  // outside guest RAM (the fake memory refuses them) is required.
  for (uint32_t i = 0; i < 4 && !in.empty(); ++i) {
    const uint64_t at = (kTableBase * kPageSize + in.take<uint16_t>() % (31 * kPageSize)) & ~7ull;
    mem->store<uint64_t>(at, in.take<uint64_t>());
    uint8_t bytes[15];
    vmx::fetch_guest_bytes(*mem, paging, in.take<uint64_t>(), bytes, sizeof(bytes));
  }
  return 0;
}
