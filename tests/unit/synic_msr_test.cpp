// Synthetic MSR semantics and #GP rules (TLFS appendix, synthetic MSRs).
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
namespace msr = tlfs::msr;

TEST_CASE("MSR: GUEST_OS_ID is partition-wide, 0 at reset, read/write") {
  Guest g(2);
  CHECK(g.rdmsr(0, msr::kGuestOsId) == 0);
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 0x8100000000000001ull) == MsrResult::kOk);
  CHECK(g.rdmsr(1, msr::kGuestOsId) == 0x8100000000000001ull);
}

namespace {
constexpr uint64_t kNowhere = FakeOverlays::kNowhere;
uint64_t hypercall_page_at(const Guest& g) {
  return g.overlays.at[static_cast<size_t>(OverlayId::kHypercallPage)];
}
}  // namespace

TEST_CASE("MSR: HYPERCALL cannot be enabled while GUEST_OS_ID is 0") {
  Guest g(1);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5000 | 1) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5000);
  CHECK(g.overlays.calls.empty());  // no hypercall page anywhere
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 1) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5000 | 1) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5001);
  CHECK(hypercall_page_at(g) == 0x5000);
}

TEST_CASE(
    "MSR: the hypercall page is an overlay holding VMCALL; RET, the RAM underneath untouched") {
  Guest g(1);
  g.memory.store<uint32_t>(0x5000, 0x11223344);  // guest data where the page goes
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 1) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5000 | 1) == MsrResult::kOk);
  REQUIRE(g.overlays.calls.size() == 1);
  CHECK(g.overlays.calls[0].id == OverlayId::kHypercallPage);
  CHECK(g.overlays.calls[0].gpa == 0x5000);
  // TLFS 3.13: the hypervisor puts the calling sequence there; on Intel
  // VMCALL (0F 01 C1) and RET (C3). The rest traps (INT3, CC).
  const uint8_t* page = g.overlays.page[static_cast<size_t>(OverlayId::kHypercallPage)];
  CHECK(page[0] == 0x0F);
  CHECK(page[1] == 0x01);
  CHECK(page[2] == 0xC1);
  CHECK(page[3] == 0xC3);
  for (uint32_t i = 4; i < kPageSize; ++i) REQUIRE(page[i] == 0xCC);
  CHECK(g.memory.load<uint32_t>(0x5000) == 0x11223344);
  CHECK(g.memory.writes.empty());
}

TEST_CASE("MSR: the hypercall page follows the MSR: moved, disabled, and gone with GUEST_OS_ID 0") {
  Guest g(1);
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 1) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5001) == MsrResult::kOk);
  CHECK(hypercall_page_at(g) == 0x5000);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5001) == MsrResult::kOk);  // the same: nothing moves
  CHECK(g.overlays.calls.size() == 1);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x9001) == MsrResult::kOk);
  CHECK(hypercall_page_at(g) == 0x9000);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x9000) == MsrResult::kOk);  // enable bit clear
  CHECK(hypercall_page_at(g) == kNowhere);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x7001) == MsrResult::kOk);
  CHECK(hypercall_page_at(g) == 0x7000);
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 0) == MsrResult::kOk);  // TLFS 3.13: disables it
  CHECK(hypercall_page_at(g) == kNowhere);
  CHECK((g.rdmsr(0, msr::kHypercall) & 1) == 0);
  REQUIRE(g.overlays.calls.size() == 5);
  CHECK(g.overlays.calls[2].gpa == kNowhere);
  CHECK(g.overlays.calls[4].gpa == kNowhere);
}

TEST_CASE("MSR: HYPERCALL reserved bits 11:2 are #GP; a locked HYPERCALL ignores writes") {
  Guest g(1);
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 1) == MsrResult::kOk);
  CHECK(g.wrmsr(0, msr::kHypercall, 0x5000 | (1 << 2)) == MsrResult::kGp);
  CHECK(g.wrmsr(0, msr::kHypercall, 0x5000 | (1 << 11)) == MsrResult::kGp);
  CHECK(g.overlays.calls.empty());
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5000 | 3) == MsrResult::kOk);  // enable + lock
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x9000 | 1) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5003);
  CHECK(hypercall_page_at(g) == 0x5000);
  CHECK(g.overlays.calls.size() == 1);
}

TEST_CASE("MSR: VP_INDEX is unique per VP and read-only") {
  Guest g(3);
  for (uint32_t i = 0; i < 3; ++i) CHECK(g.rdmsr(i, msr::kVpIndex) == i);
  CHECK(g.wrmsr(1, msr::kVpIndex, 0) == MsrResult::kGp);
}

TEST_CASE("MSR: TIME_REF_COUNT reads the partition clock and is read-only") {
  Guest g(1);
  // TLFS 12.4: 100 ns units since the partition started. It is computed with
  // the reference TSC page's formula (floor of a 64.64 scale), so it may read
  // one unit low of the exact count, never high.
  g.clock.advance_100ns(123456);
  const uint64_t t = g.rdmsr(0, msr::kTimeRefCount);
  CHECK(t <= 123456);
  CHECK(t >= 123455);
  CHECK(g.wrmsr(0, msr::kTimeRefCount, 0) == MsrResult::kGp);
}

