// Every CPU a VP, the portable part: the cross-VP inbox and its kick
// protocol (including a multi-threaded check that no vector and no kick is
// lost), the host NMI window fix-up, and which INIT IPIs microhv emulates.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "arch/apic.hpp"
#include "vmx/smp.hpp"

using namespace microhv::vmx;
namespace icr = microhv::arch::apic::icr;

TEST_CASE("smp: SynIC interrupts for a VP waiting for SIPI are dropped, not queued") {
  STATIC_REQUIRE(remote_delivery(activity::kActive) == RemoteDelivery::kQueue);
  STATIC_REQUIRE(remote_delivery(activity::kHlt) == RemoteDelivery::kQueue);  // a halted VP wakes
  STATIC_REQUIRE(remote_delivery(activity::kWaitForSipi) == RemoteDelivery::kDrop);
  STATIC_REQUIRE(remote_delivery(activity::kShutdown) == RemoteDelivery::kDrop);
}

TEST_CASE("smp: only the first of several posts sends a kick; draining takes everything") {
  RemoteQueue q{};
  CHECK(q.post(0x50, true));         // kick needed
  CHECK_FALSE(q.post(0x51, false));  // one is on its way already
  CHECK_FALSE(q.post(0xF3, true));
  CHECK(q.work == 1);
  CHECK(q.take_nmi() == NmiKind::kKick);
  const RemoteQueue::Drained d = q.drain();
  CHECK(d.any);
  CHECK(d.auto_eoi[1] == (1ull << (0x50 - 64)));
  CHECK(d.auto_eoi[3] == (1ull << (0xF3 - 192)));
  CHECK(d.apic[1] == (1ull << (0x51 - 64)));
  CHECK(q.work == 0);
  CHECK_FALSE(q.drain().any);                // nothing twice
  CHECK(q.take_nmi() == NmiKind::kGenuine);  // no kick outstanding: an NMI now is the guest's
  CHECK(q.post(0x52, true));                 // the next post kicks again
}

TEST_CASE("smp: a genuine NMI taken in the host is handed to the guest at the next drain") {
  RemoteQueue q{};
  q.note_host_nmi();
  q.note_host_nmi();
  CHECK(q.work == 1);
  const RemoteQueue::Drained d = q.drain();
  CHECK(d.any);
  CHECK(d.nmis == 2);
}

TEST_CASE("smp: an INIT request is a flag plus a kick, taken once") {
  RemoteQueue q{};
  CHECK(q.post_init());
  CHECK(q.take_init());
  CHECK_FALSE(q.take_init());
}

TEST_CASE("smp: a host NMI between the last inbox test and VMRESUME resumes at the test") {
  constexpr uint64_t kCheck = 0x1000, kVmresume = 0x1008;
  STATIC_REQUIRE(entry_window_fixup(kCheck, kCheck, kVmresume) == kCheck);  // the test runs anyway
  STATIC_REQUIRE(entry_window_fixup(kCheck + 4, kCheck, kVmresume) == kCheck);
  STATIC_REQUIRE(entry_window_fixup(kVmresume, kCheck, kVmresume) == kCheck);
  STATIC_REQUIRE(entry_window_fixup(kVmresume + 3, kCheck, kVmresume) == kVmresume + 3);
  STATIC_REQUIRE(entry_window_fixup(0x500, kCheck, kVmresume) == 0x500);

  RemoteQueue q{};
  CHECK(q.post(0x60, true));
  HostNmiOutcome o = host_nmi(q, kVmresume, kCheck, kVmresume);
  CHECK(o.kind == NmiKind::kKick);
  CHECK(o.rip == kCheck);
  CHECK(q.work == 1);  // so the test sees it
  o = host_nmi(q, 0x500, kCheck, kVmresume);
  CHECK(o.kind == NmiKind::kGenuine);
  CHECK(o.rip == 0x500);
  CHECK(q.drain().nmis == 1);
}

