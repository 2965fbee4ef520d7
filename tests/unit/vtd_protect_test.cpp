// vtd::protect() end to end on fake units and memory: the QEMU machine as
// captured, machines without remapping hardware, units that cannot be used,
// a mixed 3-/4-level platform, a unit that fails half-way (everything rolled
// back), the policy's verdict, fault polling, and the iommu = policy words.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"
#include "tests/unit/vtd_fakes.hpp"
#include "vmx/vtd/protect.hpp"

using namespace microhv;
using namespace microhv::vtd;
using microhv::vtd::test::FakeMap;
using microhv::vtd::test::FakeMemory;
using microhv::vtd::test::FakeUnit;
using microhv::vtd::test::hw_walk;
namespace hw = microhv::arch::vtd;
namespace t = microhv::vtd::test;

namespace {

constexpr uint64_t kLimit = 4ull << 30;
const ProtectedRange kMicrohv[] = {{Hpa(0x7000000), 0x280000}, {Hpa(0x200000000), 0x100000}};

bool logged(const std::string& part) {
  return t::LogCapture::has(part);
}

struct Machine {
  Machine() {
    char error[200];
    REQUIRE(
        parse_dmar(t::kQemuDmarAw39, sizeof(t::kQemuDmarAw39), dmar.get(), error, sizeof(error)));
  }

  ProtectRequest request(IommuPolicy policy = IommuPolicy::kRequired, bool with_devices = true) {
    ProtectRequest r;
    r.dmar = dmar.get();
    r.ranges = kMicrohv;
    r.range_count = 2;
    r.identity_limit = kLimit;
    r.policy = policy;
    if (with_devices) {
      r.devices = t::kQemuDevices;
      r.device_count = 6;
    }
    return r;
  }
  ProtectResult& run(const ProtectRequest& r) {
    protect(r, mem, mem, map, result.get());
    return *result;
  }

  t::LogCapture log_capture;
  std::unique_ptr<DmarInfo> dmar = std::make_unique<DmarInfo>();
  std::unique_ptr<ProtectResult> result = std::make_unique<ProtectResult>();
  FakeMemory mem;
  FakeMap map;
};

}  // namespace

TEST_CASE("protect: the QEMU machine as captured, with its PCI functions") {
  Machine m;
  FakeUnit unit(t::kQemuCapAw39, t::kQemuEcap);
  m.map.units[t::kQemuUnitBase] = &unit;
  const ProtectRequest request = m.request();
  const uint64_t budget = protect_table_pages(request, m.map);
  CHECK(t::LogCapture::lines().empty());  // sizing logs nothing
  ProtectResult& r = m.run(request);
  INFO(r.line);
  REQUIRE(r.status == ProtectStatus::kProtected);
  CHECK(r.take_over_allowed);
  CHECK(r.units_enabled == 1);
  CHECK(r.uncovered_devices == 0);
  CHECK(r.table_levels == 3);
  CHECK(r.tables.pages <= budget);
  CHECK(std::string(r.line) == "vtd: DMA remapping on 1 of 1 unit(s), 3-level tables in " +
                                   std::to_string(r.tables.pages) +
                                   " pages: devices cannot reach microhv's memory (2 range(s))");
  CHECK(
      logged("microhv: vtd: unit 0xfed90000 (segment 0, devices in its scope): VT-d 1.0, "
             "3-level tables, 4K+2M+1G pages, 1 fault record(s), non-coherent walks (tables "
             "flushed)\n"));
  CHECK(unit.translating());
  CHECK(m.map.requested[t::kQemuUnitBase] == 0x1000);
  CHECK(r.units[0].register_bytes == 0x1000);
  // ECAP.C = 0: every table page was written back from the caches.
  std::set<uint64_t> pages;
  for (const auto& p : m.mem.pages) pages.insert(p.first);
  CHECK(m.map.flushed == pages);
  // Through the unit's root pointer, like the hardware: edu (00:02.0) reaches
  // RAM but not microhv's ranges, not even their edges.
  const uint64_t rt = unit.root_latched;
  for (uint64_t a : {0x7000000ull, 0x727f000ull, 0x200000000ull}) {
    CHECK(hw_walk(m.mem, rt, 0x2, 0x3, 0x0010, a, true).fault == hw::fault::kWriteNotAllowed);
    CHECK(hw_walk(m.mem, rt, 0x2, 0x3, 0x0010, a, false).fault == hw::fault::kReadNotAllowed);
  }
  CHECK(hw_walk(m.mem, rt, 0x2, 0x3, 0x0010, 0x6fff000, true).hpa == 0x6fff000);
  CHECK(hw_walk(m.mem, rt, 0x2, 0x3, 0x0010, 0x7280000, true).hpa == 0x7280000);

  // A fault the unit records is polled, logged and cleared.
  unit.record_fault(0x0010, 0x7001000, hw::fault::kWriteNotAllowed, false);
  FaultLog faults;
  CHECK(poll_faults(r, faults, 0) == 1);
  CHECK(logged("microhv: error: vtd: unit 0xfed90000: DMA write by 00:02.0 to 0x7001000 blocked"));
  CHECK(poll_faults(r, faults, 1) == 0);

  REQUIRE(unprotect(r));
  CHECK_FALSE(unit.translating());
  CHECK(r.units_enabled == 0);
}

