// The guest's EPT at run time (vmx/guest_ept.hpp): overlays that move
// without leaking tables and refuse what the guest may not have, the xAPIC
// page, the guest's view for GuestMemory, high MMIO on demand, and what an
// EPT violation means (the decision that stops the guest or not).
#include <catch2/catch.hpp>

#include "tests/unit/ept_rig.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::EptRig;
using microhv::test::kRigHiddenBase;
using microhv::test::kRigHiddenSize;
using microhv::test::kRigOverlayBacking;

namespace {

constexpr OverlayId kHc = OverlayId::kHypercallPage;
constexpr MapAttr kOverlayAttr{kPermR | kPermX, arch::MemType::kWb};

OverlayStatus place(EptRig& r, uint64_t gpa, const char** why = nullptr) {
  const char* w = nullptr;
  const OverlayStatus s = r.ept->place(kHc, Gpa(gpa), &w);
  if (why != nullptr) *why = w;
  return s;
}

// What the page at `gpa` maps to now.
bool maps(EptRig& r, uint64_t gpa, Hpa* out, MapAttr* attr) {
  PageTables::Translation t{};
  if (!r.ept->tables().translate(gpa, &t)) return false;
  *out = t.out;
  *attr = t.attr;
  return true;
}

void check_identity(EptRig& r, uint64_t gpa) {
  Hpa out{0};
  MapAttr attr{};
  INFO("GPA 0x" << std::hex << gpa);
  REQUIRE(maps(r, gpa, &out, &attr));
  CHECK(out == Hpa(gpa));
  CHECK(attr == r.layout.identity_attr(Gpa(gpa)));
}

void check_overlay(EptRig& r, uint64_t gpa) {
  Hpa out{0};
  MapAttr attr{};
  INFO("GPA 0x" << std::hex << gpa);
  REQUIRE(maps(r, gpa, &out, &attr));
  CHECK(out == Hpa(kRigOverlayBacking + (gpa & 0xFFF)));
  CHECK(attr == kOverlayAttr);
}

}  // namespace

TEST_CASE("guest EPT: 10,000 hypercall-page moves leave the page-table pool as it was") {
  EptRig r;
  const uint64_t in_use = r.ept->tables_in_use(), pool = r.pool_free();
  // RAM in a 1 GiB page, on 2 MiB and 1 GiB edges, next to microhv's memory,
  // page 0, legacy and 32-bit MMIO, MMIO above 4 GiB (a 64-bit BAR), and the
  // last page of the 40-bit space.
  const uint64_t spots[] = {0x5000,
                            0x1FF000,
                            0x200000,
                            0x3FFFF000,
                            0x40000000,
                            kRigHiddenBase - 0x1000,
                            kRigHiddenBase + kRigHiddenSize,
                            0x0,
                            0xB8000,
                            0xFEC00000,
                            0xC0000000,
                            0x800000000ull,
                            0x8000001000ull,
                            (1ull << 40) - 0x1000};
  uint64_t prev = ~0ull, most = in_use;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t gpa = spots[(i * 7 + i / 14) % (sizeof(spots) / sizeof(spots[0]))];
    if (gpa == prev) continue;
    REQUIRE(place(r, gpa) == OverlayStatus::kPlaced);
    if (r.ept->tables_in_use() > most) most = r.ept->tables_in_use();
    if (i % 97 == 0) {  // the overlay where it is, the RAM or MMIO back where it was
      check_overlay(r, gpa + 0x10);
      CHECK(r.ept->overlay_at(kHc) == Optional<Gpa>(Gpa(gpa)));
      if (prev != ~0ull) check_identity(r, prev);
    }
    prev = gpa;
  }
  CHECK(most <= in_use + 2);  // one overlay splits at most a 1 GiB and a 2 MiB page
  REQUIRE(r.ept->remove(kHc));
  check_identity(r, prev);
  CHECK(r.ept->tables_in_use() == in_use);
  CHECK(r.pool_free() == pool);
  CHECK_FALSE(r.ept->remove(kHc));  // nothing placed: no change
}

