// The GPA policy as the core applies it (issue 9, items 1 and 8): a GPA
// field of a synthetic MSR beyond the guest's physical address width is a
// reserved bit (#GP, the write does not take effect); an overlay the back
// end refuses or cannot map makes the HYPERCALL write #GP and leaves the
// old page in place; and the core's GuestMemory is the guest's view, so a
// hypercall input, SIM or SIEF page on an overlay never touches the RAM
// hidden under it (README, "Interface choices").
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
namespace msr = tlfs::msr;
using tlfs::Status;

namespace {

uint64_t hypercall_page_at(const Guest& g) {
  return g.overlays.at[static_cast<size_t>(OverlayId::kHypercallPage)];
}

Guest& with_os_id(Guest& g) {
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 1) == MsrResult::kOk);
  return g;
}

// A guest with its hypercall MSRs usable, its SynIC on, and message port
// 0x10 (SINT3, VP 0) behind connection 0x20.
void with_message_port(Guest& g) {
  with_os_id(g);
  g.enable_synic(0, 3);
  REQUIRE(g.create_port(0x10, 3, 0) == Status::kSuccess);
  REQUIRE(g.connect(0x20, 0x10) == Status::kSuccess);
}

}  // namespace

TEST_CASE("GPA policy: a HYPERCALL page beyond the guest's width is #GP (bit 52 included)") {
  Guest g(1);
  g.memory.width = 39;
  with_os_id(g);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5001) == MsrResult::kOk);
  // Issue 9 item 1: bit 52 set on a page number, and the first page past 2^39.
  CHECK(g.wrmsr(0, msr::kHypercall, (1ull << 52) | 0x5001) == MsrResult::kGp);
  CHECK(g.wrmsr(0, msr::kHypercall, (1ull << 39) | 1) == MsrResult::kGp);
  CHECK(g.wrmsr(0, msr::kHypercall, (1ull << 63) | 1) == MsrResult::kGp);
  CHECK(g.wrmsr(0, msr::kHypercall, 1ull << 39) == MsrResult::kGp);  // reserved even disabled
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5001);
  CHECK(hypercall_page_at(g) == 0x5000);
  CHECK(g.overlays.calls.size() == 1);  // the back end never saw those addresses
  // The last page below 2^39 is an address like any other.
  REQUIRE(g.wrmsr(0, msr::kHypercall, ((1ull << 39) - 0x1000) | 1) == MsrResult::kOk);
  CHECK(hypercall_page_at(g) == (1ull << 39) - 0x1000);
  // A locked MSR: the reserved-bit rule comes first, as for bits 11:2.
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5003) == MsrResult::kOk);
  CHECK(g.wrmsr(0, msr::kHypercall, (1ull << 52) | 0x5001) == MsrResult::kGp);
}

TEST_CASE("GPA policy: a refused or failed overlay is #GP and leaves the old page where it was") {
  Guest g(1);
  with_os_id(g);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5001) == MsrResult::kOk);
  g.overlays.refuse_from = 0x80000;  // e.g. microhv's memory, the APIC page, another overlay
  CHECK(g.wrmsr(0, msr::kHypercall, 0x90001) == MsrResult::kGp);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5001);
  CHECK(hypercall_page_at(g) == 0x5000);
  g.overlays.refuse_from = ~0ull;
  g.overlays.fail_from = 0x80000;  // out of page tables
  CHECK(g.wrmsr(0, msr::kHypercall, 0x90001) == MsrResult::kGp);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5001);
  CHECK(hypercall_page_at(g) == 0x5000);
  // Enabling from disabled: refused -> still disabled, no page anywhere.
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x5000) == MsrResult::kOk);
  CHECK(hypercall_page_at(g) == FakeOverlays::kNowhere);
  CHECK(g.wrmsr(0, msr::kHypercall, 0x90001) == MsrResult::kGp);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x5000);
  // Disabling never fails, and GUEST_OS_ID 0 still takes the page away.
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x7001) == MsrResult::kOk);
  REQUIRE(g.wrmsr(0, msr::kGuestOsId, 0) == MsrResult::kOk);
  CHECK(hypercall_page_at(g) == FakeOverlays::kNowhere);
  CHECK(g.rdmsr(0, msr::kHypercall) == 0x7000);
}

