// The ACPI DMAR table parser (VT-d spec chapter 8): QEMU's table as
// captured, a server-like table, which unit a device's DMA goes through
// (8.3, 8.3.1), and malformed tables, each refused with a message that says
// what is wrong.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "arch/vtd.hpp"
#include "tests/unit/vtd_fakes.hpp"
#include "vmx/vtd/dmar.hpp"
#include "vmx/vtd/scope.hpp"

using namespace microhv::vtd;
using microhv::vtd::test::kQemuDevices;
using microhv::vtd::test::kQemuDmarAw39;
using microhv::vtd::test::kQemuDmarAw48Diff;

namespace {

// Builds DMAR tables structure by structure; finish() fixes Length and the
// checksum. Structures and scopes are appended in order; a scope goes into
// the structure opened last.
class DmarBuilder {
 public:
  explicit DmarBuilder(uint8_t host_address_width = 38, uint8_t flags = 0) {
    bytes_.assign(48, 0);
    std::memcpy(bytes_.data(), "DMAR", 4);
    bytes_[8] = 1;  // revision
    std::memcpy(bytes_.data() + 10, "MICRHV", 6);
    bytes_[36] = host_address_width;
    bytes_[37] = flags;
  }
  DmarBuilder& drhd(uint64_t base, bool include_all = false, uint16_t segment = 0,
                    uint8_t size = 0) {
    open(0, 16);
    bytes_[open_ + 4] = include_all ? 1 : 0;
    bytes_[open_ + 5] = size;
    put16(open_ + 6, segment);
    put64(open_ + 8, base);
    return *this;
  }
  DmarBuilder& rmrr(uint64_t base, uint64_t limit, uint16_t segment = 0) {
    open(1, 24);
    put16(open_ + 6, segment);
    put64(open_ + 8, base);
    put64(open_ + 16, limit);
    return *this;
  }
  DmarBuilder& other(uint16_t type, uint16_t length) {
    open(type, length);
    return *this;
  }
  DmarBuilder& scope(uint8_t type, uint8_t bus, std::vector<std::pair<uint8_t, uint8_t>> path,
                     uint8_t enumeration_id = 0) {
    const size_t at = bytes_.size();
    bytes_.resize(at + 6 + 2 * path.size(), 0);
    bytes_[at] = type;
    bytes_[at + 1] = static_cast<uint8_t>(6 + 2 * path.size());
    bytes_[at + 4] = enumeration_id;
    bytes_[at + 5] = bus;
    for (size_t i = 0; i < path.size(); ++i) {
      bytes_[at + 6 + 2 * i] = path[i].first;
      bytes_[at + 7 + 2 * i] = path[i].second;
    }
    grow();
    return *this;
  }
  std::vector<uint8_t> finish() {
    std::vector<uint8_t> t = bytes_;
    put32(t, 4, static_cast<uint32_t>(t.size()));
    fix_checksum(t);
    return t;
  }
  static void fix_checksum(std::vector<uint8_t>& t) {
    t[9] = 0;
    uint8_t sum = 0;
    for (size_t i = 0; i < t.size(); ++i) sum = static_cast<uint8_t>(sum + t[i]);
    t[9] = static_cast<uint8_t>(-sum);
  }
  static void put32(std::vector<uint8_t>& t, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) t.at(at + i) = static_cast<uint8_t>(v >> (8 * i));
  }

 private:
  void open(uint16_t type, uint16_t length) {
    open_ = bytes_.size();
    bytes_.resize(open_ + length, 0);
    put16(open_, type);
    put16(open_ + 2, length);
  }
  void grow() { put16(open_ + 2, static_cast<uint16_t>(bytes_.size() - open_)); }
  void put16(size_t at, uint16_t v) {
    bytes_[at] = static_cast<uint8_t>(v);
    bytes_[at + 1] = static_cast<uint8_t>(v >> 8);
  }
  void put64(size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes_[at + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  std::vector<uint8_t> bytes_;
  size_t open_ = 0;
};

struct Parsed {
  bool ok;
  std::string error;
  std::unique_ptr<DmarInfo> info = std::make_unique<DmarInfo>();
};

// Parses from a heap copy of exactly `available` bytes, so ASan catches any
// read past what the parser was given.
Parsed parse(const std::vector<uint8_t>& t, size_t available) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[available]);
  std::memcpy(copy.get(), t.data(), std::min(available, t.size()));
  Parsed p;
  char error[200];
  p.ok = parse_dmar(copy.get(), available, p.info.get(), error, sizeof(error));
  p.error = error;
  return p;
}
Parsed parse(const std::vector<uint8_t>& t) {
  return parse(t, t.size());
}

