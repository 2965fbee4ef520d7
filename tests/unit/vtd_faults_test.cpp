// Fault records (VT-d 9.9 record format, 10.4.14 FRCD, 10.4.9 FSTS):
// decoding, collecting as a ring from FSTS.FRI with F write-1-to-clear,
// overflow, and the rate-limited log lines.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"
#include "tests/unit/vtd_fakes.hpp"
#include "vmx/vtd/faults.hpp"

using namespace microhv;
using namespace microhv::vtd;
using microhv::vtd::test::FakeUnit;
namespace hw = microhv::arch::vtd;
namespace t = microhv::vtd::test;

namespace {

// QEMU's caps with 4 fault recording registers at 0x400.
constexpr uint64_t kCap4Records = (t::kQemuCapAw39 & ~(hw::cap::kNfrMask << hw::cap::kNfrShift) &
                                   ~(hw::cap::kFroMask << hw::cap::kFroShift)) |
                                  3ull << hw::cap::kNfrShift | 0x40ull << hw::cap::kFroShift;

}  // namespace

TEST_CASE("faults: a record decodes field by field (9.9)") {
  // Source 00:02.0, reason 5, T2:T1 = 00 (write), at 0xe93f000.
  const uint64_t high = hw::frcd::kF | 5ull << 32 | 0x0010;
  FaultRecord f = decode_fault(0xe93f000 | 0xABC, high);
  CHECK(f.source_id == 0x0010);
  CHECK(f.reason == 5);
  CHECK(f.type == 0);
  CHECK(f.address == 0xe93f000);  // bits 11:0 are reserved
  CHECK_FALSE(f.pasid_present);
  char line[200];
  describe_fault(line, sizeof(line), f);
  CHECK(std::string(line) ==
        "DMA write by 00:02.0 to 0xe93f000 blocked: the page is not writable for devices (fault "
        "reason 0x5)");

  f = decode_fault(0x7000000, high | hw::frcd::kT1 | 6ull << 32 | 0xFA);
  CHECK(f.type == 1);
  CHECK(f.source_id == 0x00FA);
  describe_fault(line, sizeof(line), decode_fault(0x7000000, hw::frcd::kT1 | 6ull << 32 | 0x3A0F));
  CHECK(std::string(line) ==
        "DMA read by 3a:01.7 to 0x7000000 blocked: the page is not readable for devices (fault "
        "reason 0x6)");

  f = decode_fault(0, hw::frcd::kT2 | hw::frcd::kPp | 0x12345ull << 40 | 2ull << 32);
  CHECK(f.type == 2);
  CHECK(f.pasid_present);
  CHECK(f.pasid == 0x12345);
  describe_fault(line, sizeof(line), f);
  CHECK(std::string(line) ==
        "DMA page request by 00:00.0 (PASID 0x12345) to 0x0 blocked: context entry not present "
        "(fault reason 0x2)");
  CHECK(std::string(fault_reason_text(0x42)) == "see the VT-d specification's fault reason table");
}

TEST_CASE("faults: collected from FRI around the ring, each cleared") {
  FakeUnit u(kCap4Records, t::kQemuEcap);
  REQUIRE(u.frcd.size() == 4);
  u.next_fault = 3;  // hardware's next record is the last one: the ring wraps
  u.record_fault(0x0010, 0x7000000, 5, false);
  u.record_fault(0x0010, 0x7001000, 6, true);
  u.record_fault(0x00F8, 0x8000000, 5, false);
  CHECK((u.read32(hw::kFstsReg) & hw::fsts::kPpf) != 0);
  FaultRecord out[8];
  const FaultScan scan = collect_faults(u, read_caps(u), out, 8);
  REQUIRE(scan.records == 3);
  CHECK_FALSE(scan.overflow);
  // FRI names record 3, the oldest; the ring continues with 0 and 1.
  CHECK(out[0].address == 0x7000000);
  CHECK(out[0].reason == 5);
  CHECK(out[1].address == 0x7001000);
  CHECK(out[1].type == 1);
  CHECK(out[2].address == 0x8000000);
  for (const auto& r : u.frcd) CHECK((r.high & hw::frcd::kF) == 0);
  CHECK((u.read32(hw::kFstsReg) & hw::fsts::kPpf) == 0);
  // Each record cleared with one 32-bit write of F to its last doubleword.
  unsigned clears = 0;
  for (const auto& w : u.log) {
    if (w.offset >= 0x400 && w.offset < 0x440) {
      CHECK(w.offset % 16 == 12);
      CHECK(w.value == 0x80000000u);
      ++clears;
    }
  }
  CHECK(clears == 3);
}

TEST_CASE("faults: overflow is reported and cleared; nothing pending reads nothing") {
  FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);  // one record
  FaultRecord out[2];
  FaultScan scan = collect_faults(u, read_caps(u), out, 2);
  CHECK(scan.records == 0);
  CHECK(u.log.empty());  // nothing to clear, nothing written
  u.record_fault(0x0010, 0x7000000, 5, false);
  u.record_fault(0x0010, 0x7001000, 5, false);  // no free record: PFO
  scan = collect_faults(u, read_caps(u), out, 2);
  CHECK(scan.records == 1);
  CHECK(scan.overflow);
  CHECK_FALSE(u.pfo);  // PFO is write-1-to-clear
  // More records than the caller stores: all cleared, the first kept.
  FakeUnit v(kCap4Records, t::kQemuEcap);
  for (int i = 0; i < 4; ++i) v.record_fault(0x10, 0x1000 * i, 5, false);
  scan = collect_faults(v, read_caps(v), out, 1);
  CHECK(scan.records == 4);
  CHECK(out[0].address == 0);
  CHECK((v.read32(hw::kFstsReg) & hw::fsts::kPpf) == 0);
}

TEST_CASE("faults: log lines are rate-limited with a summary") {
  t::LogCapture capture;
  const std::vector<std::string>& lines = t::LogCapture::lines();
  FaultLog log(3, 1000000);
  std::vector<FaultRecord> records(10, decode_fault(0x7000000, 5ull << 32 | 0x10));
  FaultScan scan{10, true};
  log.report(Hpa(0xfed90000), scan, records.data(), 10, 5);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] ==
        "microhv: error: vtd: unit 0xfed90000: DMA write by 00:02.0 to 0x7000000 blocked: the "
        "page is not writable for devices (fault reason 0x5)\n");
  CHECK(log.suppressed() == 7);  // and the overflow line
  // Same window: still quiet.
  log.report(Hpa(0xfed90000), FaultScan{1, false}, records.data(), 1, 999999);
  CHECK(lines.size() == 3);
  // The next window opens with the summary, even without new faults.
  log.report(Hpa(0xfed90000), FaultScan{0, false}, records.data(), 0, 1000005);
  REQUIRE(lines.size() == 4);
  CHECK(lines[3] ==
        "microhv: error: vtd: 8 more DMA faults were not logged (rate limit); the fault records "
        "also overflowed, losing others\n");
  CHECK(log.suppressed() == 0);
}