TEST_CASE("protect: faults firmware left behind are logged and cleared first") {
  Machine m;
  FakeUnit unit(t::kQemuCapAw39, t::kQemuEcap);
  unit.record_fault(0x00fa, 0x1000, hw::fault::kRootNotPresent, true);
  m.map.units[t::kQemuUnitBase] = &unit;
  REQUIRE(m.run(m.request()).status == ProtectStatus::kProtected);
  CHECK(logged("vtd: unit 0xfed90000: recorded before microhv: DMA read by 00:1f.2 to 0x1000"));
  CHECK((unit.read32(hw::kFstsReg) & hw::fsts::kPpf) == 0);
}

TEST_CASE("protect: coverage judged from the DMAR alone or from the PCI scan") {
  Machine m;
  FakeUnit unit(t::kQemuCapAw39, t::kQemuEcap);
  m.map.units[t::kQemuUnitBase] = &unit;
  SECTION("no scan: QEMU's unit has no INCLUDE_PCI_ALL") {
    ProtectResult& r = m.run(m.request(IommuPolicy::kIfPresent, false));
    CHECK(r.status == ProtectStatus::kPartial);
    CHECK(r.take_over_allowed);
    CHECK(std::string(r.line).find("PCI devices outside every unit's scope (no INCLUDE_PCI_ALL "
                                   "unit) can reach microhv's memory") != std::string::npos);
    CHECK(unit.translating());  // what is there is used
  }
  SECTION("a function the table does not list") {
    PciFunctionInfo devices[7];
    std::copy(t::kQemuDevices, t::kQemuDevices + 6, devices);
    devices[6] = PciFunctionInfo{0, 0x0028, false, 0, 0};  // 00:05.0
    ProtectRequest request = m.request();
    request.devices = devices;
    request.device_count = 7;
    ProtectResult& r = m.run(request);
    CHECK(r.status == ProtectStatus::kPartial);
    CHECK(r.uncovered_devices == 1);
    CHECK(
        logged("vtd: PCI 0000:00:05.0 is not behind any remapping unit: its DMA is not remapped"));
    CHECK_FALSE(r.take_over_allowed);  // iommu = required
    CHECK(std::string(r.line).find("; iommu = required: not taking over the machine") !=
          std::string::npos);
  }
}

TEST_CASE("protect: no remapping hardware") {
  Machine m;
  ProtectRequest request = m.request(IommuPolicy::kIfPresent);
  request.dmar = nullptr;
  ProtectResult& r = m.run(request);
  CHECK(r.status == ProtectStatus::kNoHardware);
  CHECK(r.take_over_allowed);
  // The line microhv prints under Bochs, which has no IOMMU.
  CHECK(std::string(r.line) ==
        "vtd: no DMA remapping hardware (no ACPI DMAR table): devices can reach microhv's memory");
  CHECK(m.mem.pages.empty());
  request.policy = IommuPolicy::kRequired;
  ProtectResult& q = m.run(request);
  CHECK_FALSE(q.take_over_allowed);
  CHECK(std::string(q.line) ==
        "vtd: no DMA remapping hardware (no ACPI DMAR table): devices can reach microhv's memory; "
        "iommu = required: not taking over the machine (set iommu = if-present to run without full "
        "DMA isolation)");
  CHECK(protect_table_pages(request, m.map) == 0);
}

