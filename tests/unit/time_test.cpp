// Reference time, the reference TSC page, the frequency MSRs,
// TSC_INVARIANT_CONTROL and the crash MSRs (TLFS 12.4, 12.7, "Guest crash
// enlightenment"), through the synthetic-MSR front as the VT-x back end
// drives it.
#include <cstring>

#include "hypercall/time_msr.hpp"
#include "kernel/base/log.hpp"
#include "kernel/reference_time.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
namespace msr = tlfs::msr;

namespace {

// The TLFS guest algorithm over the overlay's bytes (TLFS 12.7.3).
struct PageView {
  uint32_t sequence;
  uint64_t scale;
  int64_t offset;
};
PageView page_of(const Guest& g) {
  tlfs::ReferenceTscPage p;
  std::memcpy(&p, g.overlays.page[static_cast<size_t>(OverlayId::kReferenceTscPage)], sizeof(p));
  return {p.sequence, p.scale, p.offset};
}
uint64_t guest_read(const PageView& v, uint64_t guest_tsc) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(guest_tsc) * v.scale) >> 64) +
         static_cast<uint64_t>(v.offset);
}
constexpr uint64_t kPageGpa = 0x20000;

}  // namespace

TEST_CASE("reference time: scale and offset match the exact count over a range of frequencies") {
  // ((tsc * scale) >> 64) + offset is 100 ns units since the start, at most
  // one unit low, for TSCs from just above 10 MHz to 10 GHz and TSC values up
  // to a century of run time.
  for (uint64_t hz : {10'000'001ull, 14'318'180ull, 50'000'000ull, 1'000'000'000ull,
                      2'400'000'000ull, 3'000'000'007ull, 10'000'000'000ull}) {
    INFO("hz " << hz);
    const uint64_t start = 123'456'789'012ull;
    const ReferenceScale s = reference_scale(hz, start);
    REQUIRE(s.scale != 0);
    CHECK(reference_time_at(start, s) == 0);
    for (uint64_t seconds : {1ull, 3600ull, 86400ull * 365, 86400ull * 365 * 50}) {
      if (seconds > (~0ull - start) / hz) continue;  // past 64-bit TSC values
      const uint64_t tsc = start + seconds * hz;
      const uint64_t exact = seconds * tlfs::kReferenceHz;
      const uint64_t got = reference_time_at(tsc, s);
      CHECK(got <= exact);
      CHECK(exact - got <= 1 + seconds * tlfs::kReferenceHz / (1ull << 40));
    }
  }
}

TEST_CASE("reference time: the overflow edges") {
  CHECK(tsc_scale_for(0) == 0);
  CHECK(tsc_scale_for(tlfs::kReferenceHz) == 0);  // scale would be exactly 2^64
  CHECK(tsc_scale_for(tlfs::kReferenceHz + 1) ==
        0xFFFFFE5280D924C8ull);               // floor(10^7*2^64/(10^7+1))
  CHECK(tsc_scale_for(~0ull) == 10'000'000);  // 10^7 * 2^64 / (2^64 - 1), floored
  // TSC wrap-around: the formula wraps like the guest's 64-bit arithmetic.
  const ReferenceScale s = reference_scale(1'000'000'000, ~0ull - 999);
  CHECK(reference_time_at(~0ull - 999, s) == 0);
  CHECK(reference_time_at(~0ull, s) == 9);
}

TEST_CASE("reference time: the TSC at which a deadline is reached") {
  for (uint64_t hz : {10'000'001ull, 50'000'000ull, 2'400'000'000ull}) {
    INFO("hz " << hz);
    const ReferenceScale s = reference_scale(hz, 5'000'000);
    for (uint64_t t : {0ull, 1ull, 12345ull, 10'000'000ull, 1'000'000'000'000ull}) {
      const uint64_t tsc = tsc_at_reference_time(t, s);
      REQUIRE(tsc != kNoDeadline);
      CHECK(reference_time_at(tsc, s) >= t);
      // One tick earlier it had not (signed: reference time wraps below 0).
      if (tsc > 0) CHECK(static_cast<int64_t>(reference_time_at(tsc - 1, s) - t) < 0);
    }
  }
  CHECK(tsc_at_reference_time(5, ReferenceScale{}) == kNoDeadline);  // no scale
  const ReferenceScale s = reference_scale(1'000'000'000, 0);
  CHECK(tsc_at_reference_time(~0ull >> 1, s) == kNoDeadline);  // beyond 64-bit TSC values
}

TEST_CASE("TSC page: the overlay holds sequence, scale and offset that reproduce TIME_REF_COUNT") {
  Guest g(2);
  g.clock.advance_100ns(777);
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, kPageGpa | 1) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kReferenceTsc) == (kPageGpa | 1));
  CHECK(g.overlays.at[static_cast<size_t>(OverlayId::kReferenceTscPage)] == kPageGpa);
  const PageView v = page_of(g);
  CHECK(v.sequence != 0);
  CHECK(v.sequence != 0xFFFFFFFFu);
  for (uint64_t step : {0ull, 1ull, 99ull, 100ull, 1'000'000ull, 123'456'789ull}) {
    g.clock.tsc += step;
    for (uint32_t vp = 0; vp < 2; ++vp) {
      CHECK(guest_read(v, g.clock.tsc) == g.rdmsr(vp, msr::kTimeRefCount));
    }
  }
  // The RAM underneath was never written.
  for (uint32_t i = 0; i < kPageSize; ++i) REQUIRE(g.memory.bytes[kPageGpa + i] == 0);
}

TEST_CASE("TSC page: moving, disabling and re-enabling it; reserved bits read back") {
  Guest g(1);
  const size_t id = static_cast<size_t>(OverlayId::kReferenceTscPage);
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, kPageGpa | 1) == MsrResult::kOk);
  const uint32_t first = page_of(g).sequence;
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, (kPageGpa + 0x1000) | 1) == MsrResult::kOk);
  CHECK(g.overlays.at[id] == kPageGpa + 0x1000);
  CHECK(page_of(g).sequence != first);  // republished: readers that raced retry
  CHECK(page_of(g).sequence != 0);
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, (kPageGpa + 0x1000) | 0xFFE) == MsrResult::kOk);
  CHECK(g.overlays.at[id] == FakeOverlays::kNowhere);  // enable clear: RAM visible again
  CHECK(g.rdmsr(0, msr::kReferenceTsc) == ((kPageGpa + 0x1000) | 0xFFE));
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, kPageGpa | 1) == MsrResult::kOk);
  CHECK(g.overlays.at[id] == kPageGpa);
  g.clock.advance_100ns(5000);
  CHECK(guest_read(page_of(g), g.clock.tsc) == g.rdmsr(0, msr::kTimeRefCount));
}