TEST_CASE("GPA policy: SIMP, SIEFP and VP_ASSIST_PAGE beyond the width are #GP") {
  Guest g(1);
  g.memory.width = 36;
  for (uint32_t m : {msr::kSimp, msr::kSiefp, msr::kVpAssistPage}) {
    INFO("MSR 0x" << std::hex << m);
    REQUIRE(g.wrmsr(0, m, 0x10001) == MsrResult::kOk);
    CHECK(g.wrmsr(0, m, (1ull << 36) | 1) == MsrResult::kGp);
    CHECK(g.wrmsr(0, m, (1ull << 52) | 0x10001) == MsrResult::kGp);
    CHECK(g.wrmsr(0, m, 1ull << 36) == MsrResult::kGp);  // disabled, still reserved bits
    CHECK(g.rdmsr(0, m) == 0x10001);
    REQUIRE(g.wrmsr(0, m, ((1ull << 36) - 0x1000) | 1) == MsrResult::kOk);
  }
}

TEST_CASE("GPA policy: a hypercall input on the overlay page is INVALID_ALIGNMENT") {
  Guest g(1);
  with_message_port(g);
  // The hypercall page on the input page: the guest sees the overlay there,
  // not the message it wrote into the RAM underneath before.
  REQUIRE(g.wrmsr(0, msr::kHypercall, kInputPage | 1) == MsrResult::kOk);
  CHECK(g.post(0x20, 1, 16) == Status::kInvalidAlignment);
  CHECK(g.irqs.raised.empty());
  CHECK(g.slot(0, 3).message_type == 0);
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x9001) == MsrResult::kOk);
  CHECK(g.post(0x20, 1, 16) == Status::kSuccess);  // the RAM is the guest's again
}

TEST_CASE("GPA policy: a SIM page under an overlay takes no message; queued ones wait, none lost") {
  Guest g(1);
  with_message_port(g);
  REQUIRE(g.post(0x20, 1, 16, 0x11) == Status::kSuccess);  // A: in the slot
  REQUIRE(g.post(0x20, 2, 16, 0x22) == Status::kSuccess);  // B: queued, MessagePending
  // The hypercall page moves onto the SIM page.
  REQUIRE(g.wrmsr(0, msr::kHypercall, sim_of(0) | 1) == MsrResult::kOk);
  const size_t writes = g.memory.writes.size();
  CHECK(g.post(0x20, 3, 16, 0x33) == Status::kInvalidSynicState);
  REQUIRE(g.wrmsr(0, msr::kEom, 0) == MsrResult::kOk);  // a delivery point: nothing can go in
  CHECK(g.memory.writes.size() == writes);  // nothing written into the RAM under the overlay
  // The overlay goes; the guest frees A's slot and EOMs: B arrives.
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x9001) == MsrResult::kOk);
  CHECK(g.slot(0, 3).message_type == 1);
  CHECK(g.consume(0, 3));  // MessagePending was set
  CHECK(g.slot(0, 3).message_type == 2);
  CHECK(g.slot(0, 3).payload[0] == 0x22);
  CHECK_FALSE(g.consume(0, 3));
}

TEST_CASE("GPA policy: a SIEF page under an overlay takes no event") {
  Guest g(1);
  with_os_id(g);
  g.enable_synic(0, 4);
  REQUIRE(g.create_port(0x11, 4, 0, tlfs::PortType::kEvent, 0, 8) == Status::kSuccess);
  REQUIRE(g.connect(0x21, 0x11, tlfs::PortType::kEvent) == Status::kSuccess);
  REQUIRE(g.wrmsr(0, msr::kHypercall, sief_of(0) | 1) == MsrResult::kOk);
  const size_t writes = g.memory.writes.size();
  CHECK(g.signal(0x21, 3) == Status::kInvalidSynicState);
  CHECK(g.memory.writes.size() == writes);
  CHECK(g.irqs.raised.empty());
  REQUIRE(g.wrmsr(0, msr::kHypercall, 0x9001) == MsrResult::kOk);
  CHECK(g.signal(0x21, 3) == Status::kSuccess);
}
