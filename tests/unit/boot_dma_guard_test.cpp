// DMA isolation at the take-over (boot/dma/dma_guard.hpp) on a fake machine:
// the firmware's ACPI tables with or without QEMU's captured DMAR, its PCI
// functions, the remapping unit's register file. What the take-over decides
// per `iommu =` policy (issue 14: required + no hardware refuses with the
// line; if-present warns in one line; off leaves VT-d alone and says so),
// that the whole pool is out of every device's reach, the register windows
// EPT hides, the DMAR hidden only when a unit translates, and the hand-over
// of the units to the host and back.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "boot/acpi/reader.hpp"
#include "boot/acpi/tables.hpp"
#include "boot/dma/dma_guard.hpp"
#include "tests/unit/fake_pci.hpp"
#include "tests/unit/vtd_fakes.hpp"

using namespace microhv;
using namespace microhv::boot;
using microhv::vtd::test::FakeMap;
using microhv::vtd::test::FakeMemory;
using microhv::vtd::test::FakeUnit;
using microhv::vtd::test::hw_walk;
namespace hw = microhv::arch::vtd;
namespace t = microhv::vtd::test;

namespace {

constexpr uint64_t kLimit = 4ull << 30;
constexpr Hpa kPool{0x7000000};
constexpr uint64_t kPoolSize = 0x280000;
constexpr uint16_t kEdu = 0x0010;  // 00:02.0

enum class Dmar { kNone, kQemu, kMalformed, kSegment1 };

// The firmware's tables: an RSDP whose XSDT lists the DMAR (or nothing).
struct Firmware {
  explicit Firmware(Dmar kind) : dmar(t::kQemuDmarAw39, t::kQemuDmarAw39 + 120) {
    if (kind == Dmar::kMalformed) dmar[0x32] = 200;  // the DRHD runs past the table's end
    if (kind == Dmar::kSegment1) {
      dmar[0x36] = 1;  // the unit serves PCI segment 1
      dmar[9] = static_cast<uint8_t>(dmar[9] - 1);
    }
    const uint64_t tables[] = {reinterpret_cast<uintptr_t>(dmar.data())};
    REQUIRE(acpi::build_xsdt(xsdt, sizeof(xsdt), tables, kind == Dmar::kNone ? 0 : 1) > 0);
    REQUIRE(acpi::build_rsdp(rsdp, sizeof(rsdp), 0, reinterpret_cast<uintptr_t>(xsdt)) > 0);
  }
  std::vector<uint8_t> dmar;
  uint8_t xsdt[64] = {};
  uint8_t rsdp[36] = {};
};

// QEMU's q35 functions with edu at 00:02.0 (as vtd::test::kQemuDevices).
void add_qemu_functions(test::FakePciConfig& pci) {
  pci.add(0, 0, 0, 0x29c08086);
  pci.add(0, 1, 0, 0x11111234);
  pci.add(0, 2, 0, 0x11e81234);
  pci.add(0, 0x1f, 0, 0x29188086, 0x80);
  pci.add(0, 0x1f, 2, 0x29228086);
  pci.add(0, 0x1f, 3, 0x29308086);
}

struct Machine {
  explicit Machine(Dmar kind, IommuPolicy policy) : firmware(kind), guard(policy, map) {
    add_qemu_functions(pci);
    map.units[t::kQemuUnitBase] = &unit;
  }
  // The take-over's order: survey, then protect on the pool.
  bool take_over() {
    pages = guard.survey(firmware.rsdp, pci, kLimit, *survey);
    mem = FakeMemory(pages == 0 ? 1 : pages);
    return guard.protect(kPool, kPoolSize, kLimit, mem, mem, *vtd);
  }
  std::string last_line() const {
    return t::LogCapture::lines().empty() ? "" : t::LogCapture::lines().back();
  }

  t::LogCapture log_capture;
  Firmware firmware;
  test::FakePciConfig pci;
  FakeUnit unit{t::kQemuCapAw39, t::kQemuEcap};
  FakeMap map;
  std::unique_ptr<DmaSurveyMemory> survey = std::make_unique<DmaSurveyMemory>();
  std::unique_ptr<vtd::ResidentVtd> vtd = std::make_unique<vtd::ResidentVtd>();
  FakeMemory mem;
  DmaGuard guard;
  uint64_t pages = 0;
};

const char kNoHardware[] =
    "vtd: no DMA remapping hardware (no ACPI DMAR table): devices can reach microhv's memory";
const char kRefused[] =
    "; iommu = required: not taking over the machine (set iommu = if-present to run without full "
    "DMA isolation)";

}  // namespace

