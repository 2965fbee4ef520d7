// The enable sequence against a register file that behaves as VT-d 10.4
// describes: GSTS follows GCMD after a few polls, ICC and IVT clear when the
// invalidation is done. The order of the writes is the specification's
// (10.4.4 SRTP, 6.5.1 context cache before IOTLB, 6.8 write buffer flush),
// every GCMD write changes exactly one bit (10.4.4), and every wait is
// bounded.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "arch/vtd.hpp"
#include "tests/unit/vtd_fakes.hpp"
#include "vmx/vtd/unit.hpp"

using namespace microhv;
using namespace microhv::vtd;
using microhv::vtd::test::FakeUnit;
namespace hw = microhv::arch::vtd;
namespace t = microhv::vtd::test;

namespace {

constexpr Hpa kRoot{0x7654000};

struct Outcome {
  bool ok;
  std::string error;
};

Outcome enable(FakeUnit& u) {
  char error[200] = "";
  const bool ok = enable_translation(u, read_caps(u), kRoot, error, sizeof(error));
  return {ok, error};
}

// The register writes by name; GCMD writes by the command bit they change
// ("GCMD TE", "GCMD QIE off").
std::vector<std::string> writes(const FakeUnit& u) {
  std::vector<std::string> out;
  for (const auto& w : u.log) {
    if (w.offset == hw::kGcmdReg) {
      static const std::pair<uint32_t, const char*> kBits[] = {
          {hw::gcmd::kTe, "TE"},   {hw::gcmd::kSrtp, "SRTP"}, {hw::gcmd::kWbf, "WBF"},
          {hw::gcmd::kQie, "QIE"}, {hw::gcmd::kIre, "IRE"},   {hw::gcmd::kSfl, "SFL"}};
      std::string name = "GCMD";
      for (const auto& [bit, text] : kBits) {
        if ((w.changed & bit) != 0)
          name += std::string(" ") + text + ((w.value & bit) ? "" : " off");
      }
      out.push_back(name);
    } else if (w.offset == hw::kRtaddrReg) {
      out.push_back("RTADDR");
    } else if (w.offset == hw::kCcmdReg) {
      out.push_back("CCMD");
    } else if (w.offset == u.iotlb_reg()) {
      out.push_back("IOTLB");
    } else if (w.offset == hw::kFectlReg) {
      out.push_back("FECTL");
    } else if (w.offset == hw::kPmenReg) {
      out.push_back((w.value & hw::pmen::kEpm) != 0 ? "PMEN EPM" : "PMEN EPM off");
    } else {
      out.push_back("other");
    }
  }
  return out;
}

}  // namespace

TEST_CASE("enable: the register writes come in the specification's order") {
  FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
  const Outcome o = enable(u);
  INFO(o.error);
  REQUIRE(o.ok);
  CHECK(writes(u) ==
        std::vector<std::string>{"FECTL", "RTADDR", "GCMD SRTP", "CCMD", "IOTLB", "GCMD TE"});
  CHECK(u.translating());
  CHECK(u.root_latched == kRoot.value());  // legacy mode: TTM (11:10) = 00
  CHECK(u.fectl == hw::fectl::kIm);        // fault interrupts masked: microhv polls
  CHECK(u.ccmd_after_root);                // 10.4.4: invalidate after SRTP
  CHECK(u.iotlb_after_context);            // 6.5.1: IOTLB after the context cache
  CHECK_FALSE(u.gcmd_rule_broken);
  // Global granularity; drain reads and writes since CAP.DRD/DWD are set.
  CHECK(u.log[3].value == (hw::ccmd::kIcc | 1ull << 61));
  CHECK(u.log[4].value ==
        (hw::iotlb::kIvt | 1ull << 60 | hw::iotlb::kDrainReads | hw::iotlb::kDrainWrites));
  CHECK(u.log[4].offset == 0xF8);  // ECAP.IRO 0xF -> IOTLB_REG at 0xF0 + 8
  CHECK(u.waited_us > 0);          // the status bits took a few polls
}

TEST_CASE("enable: RWBF flushes the write buffers before the root table is set") {
  FakeUnit u(t::kQemuCapAw39 | hw::cap::kRwbf, t::kQemuEcap);
  REQUIRE(enable(u).ok);
  CHECK(writes(u) == std::vector<std::string>{"FECTL", "GCMD WBF", "RTADDR", "GCMD SRTP", "CCMD",
                                              "IOTLB", "GCMD TE"});
  CHECK_FALSE(u.gcmd_rule_broken);
}

TEST_CASE("enable: no drain bits without CAP.DRD/DWD") {
  FakeUnit u(t::kQemuCapAw39 & ~(hw::cap::kDrd | hw::cap::kDwd), t::kQemuEcap);
  REQUIRE(enable(u).ok);
  CHECK(u.log[4].value == (hw::iotlb::kIvt | 1ull << 60));
}