TEST_CASE("MSR: SVERSION reads 1 and a write is #GP") {
  Guest g(1);
  CHECK(g.rdmsr(0, msr::kSversion) == 1);
  CHECK(g.wrmsr(0, msr::kSversion, 1) == MsrResult::kGp);
}

TEST_CASE("MSR: SCONTROL, SIMP and SIEFP are per VP and read back what was written") {
  Guest g(2);
  REQUIRE(g.wrmsr(0, msr::kScontrol, 1) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, msr::kSimp, 0x7001) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, msr::kSiefp, 0x8001) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kScontrol) == 1);
  CHECK(g.rdmsr(0, msr::kSimp) == 0x7001);
  CHECK(g.rdmsr(0, msr::kSiefp) == 0x8001);
  CHECK(g.rdmsr(1, msr::kScontrol) == 0);
  CHECK(g.rdmsr(1, msr::kSimp) == 0);
}

TEST_CASE("MSR: EOM reads 0 and accepts any write") {
  Guest g(1);
  REQUIRE(g.wrmsr(0, msr::kEom, 0x1234) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kEom) == 0);
}

TEST_CASE("MSR: SINTx reset value is 0x10000 (masked)") {
  Guest g(1);
  for (uint32_t i = 0; i < 16; ++i) CHECK(g.rdmsr(0, msr::kSint0 + i) == 0x10000);
}

TEST_CASE("MSR: SINT with a vector below 16 is #GP when unmasked, allowed when masked") {
  Guest g(1);
  for (uint64_t v : {0ull, 1ull, 15ull}) {
    CHECK(g.wrmsr(0, msr::kSint0 + 3, v) == MsrResult::kGp);
    CHECK(g.wrmsr(0, msr::kSint0 + 3, v | tlfs::sint_bits::kMasked) == MsrResult::kOk);
  }
  CHECK(g.wrmsr(0, msr::kSint0 + 3, 16) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kSint0 + 3) == 16);
}

TEST_CASE("MSR: SINT reserved bits are #GP; AutoEOI and polling bits are kept") {
  Guest g(1);
  CHECK(g.wrmsr(0, msr::kSint0, 0x50 | (1ull << 19)) == MsrResult::kGp);
  CHECK(g.wrmsr(0, msr::kSint0, 0x50 | (1ull << 8)) == MsrResult::kGp);
  uint64_t v = 0xF3 | tlfs::sint_bits::kAutoEoi | tlfs::sint_bits::kPolling;
  REQUIRE(g.wrmsr(0, msr::kSint0 + 15, v) == MsrResult::kOk);
  CHECK(g.rdmsr(0, msr::kSint0 + 15) == v);
}

TEST_CASE("MSR: unimplemented synthetic MSRs are #GP, others are not ours") {
  Guest g(1);
  uint64_t v = 0;
  for (uint32_t m : {0x40000003u, 0x40000024u, 0x40000085u, 0x400000A0u, 0x400000B8u, 0x400000FFu,
                     0x40000106u, 0x40000117u, 0x400001FFu}) {
    INFO(std::hex << m);
    CHECK(read_synthetic_msr(g.vp(0), m, &v) == MsrResult::kGp);
    CHECK(write_synthetic_msr(g.vp(0), m, 0) == MsrResult::kGp);
  }
  CHECK(read_synthetic_msr(g.vp(0), 0x3FFFFFFF, &v) == MsrResult::kNotSynthetic);
  CHECK(write_synthetic_msr(g.vp(0), 0x40000200, 0) == MsrResult::kNotSynthetic);
}

TEST_CASE("MSR: SynIC MSRs are #GP when the partition lacks SynIC access") {
  PartitionFeatures f = kFullFeatures;
  f.msr_access &= ~tlfs::cpuid::kAccessSynicRegs;
  Guest g(1, f);
  uint64_t v = 0;
  CHECK(read_synthetic_msr(g.vp(0), msr::kSimp, &v) == MsrResult::kGp);
  CHECK(write_synthetic_msr(g.vp(0), msr::kSint0, 0x50) == MsrResult::kGp);
  CHECK(read_synthetic_msr(g.vp(0), msr::kVpIndex, &v) == MsrResult::kOk);
}

TEST_CASE(
    "MSR: VP_ASSIST_PAGE is stored per VP (Linux writes it unadvertised); reserved bits #GP") {
  Guest g(2);
  REQUIRE(g.wrmsr(1, 0x40000073, 0x7000 | 1) == MsrResult::kOk);
  CHECK(g.rdmsr(1, 0x40000073) == 0x7001);
  CHECK(g.rdmsr(0, 0x40000073) == 0);
  CHECK(g.wrmsr(1, 0x40000073, 0x7000 | 2) == MsrResult::kGp);
  CHECK(g.rdmsr(1, 0x40000073) == 0x7001);
}