TEST_CASE("take-over DMA: QEMU q35 + intel-iommu: the whole pool is out of every device's reach") {
  Machine m(Dmar::kQemu, IommuPolicy::kRequired);
  REQUIRE(m.take_over());
  const vtd::ProtectResult& r = m.vtd->result;
  CHECK(r.status == vtd::ProtectStatus::kProtected);
  CHECK(r.tables.pages <= m.pages);
  CHECK(m.pci.reads > 0);  // coverage judged from the scan: every function behind the unit
  CHECK(r.uncovered_devices == 0);
  CHECK(m.last_line().rfind("microhv: vtd: DMA remapping on 1 of 1 unit(s), 3-level tables", 0) ==
        0);
  CHECK(m.last_line().find("devices cannot reach microhv's memory (1 range(s))") !=
        std::string::npos);
  // edu, through the unit's tables as the hardware walks them: the pool's
  // first and last page are out of reach both ways, its neighbours are not.
  const uint64_t rt = m.unit.root_latched;
  for (uint64_t a : {kPool.value(), kPool.value() + kPoolSize - 0x1000}) {
    CHECK(hw_walk(m.mem, rt, 0x2, 0x3, kEdu, a, true).fault == hw::fault::kWriteNotAllowed);
    CHECK(hw_walk(m.mem, rt, 0x2, 0x3, kEdu, a, false).fault == hw::fault::kReadNotAllowed);
  }
  CHECK(hw_walk(m.mem, rt, 0x2, 0x3, kEdu, kPool.value() - 0x1000, true).hpa ==
        kPool.value() - 0x1000);
  CHECK(hw_walk(m.mem, rt, 0x2, 0x3, kEdu, kPool.value() + kPoolSize, true).hpa ==
        kPool.value() + kPoolSize);
  // The unit's register window is hidden from the guest.
  REQUIRE(m.vtd->window_count == 1);
  CHECK(m.vtd->windows[0].base == Hpa(t::kQemuUnitBase));
  CHECK(m.vtd->windows[0].size == 0x1000);
  // The DMAR disappears from the guest's ACPI view only when asked (after
  // the launch), and comes back when microhv gives the machine back.
  CHECK(acpi::find_table(m.firmware.rsdp, "DMAR", nullptr) != nullptr);
  REQUIRE(m.guard.hide_dmar());
  CHECK(acpi::find_table(m.firmware.rsdp, "DMAR", nullptr) == nullptr);
  CHECK(acpi::find_table(m.firmware.rsdp, "XMAR", nullptr) != nullptr);
  CHECK(t::LogCapture::has("vtd: ACPI DMAR table at 0x"));
  m.guard.reveal_dmar();
  CHECK(m.firmware.dmar == std::vector<uint8_t>(t::kQemuDmarAw39, t::kQemuDmarAw39 + 120));
  REQUIRE(m.guard.unprotect(*m.vtd));
  CHECK_FALSE(m.unit.translating());
}

TEST_CASE("take-over DMA: no DMAR table, per policy") {
  SECTION("if-present: one information line, the take-over goes on") {
    Machine m(Dmar::kNone, IommuPolicy::kIfPresent);
    CHECK(m.take_over());
    CHECK(m.pages == 0);
    CHECK(m.last_line() == std::string("microhv: ") + kNoHardware + "\n");
    CHECK(m.pci.reads == 0);  // nothing to judge coverage for
    CHECK(m.vtd->window_count == 0);
    CHECK_FALSE(m.guard.hide_dmar());
  }
  SECTION("required: refused, with the line as an error") {
    Machine m(Dmar::kNone, IommuPolicy::kRequired);
    CHECK_FALSE(m.take_over());
    CHECK(m.last_line() == std::string("microhv: error: ") + kNoHardware + kRefused + "\n");
  }
  SECTION("off: no lookup, the line says what that means") {
    Machine m(Dmar::kNone, IommuPolicy::kOff);
    CHECK(m.take_over());
    CHECK(m.last_line() ==
          "microhv: vtd: iommu = off: DMA remapping left alone; devices can reach microhv's "
          "memory\n");
  }
}

TEST_CASE("take-over DMA: iommu = off leaves the hardware and the DMAR alone") {
  Machine m(Dmar::kQemu, IommuPolicy::kOff);
  CHECK(m.take_over());
  CHECK(m.vtd->result.status == vtd::ProtectStatus::kOff);
  CHECK(m.unit.reads == 0);
  CHECK(m.unit.log.empty());
  CHECK(m.pci.reads == 0);
  CHECK(m.vtd->window_count == 0);  // the guest may drive VT-d itself
  CHECK_FALSE(m.guard.hide_dmar());
  CHECK(acpi::find_table(m.firmware.rsdp, "DMAR", nullptr) != nullptr);
}

TEST_CASE("take-over DMA: a malformed DMAR is named and counts as none") {
  SECTION("if-present") {
    Machine m(Dmar::kMalformed, IommuPolicy::kIfPresent);
    CHECK(m.take_over());
    CHECK(
        t::LogCapture::has("microhv: error: vtd: the firmware's ACPI DMAR table is malformed "
                           "and not used: DMAR: "));
    CHECK(m.last_line() == std::string("microhv: ") + kNoHardware + "\n");
    CHECK(m.unit.reads == 0);
  }
  SECTION("required") {
    Machine m(Dmar::kMalformed, IommuPolicy::kRequired);
    CHECK_FALSE(m.take_over());
    CHECK(m.last_line().find(kRefused) != std::string::npos);
  }
}