TEST_CASE("protect: iommu = off touches nothing") {
  Machine m;
  FakeUnit unit(t::kQemuCapAw39, t::kQemuEcap);
  m.map.units[t::kQemuUnitBase] = &unit;
  ProtectResult& r = m.run(m.request(IommuPolicy::kOff));
  CHECK(r.status == ProtectStatus::kOff);
  CHECK(r.take_over_allowed);
  CHECK(unit.log.empty());
  CHECK(unit.reads == 0);
  CHECK(m.mem.pages.empty());
  CHECK(std::string(r.line) ==
        "vtd: iommu = off: DMA remapping left alone; devices can reach microhv's memory");
}

TEST_CASE("protect: units that cannot be used are named and left off") {
  Machine m;
  SECTION("registers cannot be mapped") {
    ProtectResult& r = m.run(m.request(IommuPolicy::kIfPresent));
    CHECK(r.status == ProtectStatus::kFailed);
    CHECK(r.take_over_allowed);
    CHECK(logged("vtd: unit 0xfed90000: not used: its registers cannot be mapped"));
    CHECK(std::string(r.line) ==
          "vtd: none of the 1 remapping unit(s) can be used (see above): devices can reach "
          "microhv's memory");
  }
  SECTION("5-level only") {
    FakeUnit unit((t::kQemuCapAw48 & ~(hw::cap::kSagawMask << hw::cap::kSagawShift)) |
                      0x8ull << hw::cap::kSagawShift,
                  t::kQemuEcap);
    m.map.units[t::kQemuUnitBase] = &unit;
    ProtectResult& r = m.run(m.request());
    CHECK(r.status == ProtectStatus::kFailed);
    CHECK_FALSE(r.take_over_allowed);
    CHECK(logged("not used: supports neither 3-level (39-bit) nor 4-level (48-bit)"));
    CHECK(unit.log.empty());
  }
}

namespace {

// Two units on segment 0: graphics (00:02.0 in its scope) and a catch-all.
std::vector<uint8_t> two_unit_table() {
  std::vector<uint8_t> t(48, 0);
  std::memcpy(t.data(), "DMAR", 4);
  t[36] = 38;
  auto append = [&t](std::initializer_list<uint8_t> b) { t.insert(t.end(), b); };
  append({0, 0, 24, 0, 0, 0, 0, 0, 0x00, 0x00, 0xd9, 0xfe, 0, 0, 0, 0});  // DRHD 0xfed90000
  append({1, 8, 0, 0, 0, 0, 2, 0});                                       // 00:02.0
  append({0, 0, 16, 0, 1, 0, 0, 0, 0x00, 0x10, 0xd9, 0xfe, 0, 0, 0, 0});  // DRHD 0xfed91000, all
  t[4] = static_cast<uint8_t>(t.size());
  uint8_t sum = 0;
  for (uint8_t b : t) sum = static_cast<uint8_t>(sum + b);
  t[9] = static_cast<uint8_t>(-sum);
  return t;
}

}  // namespace

TEST_CASE("protect: a 3-level-only and a 4-level-only unit share one set of tables") {
  Machine m;
  const std::vector<uint8_t> table = two_unit_table();
  char error[200];
  REQUIRE(parse_dmar(table.data(), table.size(), m.dmar.get(), error, sizeof(error)));
  // The datasheet platform of vtd_caps_test: 3-level-only (isochronous) and
  // 4-level-only units, neither with super pages.
  FakeUnit three(0x00C9008010E60262ull, 0x00F0206Aull);
  FakeUnit four(0x00C90780106F0462ull, 0x00F020EEull);
  m.map.units[0xfed90000] = &three;
  m.map.units[0xfed91000] = &four;
  ProtectRequest request = m.request(IommuPolicy::kRequired, false);
  const uint64_t budget = protect_table_pages(request, m.map);
  ProtectResult& r = m.run(request);
  INFO(r.line);
  REQUIRE(r.status == ProtectStatus::kProtected);
  CHECK(r.units_enabled == 2);
  CHECK(r.table_levels == 4);
  CHECK(r.tables.pages <= budget);
  CHECK(r.tables.pages > 2048);  // 4 KiB pages only: one table per 2 MiB of 4 GiB
  REQUIRE(three.translating());
  REQUIRE(four.translating());
  CHECK(three.root_latched != four.root_latched);
  for (uint64_t a : {0x1000ull, 0x7000000ull, 0x7280000ull, 0x200000000ull}) {
    const auto w3 = hw_walk(m.mem, three.root_latched, 0x2, 0, 0x0010, a, true);
    const auto w4 = hw_walk(m.mem, four.root_latched, 0x4, 0, 0x0100, a, true);
    CHECK(w3.ok == w4.ok);
    CHECK(w3.fault == w4.fault);
    CHECK(w3.hpa == w4.hpa);
  }
  CHECK(hw_walk(m.mem, three.root_latched, 0x2, 0, 0x0010, 0x7000000, true).fault ==
        hw::fault::kWriteNotAllowed);
  // The 4-level-only unit's records sit at 0x100 (CAP.FRO), 8 of them.
  CHECK(r.units[1].caps.fault_count == 8);
}

