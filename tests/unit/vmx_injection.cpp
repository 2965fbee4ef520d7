// Event-injection decisions: the "can inject now?" predicates (including
// the trap of getting them inverted) and the priority order.
#include <catch2/catch.hpp>

#include "vmx/injection.hpp"

using namespace microhv::vmx;

namespace {
constexpr uint64_t kIf = 1ull << 9;  // RFLAGS.IF (SDM Vol. 1 3.4.3)
constexpr uint32_t kSti = interruptibility::kBlockingBySti;
constexpr uint32_t kMovSs = interruptibility::kBlockingByMovSs;
constexpr uint32_t kNmiBlocked = interruptibility::kBlockingByNmi;

GuestInterruptState open_state() {
  return {kIf | 2, 0, activity::kActive};
}
}  // namespace

TEST_CASE("injection: external interrupts only with IF=1 and no STI/MOV-SS blocking") {
  // The inverted-predicate trap: each line must be exactly this way round.
  STATIC_REQUIRE(can_inject_external_interrupt({kIf, 0, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_external_interrupt({0, 0, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_external_interrupt({kIf, kSti, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_external_interrupt({kIf, kMovSs, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_external_interrupt({0, kSti | kMovSs, activity::kActive}));
  // NMI blocking does not block external interrupts.
  STATIC_REQUIRE(can_inject_external_interrupt({kIf, kNmiBlocked, activity::kActive}));
  // HLT: injection wakes the processor; wait-for-SIPI takes nothing.
  STATIC_REQUIRE(can_inject_external_interrupt({kIf, 0, activity::kHlt}));
  STATIC_REQUIRE_FALSE(can_inject_external_interrupt({kIf, 0, activity::kWaitForSipi}));
  STATIC_REQUIRE_FALSE(can_inject_external_interrupt({kIf, 0, activity::kShutdown}));
}

TEST_CASE("injection: NMI ignores IF but not NMI/MOV-SS/STI blocking") {
  STATIC_REQUIRE(can_inject_nmi({0, 0, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_nmi({kIf, kNmiBlocked, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_nmi({kIf, kMovSs, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_nmi({kIf, kSti, activity::kActive}));
  STATIC_REQUIRE_FALSE(can_inject_nmi({kIf, 0, activity::kWaitForSipi}));
}

TEST_CASE("injection: a pending vector is injected when the guest can take it") {
  PendingEvents p;
  REQUIRE(p.queue_interrupt(0xF3));
  const InjectionDecision d = decide_injection(p, open_state());
  CHECK(d.inject);
  CHECK(d.intr_info == (intr_info::kValid | 0xF3));  // type 0 = external interrupt
  CHECK_FALSE(d.interrupt_window);
  CHECK_FALSE(p.any_interrupt());
}

TEST_CASE("injection: blocked -> interrupt window, then injected at the window") {
  PendingEvents p;
  p.queue_interrupt(0x50);
  InjectionDecision d = decide_injection(p, {2, 0, activity::kActive});  // IF = 0
  CHECK_FALSE(d.inject);
  CHECK(d.interrupt_window);
  CHECK(p.interrupt_pending(0x50));
  d = decide_injection(p, {kIf | 2, kSti, activity::kActive});  // STI shadow
  CHECK_FALSE(d.inject);
  CHECK(d.interrupt_window);
  d = decide_injection(p, open_state());  // the window opened
  CHECK(d.inject);
  CHECK((d.intr_info & 0xFF) == 0x50);
  CHECK_FALSE(d.interrupt_window);
}

TEST_CASE("injection: highest vector first, one per entry, window kept for the rest") {
  PendingEvents p;
  p.queue_interrupt(0x30);
  p.queue_interrupt(0xF3);
  p.queue_interrupt(0x80);
  InjectionDecision d = decide_injection(p, open_state());
  CHECK((d.intr_info & 0xFF) == 0xF3);
  CHECK(d.interrupt_window);
  d = decide_injection(p, open_state());
  CHECK((d.intr_info & 0xFF) == 0x80);
  d = decide_injection(p, open_state());
  CHECK((d.intr_info & 0xFF) == 0x30);
  CHECK_FALSE(d.interrupt_window);
}

TEST_CASE("injection: vectors 0-15 are never external interrupts") {
  PendingEvents p;
  CHECK_FALSE(p.queue_interrupt(0));
  CHECK_FALSE(p.queue_interrupt(15));
  CHECK(p.queue_interrupt(16));
  CHECK(p.queue_interrupt(255));
}

TEST_CASE("injection: priority exception > NMI > re-injection > external interrupt") {
  PendingEvents p;
  p.queue_interrupt(0x60);
  p.record_idt_vectoring(make_intr_info(0x41, EventType::kExternalInterrupt, false), 0, 0);
  p.queue_nmi();
  p.queue_exception(vector::kGp, true, 0);
  const GuestInterruptState s = open_state();

  InjectionDecision d = decide_injection(p, s);
  CHECK(d.intr_info == make_intr_info(vector::kGp, EventType::kHardwareException, true));
  CHECK(d.error_code == 0);
  CHECK(d.interrupt_window);  // external events still wait

  d = decide_injection(p, s);
  CHECK(d.intr_info == make_intr_info(vector::kNmi, EventType::kNmi, false));

  d = decide_injection(p, s);
  CHECK(d.intr_info == make_intr_info(0x41, EventType::kExternalInterrupt, false));

  d = decide_injection(p, s);
  CHECK(d.intr_info == make_intr_info(0x60, EventType::kExternalInterrupt, false));
  CHECK_FALSE(d.interrupt_window);

  d = decide_injection(p, s);
  CHECK_FALSE(d.inject);
}

TEST_CASE("injection: exceptions go in even with IF=0") {
  PendingEvents p;
  p.queue_exception(vector::kUd, false, 0);
  const InjectionDecision d = decide_injection(p, {2, kSti, activity::kActive});
  CHECK(d.inject);
  CHECK(d.intr_info == make_intr_info(vector::kUd, EventType::kHardwareException, false));
}

TEST_CASE("injection: a cut-off software interrupt is re-injected with its length") {
  PendingEvents p;
  p.record_idt_vectoring(make_intr_info(0x80, EventType::kSoftwareInterrupt, false) |
                             intr_info::kNmiUnblockingDueToIret,
                         0, 2);
  const InjectionDecision d = decide_injection(p, {2, 0, activity::kActive});  // even with IF=0
  CHECK(d.inject);
  CHECK(d.intr_info ==
        make_intr_info(0x80, EventType::kSoftwareInterrupt, false));  // bit 12 dropped
  CHECK(d.instruction_length == 2);
}

TEST_CASE("injection: a cut-off external interrupt obeys IF like a new one") {
  PendingEvents p;
  p.record_idt_vectoring(make_intr_info(0x41, EventType::kExternalInterrupt, false), 0, 0);
  InjectionDecision d = decide_injection(p, {2, 0, activity::kActive});
  CHECK_FALSE(d.inject);
  CHECK(d.interrupt_window);
  d = decide_injection(p, open_state());
  CHECK(d.inject);
}

TEST_CASE("injection: invalid IDT-vectoring info records nothing") {
  PendingEvents p;
  p.record_idt_vectoring(0x41, 0, 0);
  CHECK_FALSE(p.reinject);
}

TEST_CASE("injection: NMI stays pending while blocked; HLT is woken by injection") {
  PendingEvents p;
  p.queue_nmi();
  InjectionDecision d = decide_injection(p, {kIf, kNmiBlocked, activity::kActive});
  CHECK_FALSE(d.inject);
  CHECK(d.nmi_window);
  p.queue_interrupt(0x40);
  d = decide_injection(p, {kIf, kNmiBlocked, activity::kHlt});
  CHECK(d.inject);  // the interrupt is not blocked by NMI blocking
  CHECK(d.wake);
  CHECK(d.nmi_window);
}

TEST_CASE("injection: nothing is injected into a wait-for-SIPI processor") {
  PendingEvents p;
  p.queue_exception(vector::kGp, true, 0);
  p.queue_interrupt(0x40);
  const InjectionDecision d = decide_injection(p, {kIf, 0, activity::kWaitForSipi});
  CHECK_FALSE(d.inject);
  CHECK(p.exception);
}