TEST_CASE("take-over DMA: hardware that cannot protect: an error line; required refuses") {
  SECTION("if-present: goes on, loudly") {
    Machine m(Dmar::kQemu, IommuPolicy::kIfPresent);
    m.unit.stuck_status = hw::gcmd::kTe;
    CHECK(m.take_over());
    CHECK(m.vtd->result.status == vtd::ProtectStatus::kFailed);
    CHECK(m.last_line().rfind("microhv: error: vtd: unit 0xfed90000 could not be enabled", 0) == 0);
    CHECK(m.vtd->window_count == 0);
  }
  SECTION("required") {
    Machine m(Dmar::kQemu, IommuPolicy::kRequired);
    m.unit.stuck_status = hw::gcmd::kTe;
    CHECK_FALSE(m.take_over());
    CHECK_FALSE(m.unit.translating());
  }
  SECTION("a PCI function outside the unit's scope") {
    Machine m(Dmar::kQemu, IommuPolicy::kRequired);
    m.pci.add(0, 5, 0, 0x10008086);
    CHECK_FALSE(m.take_over());
    CHECK(m.vtd->result.status == vtd::ProtectStatus::kPartial);
    CHECK(t::LogCapture::has("vtd: PCI 0000:00:05.0 is not behind any remapping unit"));
    CHECK_FALSE(m.unit.translating());  // refused: the pool with the tables goes back
    CHECK(m.vtd->window_count == 0);
  }
}

TEST_CASE("take-over DMA: firmware that left translation on is named") {
  Machine m(Dmar::kQemu, IommuPolicy::kRequired);
  m.unit.gsts = hw::gcmd::kTe;
  m.unit.rtaddr = 0x7f000000;
  REQUIRE(m.take_over());
  CHECK(t::LogCapture::has(
      "microhv: vtd: unit 0xfed90000: firmware left DMA translation on (GSTS 0x80000000, root "
      "table 0x7f000000); microhv replaces its tables"));
  CHECK(m.unit.root_latched != 0x7f000000);
}

TEST_CASE("take-over DMA: the host polls through its own accessors; the EFI side takes them back") {
  Machine m(Dmar::kQemu, IommuPolicy::kRequired);
  REQUIRE(m.take_over());
  vtd::ResidentVtd& vtd = *m.vtd;
  // The host's accessor for the same unit (here a second register file, to
  // tell them apart).
  FakeUnit host_unit{t::kQemuCapAw39, t::kQemuEcap};
  host_unit.gsts = hw::gcmd::kTe;
  FakeMap host_map;
  host_map.units[t::kQemuUnitBase] = &host_unit;
  vtd::rebind_units(vtd.result, host_map);
  CHECK(vtd.result.units[0].regs == &host_unit);

  // At most once per period of TSC ticks, the first exit included.
  CHECK(vtd::fault_poll_due(vtd, 1000, 500));
  CHECK_FALSE(vtd::fault_poll_due(vtd, 1499, 500));
  CHECK(vtd::fault_poll_due(vtd, 1500, 500));
  host_unit.record_fault(kEdu, kPool.value(), hw::fault::kReadNotAllowed, true);
  vtd::FaultRecord got[2] = {};
  CHECK(vtd::poll_faults(vtd.result, vtd.faults, 0, got, 2) == 1);
  CHECK(got[0].source_id == kEdu);
  CHECK(got[0].address == kPool.value());
  CHECK(
      t::LogCapture::has("microhv: error: vtd: unit 0xfed90000: DMA read by 00:02.0 to 0x7000000 "
                         "blocked"));
  CHECK(m.unit.translating());

  // A failed launch: the EFI side turns translation off through its own.
  REQUIRE(m.guard.unprotect(vtd));
  CHECK(vtd.result.units[0].regs == &m.unit);
  CHECK_FALSE(m.unit.translating());
  CHECK(host_unit.translating());  // untouched

  // No unit translating: nothing to poll.
  CHECK_FALSE(vtd::fault_poll_due(vtd, 1u << 30, 500));
}

TEST_CASE("take-over DMA: units beyond segment 0 are judged from the DMAR, not from a scan") {
  // The scan reaches segment 0 only: a list from it would say nothing about
  // segment 1's devices, and the QEMU unit lacks INCLUDE_PCI_ALL.
  Machine m(Dmar::kSegment1, IommuPolicy::kRequired);
  CHECK_FALSE(m.take_over());
  CHECK(m.pci.reads == 0);
  CHECK(
      t::LogCapture::has("vtd: remapping units on PCI segments other than 0 (not scanned): "
                         "whether every device is behind a unit is judged from the DMAR alone"));
  CHECK(m.vtd->result.status == vtd::ProtectStatus::kPartial);
  CHECK_FALSE(m.unit.translating());
}