std::vector<uint8_t> qemu_table() {
  return std::vector<uint8_t>(kQemuDmarAw39, kQemuDmarAw39 + sizeof(kQemuDmarAw39));
}

uint16_t sid(unsigned bus, unsigned dev, unsigned fn) {
  return static_cast<uint16_t>(bus << 8 | dev << 3 | fn);
}

// Refused, with a message that starts "DMAR: " and contains `what`, and
// nothing left in the output.
void require_refused(const std::vector<uint8_t>& t, const std::string& what, size_t available = 0) {
  const Parsed p = parse(t, available == 0 ? t.size() : available);
  INFO(p.error);
  CHECK_FALSE(p.ok);
  CHECK(p.error.rfind("DMAR: ", 0) == 0);
  CHECK(p.error.find(what) != std::string::npos);
  CHECK(p.info->unit_count == 0);
  CHECK(p.info->scope_count == 0);
}

}  // namespace

TEST_CASE("DMAR: QEMU 7.2 q35 intel-iommu table as captured") {
  const Parsed p = parse(qemu_table());
  INFO(p.error);
  REQUIRE(p.ok);
  const DmarInfo& d = *p.info;
  CHECK(d.address_bits == 39);  // Host Address Width 38 = 39-bit (8.1)
  CHECK(d.flags == microhv::arch::vtd::kDmarFlagIntrRemap);
  REQUIRE(d.unit_count == 1);
  CHECK(d.units[0].register_base == microhv::Hpa(0xfed90000));
  CHECK(d.units[0].register_pages == 1);
  CHECK(d.units[0].segment == 0);
  CHECK_FALSE(d.units[0].include_pci_all);
  CHECK(d.region_count == 0);
  CHECK(d.skipped_structures == 0);
  REQUIRE(d.units[0].scope_count == 7);
  const DeviceScope& ioapic = d.scopes[d.units[0].first_scope];
  CHECK(ioapic.type == microhv::arch::vtd::kScopeIoapic);
  CHECK(ioapic.start_bus == 0xff);
  const uint16_t endpoints[] = {sid(0, 0, 0),    sid(0, 1, 0),    sid(0, 2, 0),
                                sid(0, 0x1f, 0), sid(0, 0x1f, 2), sid(0, 0x1f, 3)};
  for (unsigned i = 0; i < 6; ++i) {
    const DeviceScope& s = d.scopes[d.units[0].first_scope + 1 + i];
    CHECK(s.type == microhv::arch::vtd::kScopeEndpoint);
    CHECK(s.hops == 1);
    CHECK(s.source_id() == endpoints[i]);
  }
  // No INCLUDE_PCI_ALL: from the table alone, unlisted devices are uncovered.
  CHECK_FALSE(covers_all_pci_devices(d));
  // With the machine's functions: every one is behind the unit; a function
  // the table does not list would not be.
  for (const PciFunctionInfo& f : kQemuDevices) {
    CHECK(unit_for_device(d, kQemuDevices, 6, f) == 0);
  }
  CHECK(unit_for_device(d, kQemuDevices, 6, PciFunctionInfo{0, sid(0, 5, 0), false, 0, 0}) ==
        kNoUnit);
  CHECK(unit_for_device(d, kQemuDevices, 6, PciFunctionInfo{1, sid(0, 2, 0), false, 0, 0}) ==
        kNoUnit);

  std::vector<uint8_t> aw48 = qemu_table();
  for (const auto& change : kQemuDmarAw48Diff) aw48[change[0]] = change[1];
  const Parsed q = parse(aw48);
  REQUIRE(q.ok);
  CHECK(q.info->address_bits == 48);
}