TEST_CASE("protect: a unit that fails half-way rolls every unit back") {
  Machine m;
  const std::vector<uint8_t> table = two_unit_table();
  char error[200];
  REQUIRE(parse_dmar(table.data(), table.size(), m.dmar.get(), error, sizeof(error)));
  FakeUnit first(t::kQemuCapAw48, t::kQemuEcap);
  FakeUnit second(t::kQemuCapAw48, t::kQemuEcap);
  second.stuck_status = hw::gcmd::kTe;
  m.map.units[0xfed90000] = &first;
  m.map.units[0xfed91000] = &second;
  ProtectResult& r = m.run(m.request(IommuPolicy::kIfPresent, false));
  CHECK(r.status == ProtectStatus::kFailed);
  CHECK(r.take_over_allowed);  // if-present: on without protection, and said so
  CHECK(r.units_enabled == 0);
  CHECK_FALSE(first.translating());
  CHECK(logged("vtd: unit 0xfed91000: enabling translation did not complete within 1000 ms"));
  CHECK(std::string(r.line) ==
        "vtd: unit 0xfed91000 could not be enabled; translation is off on all units: devices can "
        "reach microhv's memory");
}

TEST_CASE("protect: out of table pages is a failure with the reason") {
  Machine m;
  FakeUnit unit(t::kQemuCapAw39, t::kQemuEcap);
  m.map.units[t::kQemuUnitBase] = &unit;
  m.mem = FakeMemory(3);
  ProtectResult& r = m.run(m.request());
  CHECK(r.status == ProtectStatus::kFailed);
  CHECK_FALSE(r.take_over_allowed);
  CHECK(
      std::string(r.line).rfind("vtd: DMA tables not built (out of pages for the DMA tables after "
                                "3 pages): devices can reach microhv's memory",
                                0) == 0);
  CHECK_FALSE(unit.translating());
}

TEST_CASE("policy: iommu = required | if-present | off") {
  IommuPolicy p = IommuPolicy::kOff;
  CHECK(kDefaultIommuPolicy == IommuPolicy::kIfPresent);
  REQUIRE(parse_iommu_policy("required", 8, &p));
  CHECK(p == IommuPolicy::kRequired);
  REQUIRE(parse_iommu_policy("if-present", 10, &p));
  CHECK(p == IommuPolicy::kIfPresent);
  REQUIRE(parse_iommu_policy("off", 3, &p));
  CHECK(p == IommuPolicy::kOff);
  for (const char* bad : {"", "on", "Required", "if_present", "off ", "requiredx", "ifpresent"}) {
    INFO(bad);
    IommuPolicy q = IommuPolicy::kRequired;
    CHECK_FALSE(parse_iommu_policy(bad, std::strlen(bad), &q));
    CHECK(q == IommuPolicy::kRequired);
  }
  CHECK_FALSE(parse_iommu_policy("required", 7, &p));  // a prefix is not the word
  CHECK_FALSE(parse_iommu_policy(nullptr, 0, &p));
  for (IommuPolicy q : {IommuPolicy::kRequired, IommuPolicy::kIfPresent, IommuPolicy::kOff}) {
    IommuPolicy back = kDefaultIommuPolicy;
    const char* name = iommu_policy_name(q);
    REQUIRE(parse_iommu_policy(name, std::strlen(name), &back));
    CHECK(back == q);
  }
}
