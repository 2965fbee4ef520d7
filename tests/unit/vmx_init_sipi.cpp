// INIT and SIPI for already-virtualized CPUs: the register state after INIT
// (SDM Vol. 3A Table 9-1) and where a SIPI starts the AP.
#include <catch2/catch.hpp>

#include "arch/vmx/vmcs.hpp"
#include "vmx/init_sipi.hpp"

using namespace microhv::vmx;

TEST_CASE("init_sipi: an AP after INIT waits for SIPI in real mode at F000:FFF0") {
  const ResetState s = init_state(0x80000033, 0x000806C1, false);
  CHECK(s.activity == activity::kWaitForSipi);
  CHECK(s.cr0 == 0x10);  // ET only: CD/NW were clear
  CHECK(s.cr3 == 0);
  CHECK(s.cr4 == 0);
  CHECK(s.efer == 0);
  CHECK(s.rflags == 0x2);
  CHECK(s.rip == 0xFFF0);
  CHECK(s.rsp == 0);
  CHECK(s.rdx == 0x000806C1);
  CHECK(s.dr7 == 0x400);
  CHECK(s.cs.selector == 0xF000);
  CHECK(s.cs.base == 0xFFFF0000);
  CHECK(s.cs.limit == 0xFFFF);
  CHECK(s.cs.access == 0x9B);  // present, execute/read, accessed
  CHECK(s.data.selector == 0);
  CHECK(s.data.base == 0);
  CHECK(s.data.limit == 0xFFFF);
  CHECK(s.data.access == 0x93);  // present, read/write, accessed
  CHECK(s.ldtr.access == 0x82);
  CHECK(s.tr.access == 0x8B);  // busy TSS: VM entry wants a usable TR
  CHECK(s.gdtr_base == 0);
  CHECK(s.gdtr_limit == 0xFFFF);
  CHECK(s.idtr_base == 0);
  CHECK(s.idtr_limit == 0xFFFF);
}

TEST_CASE("init_sipi: INIT keeps CR0.CD and CR0.NW; the BSP runs on from the reset vector") {
  CHECK(init_state(0xE0000011, 0, false).cr0 == 0x60000010);
  CHECK(init_state(0x40000011, 0, false).cr0 == 0x40000010);
  const ResetState bsp = init_state(0x80000033, 0x806C1, true);
  CHECK(bsp.activity == activity::kActive);
  CHECK(bsp.rip == 0xFFF0);
  CHECK(bsp.cs.base == 0xFFFF0000);
}

TEST_CASE("init_sipi: SIPI vector V starts at V * 4096: CS = V << 8, base V << 12, IP 0") {
  STATIC_REQUIRE(sipi_code_segment(0x9A).selector == 0x9A00);
  STATIC_REQUIRE(sipi_code_segment(0x9A).base == 0x9A000);
  STATIC_REQUIRE(sipi_code_segment(0x87).base == 0x87000);
  STATIC_REQUIRE(sipi_code_segment(0xFF).base == 0xFF000);
  STATIC_REQUIRE(sipi_code_segment(0x00).base == 0);
  STATIC_REQUIRE(sipi_code_segment(0x10).limit == 0xFFFF);
  STATIC_REQUIRE(sipi_code_segment(0x10).access == 0x9B);
  STATIC_REQUIRE(kSipiRip == 0);
}