TEST_CASE("enable: state left by firmware") {
  SECTION("queued invalidation is turned off once its queue is empty") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.gsts = hw::gcmd::kQie;
    u.iqh = u.iqt = 0x40;
    REQUIRE(enable(u).ok);
    CHECK(writes(u).front() == "GCMD QIE off");
    CHECK(u.log.front().value == 0);  // QIE cleared, nothing else
    CHECK((u.gsts & hw::gcmd::kQie) == 0);
    CHECK(u.translating());
    CHECK_FALSE(u.gcmd_rule_broken);
  }
  SECTION("a queue that never drains is a bounded failure") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.gsts = hw::gcmd::kQie;
    u.iqh = 0x20;
    u.iqt = 0x40;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error == "the invalidation queue left by firmware did not drain");
    CHECK(u.waited_us == kWaitTimeoutUs);
    CHECK(u.log.empty());
  }
  SECTION("interrupt remapping on: refused, untouched") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.gsts = hw::gcmd::kIre | hw::gcmd::kQie;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error.find("interrupt remapping is enabled") != std::string::npos);
    CHECK(u.log.empty());
  }
  SECTION("translation already on: new tables, TE kept in every command") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.gsts = hw::gcmd::kTe;
    REQUIRE(enable(u).ok);
    for (const auto& w : u.log) {
      if (w.offset == hw::kGcmdReg) CHECK((w.value & hw::gcmd::kTe) != 0);
    }
    CHECK(u.root_latched == kRoot.value());
    CHECK_FALSE(u.gcmd_rule_broken);
  }
}

TEST_CASE("enable: protected memory regions firmware left on are turned off after TE (10.4.16)") {
  const uint64_t plmr_cap = t::kQemuCapAw39 | hw::cap::kPlmr;
  SECTION("EPM on: cleared once translation is on") {
    FakeUnit u(plmr_cap, t::kQemuEcap);
    u.pmen = hw::pmen::kEpm | hw::pmen::kPrs;
    REQUIRE(enable(u).ok);
    CHECK(writes(u).back() == "PMEN EPM off");
    CHECK(u.pmen_off_after_te);
    CHECK(u.pmen == 0);
  }
  SECTION("EPM off: PMEN is not written") {
    FakeUnit u(plmr_cap, t::kQemuEcap);
    REQUIRE(enable(u).ok);
    CHECK(writes(u).back() == "GCMD TE");
  }
  SECTION("no PLMR/PHMR: PMEN is read-only and left alone") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.pmen = hw::pmen::kEpm | hw::pmen::kPrs;  // what a bogus read would show
    REQUIRE(enable(u).ok);
    CHECK(writes(u).back() == "GCMD TE");
  }
  SECTION("PRS never clears: a bounded, named failure") {
    FakeUnit u(plmr_cap, t::kQemuEcap);
    u.pmen = hw::pmen::kEpm | hw::pmen::kPrs;
    u.stuck_pmen = true;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error.rfind("turning off the protected memory regions firmware enabled did not "
                        "complete within 1000 ms (PMEN 0x00000001)",
                        0) == 0);
  }
}

TEST_CASE("enable: every wait is bounded and named") {
  SECTION("TES never sets") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.stuck_status = hw::gcmd::kTe;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error.rfind("enabling translation did not complete within 1000 ms (GSTS 0x", 0) == 0);
  }
  SECTION("RTPS never sets") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.stuck_status = hw::gcmd::kSrtp;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error.rfind("setting the root table did not complete", 0) == 0);
    CHECK(writes(u).back() == "GCMD SRTP");  // nothing after the failed step
  }
  SECTION("the context invalidation never completes") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.stuck_ccmd = true;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error.rfind("global context-cache invalidation did not complete within 1000 ms", 0) ==
          0);
    CHECK(u.waited_us >= kWaitTimeoutUs);
    CHECK_FALSE(u.translating());
  }
  SECTION("the IOTLB invalidation is refused (IAIG 0)") {
    FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
    u.refuse_iotlb = true;
    const Outcome o = enable(u);
    CHECK_FALSE(o.ok);
    CHECK(o.error.rfind("global IOTLB invalidation was refused by the unit", 0) == 0);
    CHECK_FALSE(u.translating());
  }
}

TEST_CASE("disable: TE cleared, TES waited for") {
  FakeUnit u(t::kQemuCapAw39, t::kQemuEcap);
  REQUIRE(enable(u).ok);
  char error[200] = "";
  REQUIRE(disable_translation(u, error, sizeof(error)));
  CHECK_FALSE(u.translating());
  CHECK_FALSE(u.gcmd_rule_broken);
  u.stuck_status = hw::gcmd::kTe;
  u.gsts |= hw::gcmd::kTe;
  CHECK_FALSE(disable_translation(u, error, sizeof(error)));
  CHECK(std::string(error).rfind("disabling translation did not complete", 0) == 0);
}