// The protocol under contention: senders post vectors as raise() would; the
// owner, like the back end, looks at the inbox only after it took an NMI
// that some sender's post asked for. Every posted vector must arrive (each
// sender waits until its previous use of a vector was drained, so bits do
// not merge), every NMI must be a kick, and nothing may be left over.
TEST_CASE("smp: no vector and no kick is lost under contention") {
  RemoteQueue q{};
  std::atomic<int> nmis_in_flight{0};
  std::atomic<int> senders_running{3};
  std::atomic<bool> genuine_seen{false};
  std::atomic<uint64_t> posted{0}, received{0};
  constexpr int kSenders = 3;
  constexpr int kRounds = 3000;

  std::thread owner([&] {
    for (;;) {
      if (nmis_in_flight.load() > 0) {
        nmis_in_flight.fetch_sub(1);
        if (q.take_nmi() != NmiKind::kKick) genuine_seen.store(true);
        const RemoteQueue::Drained d = q.drain();
        for_each_vector(d.auto_eoi, [&](uint8_t) { received.fetch_add(1); });
        for_each_vector(d.apic, [&](uint8_t) { received.fetch_add(1); });
      } else if (senders_running.load() == 0 && nmis_in_flight.load() == 0) {
        break;
      }
    }
  });
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      for (int i = 0; i < kRounds; ++i) {
        const uint8_t vector =
            static_cast<uint8_t>(16 + (i * kSenders + s) % 240);  // never another sender's
        const bool auto_eoi = (i & 1) != 0;
        uint64_t* words = auto_eoi ? q.auto_eoi : q.apic;
        while (((__atomic_load_n(&words[vector >> 6], __ATOMIC_SEQ_CST) >> (vector & 63)) & 1) !=
               0) {
        }
        posted.fetch_add(1);
        if (q.post(vector, auto_eoi)) nmis_in_flight.fetch_add(1);
      }
      senders_running.fetch_sub(1);
    });
  }
  for (auto& t : senders) t.join();
  owner.join();
  CHECK_FALSE(genuine_seen.load());
  CHECK(received.load() == posted.load());
  CHECK(posted.load() == kSenders * kRounds);
  CHECK(q.kick_sent == 0);
  CHECK_FALSE(q.drain().any);
}

TEST_CASE("smp: which INIT IPIs microhv emulates") {
  const microhv::ApicId apic[] = {microhv::ApicId(0), microhv::ApicId(1), microhv::ApicId(4),
                                  microhv::ApicId(6)};  // VP n has APIC id apic[n]
  const uint32_t kInitAssert = icr::kInit | icr::kAssert;

  // Not INIT: sent as written (a SIPI to one CPU, fixed, NMI).
  CHECK(decide_icr(icr::kStartup | 0x87, 1, false, apic, 4, 0, false).action ==
        IcrAction::kPassThrough);
  CHECK(decide_icr(0x40F3, 1, false, apic, 4, 0, false).action == IcrAction::kPassThrough);
  CHECK(decide_icr((4u << 8) | icr::kAssert, 1, false, apic, 4, 0, false).action ==
        IcrAction::kPassThrough);

  // INIT to a VP by physical APIC id (xAPIC and x2APIC).
  IcrDecision d = decide_icr(kInitAssert, 4, false, apic, 4, 0, false);
  CHECK(d.action == IcrAction::kEmulateInit);
  CHECK(d.vps == 0b0100);
  CHECK_FALSE(d.natives_too);
  d = decide_icr(kInitAssert | icr::kLevelTriggered, 6, true, apic, 4, 1, false);
  CHECK(d.vps == 0b1000);

  // INIT to a CPU that is not a VP: sent.
  CHECK(decide_icr(kInitAssert, 9, false, apic, 4, 0, true).action == IcrAction::kPassThrough);
  // INIT level de-assert: no effect on modern CPUs, dropped.
  CHECK(decide_icr(icr::kInit | icr::kLevelTriggered, 4, false, apic, 4, 0, false).action ==
        IcrAction::kDrop);
  // Logical destination mode: sent as written.
  CHECK(decide_icr(kInitAssert | icr::kLogical, 4, false, apic, 4, 0, false).action ==
        IcrAction::kPassThrough);

  // Shorthands (OVMF's broadcast at ExitBootServices is all-but-self).
  d = decide_icr(kInitAssert | icr::kShorthandAllButSelf, 0, false, apic, 4, 0, false);
  CHECK(d.action == IcrAction::kEmulateInit);
  CHECK(d.vps == 0b1110);
  CHECK_FALSE(d.natives_too);
  d = decide_icr(kInitAssert | icr::kShorthandAllButSelf, 0, false, apic, 4, 2, true);
  CHECK(d.vps == 0b1011);
  CHECK(d.natives_too);  // CPUs that are not VPs get it for real
  d = decide_icr(kInitAssert | icr::kShorthandAll, 0, false, apic, 4, 1, false);
  CHECK(d.vps == 0b1111);
  d = decide_icr(kInitAssert | icr::kShorthandSelf, 0, false, apic, 4, 3, false);
  CHECK(d.vps == 0b1000);
  // Broadcast destination ids.
  CHECK(decide_icr(kInitAssert, 0xFF, false, apic, 4, 0, false).vps == 0b1111);
  CHECK(decide_icr(kInitAssert, 0xFFFFFFFF, true, apic, 4, 0, false).vps == 0b1111);
  CHECK(decide_icr(kInitAssert, 0xFF, true, apic, 4, 0, false).action ==
        IcrAction::kPassThrough);  // id 255 in x2APIC
}