TEST_CASE("TSC page: sequence 0 while VPs' TSC offsets differ, valid again when they agree") {
  Guest g(2);
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, kPageGpa | 1) == MsrResult::kOk);
  g.clock.advance_100ns(1000);
  {
    LockGuard guard(g.hv->lock);
    set_guest_tsc_offset(g.vp(1), 5'000'000);
  }
  CHECK(page_of(g).sequence == tlfs::kTscSequenceInvalid);
  // TIME_REF_COUNT derives from the host TSC: unaffected, still monotonic.
  const uint64_t before = g.rdmsr(1, msr::kTimeRefCount);
  g.clock.advance_100ns(1);
  CHECK(g.rdmsr(1, msr::kTimeRefCount) > before);
  {
    LockGuard guard(g.hv->lock);
    set_guest_tsc_offset(g.vp(0), 5'000'000);
  }
  const PageView v = page_of(g);
  REQUIRE(v.sequence != 0);
  // A guest applies the page to its own TSC (host + offset) and gets the
  // reference time within one unit: the two floors of the 64.64 products
  // need not fall on the same side (exact only with offset 0, as above).
  auto near = [](uint64_t a, uint64_t b) { return (a > b ? a - b : b - a) <= 1; };
  for (uint64_t step : {0ull, 100ull, 1'000'000ull}) {
    g.clock.tsc += step;
    CHECK(near(guest_read(v, g.clock.tsc + 5'000'000), g.rdmsr(0, msr::kTimeRefCount)));
  }
  // A negative offset too (the guest's TSC stays positive: the TLFS formula
  // is not modular in the TSC).
  g.clock.tsc += 10'000'000;
  {
    LockGuard guard(g.hv->lock);
    set_guest_tsc_offset(g.vp(0), -1'234'567);
    set_guest_tsc_offset(g.vp(1), -1'234'567);
  }
  const PageView w = page_of(g);
  REQUIRE(w.sequence != 0);
  const uint64_t msr_time = g.rdmsr(0, msr::kTimeRefCount);
  const uint64_t page_time = guest_read(w, g.clock.tsc - 1'234'567);
  CHECK(near(page_time, msr_time));
}

TEST_CASE("TSC page: the test device's sequence 0 makes guests use the MSR until restored") {
  Guest g(1);
  REQUIRE(g.wrmsr(0, msr::kReferenceTsc, kPageGpa | 1) == MsrResult::kOk);
  {
    LockGuard guard(g.hv->lock);
    force_reference_tsc_invalid(*g.partition, true);
  }
  CHECK(page_of(g).sequence == 0);
  {
    LockGuard guard(g.hv->lock);
    force_reference_tsc_invalid(*g.partition, false);
  }
  CHECK(page_of(g).sequence != 0);
  CHECK(guest_read(page_of(g), g.clock.tsc) == g.rdmsr(0, msr::kTimeRefCount));
}