TEST_CASE("DMAR: a server-like table with RMRR, catch-all unit and skipped structures") {
  using namespace microhv::arch::vtd;
  const std::vector<uint8_t> t = DmarBuilder(45, kDmarFlagIntrRemap | kDmarFlagX2apicOptOut)
                                     .drhd(0xfed90000, false, 0, 2)  // graphics: 4 pages
                                     .scope(kScopeEndpoint, 0, {{2, 0}})
                                     .drhd(0xfed91000, true)
                                     .scope(kScopeIoapic, 0xf0, {{0x1f, 0}}, 2)
                                     .scope(kScopeHpet, 0, {{0x1f, 0}}, 0)
                                     .rmrr(0x7b800000, 0x7fffffff)
                                     .scope(kScopeEndpoint, 0, {{2, 0}})
                                     .rmrr(0x9d000000, 0x9d01ffff)
                                     .scope(kScopeEndpoint, 0, {{0x14, 0}})
                                     .scope(kScopeEndpoint, 0, {{0x1a, 0}})
                                     .other(kAtsr, 8)
                                     .other(kRhsa, 20)
                                     .other(7, 12)  // a type from a later revision
                                     .finish();
  const Parsed p = parse(t);
  INFO(p.error);
  REQUIRE(p.ok);
  const DmarInfo& d = *p.info;
  CHECK(d.address_bits == 46);
  REQUIRE(d.unit_count == 2);
  CHECK(d.units[0].register_pages == 4);
  CHECK(d.units[1].include_pci_all);
  CHECK(d.units[1].scope_count == 2);
  REQUIRE(d.region_count == 2);
  CHECK(d.regions[0].base == 0x7b800000);
  CHECK(d.regions[0].limit == 0x7fffffff);
  CHECK(d.regions[1].scope_count == 2);
  CHECK(d.scopes[d.regions[1].first_scope + 1].source_id() == sid(0, 0x1a, 0));
  CHECK(d.skipped_structures == 3);
  CHECK(d.rounded_regions == 0);
  CHECK(covers_all_pci_devices(d));
  const PciFunctionInfo devices[] = {{0, sid(0, 2, 0), false, 0, 0},
                                     {0, sid(0, 0x1f, 3), false, 0, 0}};
  // The graphics device is in unit 0's scope; everything else falls to the
  // INCLUDE_PCI_ALL unit, whatever order the units come in.
  CHECK(unit_for_device(d, devices, 2, devices[0]) == 0);
  CHECK(unit_for_device(d, devices, 2, devices[1]) == 1);
}

TEST_CASE("DMAR: sub-hierarchy scopes and multi-hop paths resolve through bridges") {
  using namespace microhv::arch::vtd;
  const std::vector<uint8_t> t = DmarBuilder()
                                     .drhd(0xfed90000)
                                     .scope(kScopeBridge, 0, {{0x1c, 0}})
                                     .drhd(0xfed91000)
                                     .scope(kScopeEndpoint, 0, {{0x1c, 4}, {0, 0}})
                                     .finish();
  const Parsed p = parse(t);
  REQUIRE(p.ok);
  // 00:1c.0 bridges buses 2-3, 00:1c.4 bridges bus 5.
  const PciFunctionInfo all[] = {{0, sid(0, 0x1c, 0), true, 2, 3}, {0, sid(2, 0, 0), false, 0, 0},
                                 {0, sid(3, 1, 0), false, 0, 0},   {0, sid(0, 0x1c, 4), true, 5, 5},
                                 {0, sid(5, 0, 0), false, 0, 0},   {0, sid(5, 0, 1), false, 0, 0}};
  CHECK(unit_for_device(*p.info, all, 6, all[0]) == 0);  // the bridge itself
  CHECK(unit_for_device(*p.info, all, 6, all[1]) == 0);
  CHECK(unit_for_device(*p.info, all, 6, all[2]) == 0);  // subordinate bus 3
  CHECK(unit_for_device(*p.info, all, 6, all[3]) == kNoUnit);
  CHECK(unit_for_device(*p.info, all, 6, all[4]) == 1);  // 00:1c.4 -> 05:00.0
  CHECK(unit_for_device(*p.info, all, 6, all[5]) == kNoUnit);
  // Without the bridge in the scan the path cannot be resolved.
  CHECK(unit_for_device(*p.info, all + 4, 1, all[4]) == kNoUnit);
}

