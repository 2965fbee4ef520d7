// VP numbering from what MP services reports, and the AP bring-up
// handshake (boot/mp/): the BSP never blocks on an AP and can abandon one
// that does not come up.
#include <catch2/catch.hpp>
#include <cstddef>

#include "boot/mp/ap_handshake.hpp"
#include "boot/mp/processors.hpp"

using namespace microhv::boot;

namespace {
constexpr uint32_t kMaxCpus = 64;
constexpr uint32_t kOk = kProcessorEnabled | kProcessorHealthy;
}  // namespace

TEST_CASE("boot mp: VP index = processor number with the BSP as processor 0") {
  const uint32_t flags[] = {kOk | kProcessorIsBsp, kOk, kOk, kOk};
  uint32_t vp_of[4];
  REQUIRE(assign_vp_indexes(flags, 4, 0, kMaxCpus, vp_of) == 4);
  for (uint32_t p = 0; p < 4; ++p) CHECK(vp_of[p] == p);
}

TEST_CASE("boot mp: the BSP is VP 0 wherever MP services numbers it; disabled CPUs get no VP") {
  const uint32_t flags[] = {kOk, kOk, kOk | kProcessorIsBsp, kProcessorEnabled /* unhealthy */,
                            0,   kOk};
  uint32_t vp_of[6];
  REQUIRE(assign_vp_indexes(flags, 6, 2, kMaxCpus, vp_of) == 4);
  CHECK(vp_of[2] == 0);
  CHECK(vp_of[0] == 1);
  CHECK(vp_of[1] == 2);
  CHECK(vp_of[3] == kNoVp);
  CHECK(vp_of[4] == kNoVp);
  CHECK(vp_of[5] == 3);
}

TEST_CASE("boot mp: at most max_vps VPs; an out-of-range BSP gives none") {
  const uint32_t flags[] = {kOk, kOk, kOk, kOk};
  uint32_t vp_of[4];
  CHECK(assign_vp_indexes(flags, 4, 0, 2, vp_of) == 2);
  CHECK(vp_of[2] == kNoVp);
  CHECK(assign_vp_indexes(flags, 4, 7, kMaxCpus, vp_of) == 0);
}

TEST_CASE(
    "boot mp: AP handshake: the BSP can abandon an AP that has not started, not one that runs") {
  ApHandshake waiting;
  CHECK(bsp_abandon(waiting));
  CHECK_FALSE(ap_begin(waiting));  // too late: the AP does nothing
  CHECK_FALSE(ap_done(waiting));

  ApHandshake running;
  REQUIRE(ap_begin(running));
  CHECK_FALSE(bsp_abandon(running));
  CHECK_FALSE(ap_done(running));
  ap_finish(running, 0, 1, 1);
  CHECK(ap_done(running));
  CHECK(running.status == 0);
  CHECK(running.vp_index == 1);
  CHECK(running.hv_bit == 1);
  CHECK_FALSE(bsp_abandon(running));
}

TEST_CASE("boot mp: EFI_PROCESSOR_INFORMATION has the PI 1.7 layout (48 bytes)") {
  // PI spec Vol. 2, EFI_MP_SERVICES_PROTOCOL.GetProcessorInfo: UINT64
  // ProcessorId, UINT32 StatusFlag, EFI_CPU_PHYSICAL_LOCATION (3 x UINT32),
  // EXTENDED_PROCESSOR_INFORMATION (EFI_CPU_PHYSICAL_LOCATION2, 6 x UINT32).
  STATIC_REQUIRE(offsetof(EfiProcessorInformation, processor_id) == 0);
  STATIC_REQUIRE(offsetof(EfiProcessorInformation, status_flag) == 8);
  STATIC_REQUIRE(offsetof(EfiProcessorInformation, package) == 12);
  STATIC_REQUIRE(offsetof(EfiProcessorInformation, thread) == 20);
  STATIC_REQUIRE(offsetof(EfiProcessorInformation, extended_location) == 24);
  STATIC_REQUIRE(sizeof(EfiProcessorInformation) == 48);
  // Bit 24 of the processor number asks for the extended location.
  STATIC_REQUIRE(kExtendedTopology == 0x1000000);
}