TEST_CASE(
    "smp: a broadcast SIPI becomes one SIPI per other CPU (each gets it, SDM Vol. 3A 10.4.4)") {
  // SDM Vol. 3A 10.4.4.1 (MP initialization, "INIT-SIPI-SIPI" broadcast with
  // the all-excluding-self shorthand): every AP receives both SIPIs.
  // Sending the same SIPI to each target in turn is the same on hardware,
  // and under Bochs 2.7 it is the only way every VP in the guest's
  // wait-for-SIPI state gets its SIPI exit (vmx/smp.hpp).
  const microhv::ApicId apic[] = {microhv::ApicId(0), microhv::ApicId(1), microhv::ApicId(4),
                                  microhv::ApicId(6)};
  const uint32_t kSipi = icr::kStartup | icr::kAssert | 0x87;
  // OVMF's ExitBootServices broadcast from the BSP (VP 0) to 3 APs.
  IcrDecision d = decide_icr(kSipi | icr::kShorthandAllButSelf, 0, false, apic, 4, 0, false);
  CHECK(d.action == IcrAction::kUnicastSipi);
  CHECK(d.vps == 0b1110);
  CHECK_FALSE(d.natives_too);
  // From an AP, with CPUs microhv left native: those get theirs too.
  d = decide_icr(kSipi | icr::kShorthandAllButSelf, 0, true, apic, 4, 2, true);
  CHECK(d.action == IcrAction::kUnicastSipi);
  CHECK(d.vps == 0b1011);
  CHECK(d.natives_too);
  // "All including self" and the broadcast ids: the sender runs, so its own
  // SIPI would be discarded (SDM Vol. 3C 27.6.2); the others get one each.
  for (IcrDecision all : {decide_icr(kSipi | icr::kShorthandAll, 0, false, apic, 4, 1, false),
                          decide_icr(kSipi, 0xFF, false, apic, 4, 1, false),
                          decide_icr(kSipi, 0xFFFFFFFF, true, apic, 4, 1, false)}) {
    CHECK(all.action == IcrAction::kUnicastSipi);
    CHECK(all.vps == 0b1101);
  }
  // Not a broadcast: one CPU by id (also id 255 in x2APIC), self, logical.
  CHECK(decide_icr(kSipi, 4, false, apic, 4, 0, false).action == IcrAction::kPassThrough);
  CHECK(decide_icr(kSipi, 0xFF, true, apic, 4, 0, false).action == IcrAction::kPassThrough);
  CHECK(decide_icr(kSipi | icr::kShorthandSelf, 0, false, apic, 4, 0, false).action ==
        IcrAction::kPassThrough);
  CHECK(decide_icr(kSipi | icr::kLogical, 0xFF, false, apic, 4, 0, false).action ==
        IcrAction::kPassThrough);
  // A VP index past 63 cannot be named in the mask: never undefined shifts.
  d = decide_icr(kSipi | icr::kShorthandAllButSelf, 0, false, apic, 4, 70, false);
  CHECK(d.vps == 0b1111);
}