TEST_CASE(
    "guest EPT: an overlay is refused beyond the width, on microhv's memory and the APIC page") {
  EptRig r;
  REQUIRE(place(r, 0x5000) == OverlayStatus::kPlaced);
  REQUIRE(r.ept->protect_apic_page(Gpa(0xFEE00000)));
  const uint64_t in_use = r.ept->tables_in_use();
  const char* why = nullptr;
  // Issue 9 item 1: bit 52 plus a page of microhv's. Refused, and nothing moves.
  CHECK(place(r, (1ull << 52) | kRigHiddenBase, &why) == OverlayStatus::kRefused);
  CHECK(std::string(why) == "beyond the guest's physical address width");
  CHECK(place(r, 1ull << 40, &why) == OverlayStatus::kRefused);
  CHECK(place(r, kRigHiddenBase + 0x10000, &why) == OverlayStatus::kRefused);
  CHECK(std::string(why) == "microhv's memory");
  CHECK(place(r, 0xFEE00000, &why) == OverlayStatus::kRefused);
  CHECK(std::string(why) == "the local APIC page");
  CHECK(r.ept->overlay_at(kHc) == Optional<Gpa>(Gpa(0x5000)));
  check_overlay(r, 0x5000);
  CHECK(r.ept->tables_in_use() == in_use);
  PageTables::Translation t{};
  CHECK_FALSE(r.ept->tables().translate(kRigHiddenBase, &t));
  CHECK_FALSE(r.ept->tables().translate((1ull << 52) | kRigHiddenBase, &t));
  // And the APIC page itself stays read-only UC.
  REQUIRE(r.ept->tables().translate(0xFEE00000, &t));
  CHECK(t.attr == (MapAttr{kPermR, arch::MemType::kUc}));
  CHECK(t.out == Hpa(0xFEE00000));
}

TEST_CASE("guest EPT: a placement that runs out of tables changes nothing") {
  EptRig probe;
  const size_t after_build = probe.mem.pages.size();
  EptRig r(40, 3, nullptr, after_build + 1);  // one spare table: enough for a 2 MiB split only
  REQUIRE(place(r, 0x40000000) == OverlayStatus::kFailed);  // needs a PD and a PT
  CHECK_FALSE(r.ept->overlay_at(kHc));
  check_identity(r, 0x40000000);
  CHECK(r.pool_free() == 1);  // the PD taken on the way came back
  // A page whose 1 GiB is split already needs one PT: that works.
  REQUIRE(place(r, 0x1FF000) == OverlayStatus::kPlaced);
  const char* why = nullptr;
  CHECK(place(r, 0x40000000, &why) == OverlayStatus::kFailed);
  CHECK(std::string(why) == "out of page-table pages");
  CHECK(r.ept->overlay_at(kHc) == Optional<Gpa>(Gpa(0x1FF000)));  // still where it was
  check_overlay(r, 0x1FF000);
  check_identity(r, 0x40000000);
}

TEST_CASE("guest EPT: the guest's view has no overlay, APIC, MMIO or hidden page as RAM") {
  EptRig r;
  REQUIRE(place(r, 0x5000) == OverlayStatus::kPlaced);
  REQUIRE(r.ept->protect_apic_page(Gpa(0xFEE00000)));
  CHECK(r.ept->is_guest_ram(Gpa(0x4000), 0x1000));
  CHECK(r.ept->is_guest_ram(Gpa(0x6000), 8));
  CHECK_FALSE(r.ept->is_guest_ram(Gpa(0x5000), 8));      // the overlay: RAM hidden under it
  CHECK_FALSE(r.ept->is_guest_ram(Gpa(0x4FF8), 16));     // straddling into it
  CHECK_FALSE(r.ept->is_guest_ram(Gpa(0xFEE00000), 4));  // the xAPIC page
  CHECK_FALSE(r.ept->is_guest_ram(Gpa(0xB8000), 8));     // MMIO
  CHECK_FALSE(r.ept->is_guest_ram(Gpa(kRigHiddenBase), 8));
  CHECK_FALSE(r.ept->is_guest_ram(Gpa(0x4000), 0));
  REQUIRE(place(r, 0x9000) == OverlayStatus::kPlaced);
  CHECK(r.ept->is_guest_ram(Gpa(0x5000), 0x1000));  // the RAM is back once the overlay moved
}