TEST_CASE("DMAR: a misaligned RMRR is rounded out to whole pages") {
  const Parsed p = parse(DmarBuilder().drhd(0xfed90000, true).rmrr(0x1234, 0x5677).finish());
  REQUIRE(p.ok);
  CHECK(p.info->regions[0].base == 0x1000);
  CHECK(p.info->regions[0].limit == 0x5fff);
  CHECK(p.info->rounded_regions == 1);
}

TEST_CASE("DMAR: malformed tables are refused with a message") {
  using namespace microhv::arch::vtd;
  const std::vector<uint8_t> good = DmarBuilder().drhd(0xfed90000, true).finish();
  REQUIRE(parse(good).ok);

  SECTION("truncated header") {
    require_refused(good, "truncated: 20 bytes", 20);
  }
  SECTION("signature") {
    std::vector<uint8_t> t = good;
    t[0] = 'X';
    DmarBuilder::fix_checksum(t);
    require_refused(t, "signature");
  }
  SECTION("bad checksum") {
    std::vector<uint8_t> t = good;
    t[20] ^= 1;
    require_refused(t, "checksum mismatch");
  }
  SECTION("length past the end of the data") {
    std::vector<uint8_t> t = good;
    DmarBuilder::put32(t, 4, static_cast<uint32_t>(t.size() + 16));
    DmarBuilder::fix_checksum(t);
    require_refused(t, "runs past the end of the table data");
  }
  SECTION("length shorter than the DMAR header") {
    std::vector<uint8_t> t = good;
    DmarBuilder::put32(t, 4, 40);
    DmarBuilder::fix_checksum(t);
    require_refused(t, "shorter than the 48-byte DMAR header");
  }
  SECTION("host address width") {
    require_refused(DmarBuilder(70).drhd(0xfed90000, true).finish(), "host address width");
  }
  SECTION("structure length 0") {
    std::vector<uint8_t> t = DmarBuilder().drhd(0xfed90000, true).other(9, 4).finish();
    t[64 + 2] = 0;  // the second structure's length
    DmarBuilder::fix_checksum(t);
    require_refused(t, "length 0 is shorter than its minimum 4");
  }
  SECTION("DRHD shorter than its fixed part") {
    std::vector<uint8_t> t = DmarBuilder().other(kDrhd, 12).finish();
    require_refused(t, "DRHD (type 0) at offset 0x30: length 12 is shorter than its minimum 16");
  }
  SECTION("structure past the end of the table") {
    std::vector<uint8_t> t = good;
    t[48 + 2] = 32;  // DRHD says 32 bytes, 16 are there
    DmarBuilder::fix_checksum(t);
    require_refused(t, "DRHD at offset 0x30: length 32 runs past the end of the table");
  }
  SECTION("stray bytes after the last structure") {
    std::vector<uint8_t> t = good;
    t.push_back(0);
    t.push_back(0);
    DmarBuilder::put32(t, 4, static_cast<uint32_t>(t.size()));
    DmarBuilder::fix_checksum(t);
    require_refused(t, "2 stray bytes");
  }
  SECTION("scope past the end of its structure") {
    std::vector<uint8_t> t =
        DmarBuilder().drhd(0xfed90000).scope(kScopeEndpoint, 0, {{2, 0}}).finish();
    t[64 + 1] = 10;  // scope claims 10 bytes, the structure has 8 left
    DmarBuilder::fix_checksum(t);
    require_refused(t, "device scope at offset 0x40: length 10 runs past the end of its structure");
  }
  SECTION("scope too short") {
    std::vector<uint8_t> t =
        DmarBuilder().drhd(0xfed90000).scope(kScopeEndpoint, 0, {{2, 0}}).finish();
    t[64 + 1] = 0;
    DmarBuilder::fix_checksum(t);
    require_refused(t, "length 0 is shorter than its 6-byte header");
  }
  SECTION("fewer bytes left than a scope header") {
    std::vector<uint8_t> t = DmarBuilder().drhd(0xfed90000).other(9, 4).finish();
    t[48 + 2] = 20;  // the DRHD swallows the 4 bytes of what follows as its scope area
    DmarBuilder::fix_checksum(t);
    require_refused(t, "a scope needs at least 6");
  }
  SECTION("half a path entry") {
    std::vector<uint8_t> t =
        DmarBuilder().drhd(0xfed90000).scope(kScopeEndpoint, 0, {{2, 0}}).other(9, 4).finish();
    t[64 + 1] = 7;
    t[48 + 2] = 23;  // keep the DRHD length consistent with the odd scope
    t.erase(t.begin() + 71);
    DmarBuilder::put32(t, 4, static_cast<uint32_t>(t.size()));
    DmarBuilder::fix_checksum(t);
    require_refused(t, "half a (device, function) pair");
  }
  SECTION("register base not a page address") {
    require_refused(DmarBuilder().drhd(0xfed90800).finish(), "register base 0xfed90800");
    require_refused(DmarBuilder().drhd(0).finish(), "register base 0x0");
  }
  SECTION("two units at one base") {
    require_refused(DmarBuilder().drhd(0xfed90000).drhd(0xfed90000, true).finish(),
                    "a second unit at register base 0xfed90000");
  }
  SECTION("two INCLUDE_PCI_ALL units for a segment") {
    require_refused(DmarBuilder().drhd(0xfed90000, true).drhd(0xfed91000, true).finish(),
                    "a second INCLUDE_PCI_ALL unit for segment 0");
    CHECK(parse(DmarBuilder().drhd(0xfed90000, true).drhd(0xfed91000, true, 1).finish()).ok);
  }
  SECTION("RMRR limit below base") {
    require_refused(DmarBuilder().drhd(0xfed90000, true).rmrr(0x2000, 0xfff).finish(),
                    "limit 0xfff is below its base 0x2000");
  }
  SECTION("more units than microhv keeps") {
    DmarBuilder b;
    for (uint32_t i = 0; i <= kMaxUnits; ++i) b.drhd(0xfe000000 + i * 0x1000ull);
    require_refused(b.finish(), "more than 64 DRHD units (microhv's limit)");
  }
}