TEST_CASE("time MSRs: TIME_REF_COUNT and the frequencies are read-only; invariant control 0 or 1") {
  Guest g(1);
  CHECK(g.rdmsr(0, msr::kTscFrequency) == FakeClock::kTscHz);
  CHECK(g.rdmsr(0, msr::kApicFrequency) == kApicHz);
  for (uint32_t m : {msr::kTimeRefCount, msr::kTscFrequency, msr::kApicFrequency}) {
    INFO(std::hex << m);
    CHECK(g.wrmsr(0, m, 0) == MsrResult::kGp);
  }
  CHECK(g.rdmsr(0, msr::kTscInvariantControl) == 0);
  CHECK(g.wrmsr(0, msr::kTscInvariantControl, 1) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kTscInvariantControl) == 1);
  CHECK(g.wrmsr(0, msr::kTscInvariantControl, 2) == MsrResult::kGp);
  CHECK(g.rdmsr(0, msr::kTscInvariantControl) == 1);
}

TEST_CASE("crash MSRs: P0-P4 hold values, CRASH_CTL reads the capabilities, reserved bits #GP") {
  Guest g(2);
  for (uint32_t i = 0; i < 5; ++i) {
    REQUIRE(g.wrmsr(i % 2, msr::kCrashP0 + i, 0x1111 * (i + 1)) == MsrResult::kOk);
  }
  for (uint32_t i = 0; i < 5; ++i) CHECK(g.rdmsr(0, msr::kCrashP0 + i) == 0x1111 * (i + 1));
  // Partition-wide: VP 1 sees what VP 0 wrote.
  CHECK(g.rdmsr(1, msr::kCrashP0) == 0x1111);
  CHECK(g.rdmsr(0, msr::kCrashCtl) == (tlfs::crash_ctl::kNotify | tlfs::crash_ctl::kCrashMessage));
  CHECK(g.wrmsr(0, msr::kCrashCtl, 1) == MsrResult::kGp);
  CHECK(g.wrmsr(0, msr::kCrashCtl, 1ull << 61) == MsrResult::kGp);
  // Without the notify bit nothing happens.
  CHECK(g.wrmsr(0, msr::kCrashCtl, tlfs::crash_ctl::kCrashMessage) == MsrResult::kOk);
  CHECK(g.partition->active());
}

TEST_CASE("crash MSRs: a notify stops the partition once; its message is read from guest RAM") {
  microhv::log::set_quiet(true);
  Guest g(2);
  const char text[] = "Kernel panic - not syncing: test\n\x01\x02 tail";
  std::memcpy(&g.memory.bytes[0x30000], text, sizeof(text));
  REQUIRE(g.wrmsr(1, msr::kCrashP0 + 3, 0x30000) == MsrResult::kOk);
  REQUIRE(g.wrmsr(1, msr::kCrashP0 + 4, sizeof(text)) == MsrResult::kOk);
  const size_t writes = g.memory.writes.size();
  REQUIRE(g.wrmsr(1, msr::kCrashCtl, tlfs::crash_ctl::kNotify | tlfs::crash_ctl::kCrashMessage) ==
          MsrResult::kOk);
  CHECK_FALSE(g.partition->active());
  CHECK(g.partition->crash.reported);
  CHECK(g.memory.writes.size() == writes);  // the guest's page is only read
  // A second report (another VP racing) is accepted and ignored.
  CHECK(g.wrmsr(0, msr::kCrashCtl, tlfs::crash_ctl::kNotify) == MsrResult::kOk);
  microhv::log::set_quiet(false);
}

TEST_CASE("crash MSRs: a message outside guest RAM or over a page is not read") {
  microhv::log::set_quiet(true);
  for (uint64_t gpa_size : {0ull, 1ull}) {
    Guest g(1);
    g.memory.hole_start = 0x40000;
    g.memory.hole_end = 0x41000;
    REQUIRE(g.wrmsr(0, msr::kCrashP0 + 3, gpa_size == 0 ? 0x40000 : 0x30000) == MsrResult::kOk);
    REQUIRE(g.wrmsr(0, msr::kCrashP0 + 4, gpa_size == 0 ? 16 : tlfs::kCrashMessageMax + 1) ==
            MsrResult::kOk);
    REQUIRE(g.wrmsr(0, msr::kCrashCtl, tlfs::crash_ctl::kNotify | tlfs::crash_ctl::kCrashMessage) ==
            MsrResult::kOk);
    CHECK_FALSE(g.partition->active());  // still stopped: the report itself happened
  }
  microhv::log::set_quiet(false);
}