// The decision behind "stop only the guest": every violation a guest can
// cause on purpose gets #GP or is emulated or retried; kStop is left for
// what only a microhv bug can produce.
TEST_CASE("guest EPT: what an EPT violation means") {
  EptRig r;
  REQUIRE(place(r, 0x5000) == OverlayStatus::kPlaced);
  REQUIRE(r.ept->protect_apic_page(Gpa(0xFEE00000)));
  namespace q = ept_qual;
  const uint64_t R = q::kRead, W = q::kWrite, X = q::kFetch;
  const uint64_t was_rx = q::kWasReadable | q::kWasExecutable, was_rwx = was_rx | q::kWasWritable;
  struct Case {
    uint64_t gpa, qual;
    EptFault want;
  } cases[] = {
      {kRigHiddenBase + 0x123, R, EptFault::kInjectGp},  // microhv's memory
      {kRigHiddenBase + kRigHiddenSize - 8, W, EptFault::kInjectGp},
      {kRigHiddenBase, X, EptFault::kInjectGp},
      {1ull << 40, R, EptFault::kInjectGp},  // beyond the 40-bit width
      {(1ull << 52) | 0x1000, W, EptFault::kInjectGp},
      {0x5008, W | was_rx, EptFault::kInjectGp},  // a write to the hypercall page
      {0xFEE000B0, W | q::kWasReadable, EptFault::kEmulateApicWrite},
      {0xFEE00000, X | q::kWasReadable, EptFault::kInjectGp},  // a fetch from the APIC page
      {0x6000, W, EptFault::kRetry},                           // allowed now (changed since)
      {0x6000, W | was_rwx, EptFault::kStop},                  // allowed then: inconsistent
      {0x6000, 0, EptFault::kStop},                            // no access at all
  };
  for (const Case& c : cases) {
    INFO("GPA 0x" << std::hex << c.gpa << " qualification 0x" << c.qual);
    CHECK(r.ept->classify(Gpa(c.gpa), c.qual).action == c.want);
  }
  // A guest page microhv maps that is not present, or lacks a permission,
  // is a microhv bug: stop.
  REQUIRE(r.ept->tables().unmap(0x200000, 0x1000));
  CHECK(r.ept->classify(Gpa(0x200008), R).action == EptFault::kStop);
  REQUIRE(
      r.ept->tables().map(0x300000, Hpa(0x300000), 0x1000, MapAttr{kPermR, arch::MemType::kWb}));
  CHECK(r.ept->classify(Gpa(0x300008), W | q::kWasReadable).action == EptFault::kStop);
  // Once the overlay moves on, a write that faulted on it is retried.
  REQUIRE(place(r, 0x9000) == OverlayStatus::kPlaced);
  CHECK(r.ept->classify(Gpa(0x5008), W | was_rx).action == EptFault::kRetry);
}