TEST_CASE("DMAR: every truncation and random corruption is refused or parsed, never overread") {
  const std::vector<uint8_t> t = qemu_table();
  for (size_t n = 0; n < t.size(); ++n) {
    INFO("available " << n);
    CHECK_FALSE(parse(t, n).ok);
  }
  // Random bytes in the structures (checksum fixed so the structures are
  // what gets tested); ASan guards the reads.
  std::mt19937 rng(14);
  unsigned accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> c = t;
    for (int k = 0; k < 4; ++k) c[48 + rng() % (c.size() - 48)] = static_cast<uint8_t>(rng());
    DmarBuilder::fix_checksum(c);
    const Parsed p = parse(c);
    if (p.ok) {
      ++accepted;
      CHECK(p.info->unit_count <= kMaxUnits);
      CHECK(p.info->scope_count <= kMaxScopes);
    } else {
      CHECK(p.error.rfind("DMAR: ", 0) == 0);
    }
  }
  CHECK(accepted > 0);  // some corruptions leave a valid table (e.g. a changed path)
}

TEST_CASE("DMAR: hide_dmar renames the table and keeps its checksum valid") {
  std::vector<uint8_t> t = qemu_table();
  REQUIRE(hide_dmar(t.data(), t.size()));
  CHECK(std::memcmp(t.data(), "XMAR", 4) == 0);
  uint8_t sum = 0;
  for (uint8_t b : t) sum = static_cast<uint8_t>(sum + b);
  CHECK(sum == 0);
  CHECK_FALSE(hide_dmar(t.data(), t.size()));  // not a DMAR table any more
  const Parsed p = parse(t);
  CHECK_FALSE(p.ok);
  CHECK(p.error.find("signature") != std::string::npos);
  std::vector<uint8_t> short_copy = qemu_table();
  CHECK_FALSE(hide_dmar(short_copy.data(), 100));  // Length 120 does not fit in 100 bytes
  CHECK(short_copy[0] == 'D');
}

TEST_CASE("DMAR: reveal_dmar undoes hide_dmar byte for byte") {
  const std::vector<uint8_t> original = qemu_table();
  std::vector<uint8_t> t = original;
  CHECK_FALSE(reveal_dmar(t.data(), t.size()));  // not hidden: nothing to undo
  CHECK(t == original);
  REQUIRE(hide_dmar(t.data(), t.size()));
  REQUIRE(reveal_dmar(t.data(), t.size()));
  CHECK(t == original);
  CHECK(parse(t).ok);
}