TEST_CASE("guest EPT: without 1 GiB pages high MMIO is mapped on demand, in bounded tables") {
  EptRig r(40, 2);  // 2 MiB leaves: 1020 PDs to map 4 GiB..1 TiB eagerly; too many
  CHECK(r.ept->mapped_until() == 4ull << 30);
  const uint64_t built = r.ept->tables_in_use();
  CHECK(built < 16);
  const uint64_t bar = 0x8000000000ull + 0x123000;  // a 64-bit BAR (QEMU q35 puts them high)
  PageTables::Translation t{};
  CHECK_FALSE(r.ept->tables().translate(bar, &t));
  REQUIRE(r.ept->classify(Gpa(bar), ept_qual::kRead).action == EptFault::kMapOnDemand);
  REQUIRE(r.on_violation(Gpa(bar), ept_qual::kRead).action == EptFault::kRetry);
  check_identity(r, bar);
  CHECK(r.layout.identity_attr(Gpa(bar)).memtype == arch::MemType::kUc);
  REQUIRE(r.ept->tables().translate(bar + (1ull << 29), &t));  // the whole 1 GiB chunk
  CHECK(t.level == 2);
  CHECK(r.shoot_downs == 0);  // mapping where nothing was needs no invalidation
  // An overlay up there survives the reclaim that touching 1 TiB causes.
  REQUIRE(place(r, 0xC000000000ull) == OverlayStatus::kPlaced);
  uint64_t most = 0;
  for (uint64_t gb = 5; gb < 1024; gb += 3) {
    const uint64_t gpa = gb << 30;
    if (r.ept->classify(Gpa(gpa), ept_qual::kWrite).action != EptFault::kMapOnDemand) continue;
    REQUIRE(r.on_violation(Gpa(gpa), ept_qual::kWrite).action == EptFault::kRetry);
    check_identity(r, gpa);
    if (r.ept->on_demand_tables() > most) most = r.ept->on_demand_tables();
  }
  CHECK(most <= GuestEpt::kOnDemandTables);
  CHECK(r.ept->reclaims() > 0);
  CHECK(r.shoot_downs == static_cast<int>(r.ept->reclaims()));
  CHECK(r.ept->tables_in_use() <= built + GuestEpt::kOnDemandTables + 3);
  check_overlay(r, 0xC000000000ull);
  // The overlay leaves; the identity mapping (or nothing, until touched) stays.
  REQUIRE(r.ept->remove(kHc));
  check_identity(r, 0xC000000000ull);
}

// An overlay placed where nothing is mapped yet (high MMIO, on demand) must
// not leave tables behind when it moves on: the chunk around it is mapped
// first, from the on-demand budget, so the page folds back into its large
// page and the chunk is reclaimed like any other.
TEST_CASE("guest EPT: overlay moves through unmapped high MMIO stay within the on-demand budget") {
  EptRig r(40, 2);
  const uint64_t built = r.ept->tables_in_use();
  uint64_t most = built, prev = ~0ull;
  for (int i = 0; i < 10000; ++i) {
    const uint64_t gpa = ((5 + (static_cast<uint64_t>(i) * 37) % 1015) << 30) + 0x1000 * (i % 7);
    INFO("move " << i << " to GPA 0x" << std::hex << gpa);
    REQUIRE(place(r, gpa) == OverlayStatus::kPlaced);
    if (r.ept->tables_in_use() > most) most = r.ept->tables_in_use();
    if (i % 101 == 0) {
      check_overlay(r, gpa);
      // The page it left: its identity mapping, or nothing until touched.
      PageTables::Translation t{};
      if (prev != ~0ull && r.ept->tables().translate(prev, &t)) check_identity(r, prev);
    }
    prev = gpa;
  }
  CHECK(most <= built + GuestEpt::kOnDemandTables + 3);
  CHECK(r.ept->reclaims() > 0);
  REQUIRE(r.ept->remove(kHc));
  CHECK(r.ept->tables_in_use() <= built + GuestEpt::kOnDemandTables);
  // A guest access anywhere up there still maps on demand.
  const uint64_t bar = (700ull << 30) + 0x5000;
  if (r.ept->classify(Gpa(bar), ept_qual::kRead).action == EptFault::kMapOnDemand) {
    REQUIRE(r.on_violation(Gpa(bar), ept_qual::kRead).action == EptFault::kRetry);
  }
  check_identity(r, bar);
}

TEST_CASE("guest EPT: with 1 GiB pages a 40-bit space is built at once, MMIO above 4 GiB too") {
  EptRig r(40, 3);
  CHECK(r.ept->mapped_until() == 1ull << 40);
  check_identity(r, 0x8000000000ull);
  PageTables::Translation t{};
  REQUIRE(r.ept->tables().translate(0x8000000000ull, &t));
  CHECK(t.level == 3);
  // Mapped: a read that faulted there can only be stale (retry), or
  // inconsistent if the entry allowed it (stop); never "map on demand".
  CHECK(r.ept->classify(Gpa(0x8000000000ull), ept_qual::kRead).action == EptFault::kRetry);
  CHECK(r.ept->classify(Gpa(0x8000000000ull), ept_qual::kRead | ept_qual::kWasReadable).action ==
        EptFault::kStop);
}
