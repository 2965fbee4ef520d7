// The exit path's budget: what a VM exit reads before and after its handler
// (begin_exit / finish_exit, vmx/exits.hpp) and the check that lets an entry skip its full
// preparation (entry_needs_full_prep, vmx/entry_prep.hpp).
#include <atomic>
#include <set>
#include <thread>

#include "tests/unit/exit_rig.hpp"
#include "vmx/entry_prep.hpp"

using namespace microhv;
using namespace microhv::vmx;
using microhv::test::FakeVmcs;

namespace {

// A VMCS at a CPUID exit of a 64-bit guest (SDM Vol. 3C 28.2.1: no
// qualification for CPUID; 28.2.4: IDT-vectoring information not valid).
void cpuid_exit(FakeVmcs& f) {
  f.fields[Field::kExitReason] = exit_reason::kCpuid;
  f.fields[Field::kIdtVectoringInfo] = 0;
  f.fields[Field::kExitInstructionLength] = 2;
  f.fields[Field::kGuestRip] = 0x1000;
  f.fields[Field::kGuestInterruptibility] = interruptibility::kBlockingBySti;
}

struct ExitRun {
  FakeVmcs vmcs;
  GuestRegs regs{};
  PendingEvents events;
  test::FakeCpu cpu;
  test::FakeCore core;
  VmxCapabilities caps = test::exit_test_caps();
  ExitStart start;

  ExitAction run() {
    REQUIRE(begin_exit(vmcs, regs, events, &start));
    ExitContext ctx{start.reason, start.qualification, regs, vmcs, cpu, core, events, caps};
    const ExitAction a = dispatch_exit(ctx);
    REQUIRE(finish_exit(vmcs, regs, start, a));
    return a;
  }
};

}  // namespace

TEST_CASE("exit path: a CPUID exit reads only the fields it needs, each once") {
  ExitRun r;
  cpuid_exit(r.vmcs);
  r.regs.rax = 0x40000000;
  REQUIRE(r.run() == ExitAction::kAdvance);
  CHECK(r.regs.rax == 0x40000005);
  const std::set<Field> allowed = {Field::kExitReason, Field::kIdtVectoringInfo,
                                   Field::kExitInstructionLength, Field::kGuestRip,
                                   Field::kGuestInterruptibility};
  for (const auto& [field, n] : r.vmcs.reads_of) {
    INFO("field 0x" << std::hex << encoding(field));
    CHECK(allowed.count(field) == 1);
    CHECK(n == 1);
  }
  // RIP past CPUID; the STI shadow ends with the instruction (SDM Vol. 3C
  // 26.3.1.5); RSP was neither read nor written.
  CHECK(r.vmcs.at(Field::kGuestRip) == 0x1002);
  CHECK(r.vmcs.at(Field::kGuestInterruptibility) == 0);
  CHECK(r.vmcs.writes.count(Field::kGuestRsp) == 0);
  CHECK(r.start.needs.guest_active);
}

TEST_CASE(
    "exit path: exits that use the qualification and RSP get them; RSP written back only when "
    "changed") {
  ExitRun r;
  FakeVmcs& f = r.vmcs;
  cpuid_exit(f);
  // A reason outside the lean list (the default is to read everything).
  f.fields[Field::kExitReason] = exit_reason::kCrAccess;
  f.fields[Field::kExitQualification] = 0x0;  // MOV to CR0 from RAX
  f.fields[Field::kGuestRsp] = 0x8000;
  REQUIRE(begin_exit(r.vmcs, r.regs, r.events, &r.start));
  CHECK(r.start.needs.qualification);
  CHECK(r.start.needs.rsp);
  CHECK_FALSE(r.start.needs.guest_active);
  CHECK(r.regs.rsp == 0x8000);
  REQUIRE(finish_exit(r.vmcs, r.regs, r.start, ExitAction::kRetry));
  CHECK(f.writes.count(Field::kGuestRsp) == 0);
  r.regs.rsp = 0x7FF8;
  REQUIRE(finish_exit(r.vmcs, r.regs, r.start, ExitAction::kRetry));
  CHECK(f.at(Field::kGuestRsp) == 0x7FF8);
  // Unknown reasons: everything (deny by default).
  CHECK(exit_needs(0xFFFF).qualification);
  CHECK(exit_needs(0xFFFF).rsp);
  CHECK_FALSE(exit_needs(0xFFFF).guest_active);
}

TEST_CASE("exit path: valid IDT-vectoring information is recorded with its error code and length") {
  ExitRun r;
  FakeVmcs& f = r.vmcs;
  cpuid_exit(f);
  f.fields[Field::kExitReason] = exit_reason::kEptViolation;
  f.fields[Field::kExitQualification] = 0;
  f.fields[Field::kGuestRsp] = 0;
  f.fields[Field::kIdtVectoringInfo] =
      intr_info::kValid | intr_info::kDeliverErrorCode | (3u << 8) | 14;
  f.fields[Field::kIdtVectoringErrorCode] = 6;
  REQUIRE(begin_exit(r.vmcs, r.regs, r.events, &r.start));
  CHECK(r.events.reinject);
  CHECK(r.events.reinject_error == 6);
  CHECK(r.events.reinject_instruction_length == 2);
}

TEST_CASE("exit path: every failed VMREAD is reported as a failure") {
  for (Field bad : {Field::kExitReason, Field::kIdtVectoringInfo}) {
    ExitRun r;
    cpuid_exit(r.vmcs);
    r.vmcs.failing.insert(bad);
    CHECK_FALSE(begin_exit(r.vmcs, r.regs, r.events, &r.start));
  }
  for (Field bad :
       {Field::kGuestRip, Field::kExitInstructionLength, Field::kGuestInterruptibility}) {
    ExitRun r;
    cpuid_exit(r.vmcs);
    REQUIRE(begin_exit(r.vmcs, r.regs, r.events, &r.start));
    r.vmcs.failing.insert(bad);
    CHECK_FALSE(finish_exit(r.vmcs, r.regs, r.start, ExitAction::kAdvance));
  }
}

TEST_CASE("entry preparation: the full path runs whenever anything is pending") {
  PendingEvents none;
  EntryEventState idle;
  CHECK_FALSE(entry_needs_full_prep(0, none, idle, true));
  CHECK(entry_needs_full_prep(1, none, idle, true));   // another CPU posted
  CHECK(entry_needs_full_prep(0, none, idle, false));  // activity state unknown
  PendingEvents nmi;
  nmi.queue_nmi();
  CHECK(entry_needs_full_prep(0, nmi, idle, true));
  PendingEvents irq;
  REQUIRE(irq.queue_interrupt(0x50));
  CHECK(entry_needs_full_prep(0, irq, idle, true));
  PendingEvents exc;
  exc.queue_exception(vector::kGp, true, 0);
  CHECK(entry_needs_full_prep(0, exc, idle, true));
  PendingEvents re;
  re.record_idt_vectoring(intr_info::kValid | 0x30, 0, 0);
  CHECK(entry_needs_full_prep(0, re, idle, true));
  EntryEventState window = idle;
  window.proc_controls = proc::kInterruptWindowExiting;
  CHECK(entry_needs_full_prep(0, none, window, true));
  window.proc_controls = proc::kNmiWindowExiting;
  CHECK(entry_needs_full_prep(0, none, window, true));
  EntryEventState armed = idle;
  armed.entry_info_valid = true;
  CHECK(entry_needs_full_prep(0, none, armed, true));
}

TEST_CASE("entry preparation: work posted from another CPU is never skipped") {
  // The owner's loop as exit_loop.cpp runs it: the check on `work`, the
  // drain on the full path, and entry.S's last test of `work` before
  // VMRESUME (which sends it back to the full path). Every vector another
  // thread posts must be drained.
  RemoteQueue q{};
  constexpr int kPosts = 2000;
  std::atomic<bool> done{false};
  std::thread sender([&] {
    for (int i = 0; i < kPosts; ++i) {
      const uint8_t vector = static_cast<uint8_t>(0x20 + i % 200);
      while (__atomic_load_n(&q.auto_eoi[vector >> 6], __ATOMIC_SEQ_CST) &
             (1ull << (vector & 63))) {
        std::this_thread::yield();  // wait until the owner took the last one
      }
      q.post(vector, true);
    }
    done = true;
  });
  PendingEvents events;
  EntryEventState state;
  int drained = 0;
  for (;;) {
    const bool finished = done.load();
    bool full =
        entry_needs_full_prep(__atomic_load_n(&q.work, __ATOMIC_SEQ_CST), events, state, true);
    while (full) {
      const RemoteQueue::Drained d = q.drain();
      for_each_vector(d.auto_eoi, [&](uint8_t) { ++drained; });
      full = __atomic_load_n(&q.work, __ATOMIC_SEQ_CST) != 0;  // entry.S's last test
    }
    if (finished) break;
  }
  sender.join();
  CHECK(drained == kPosts);
  CHECK(q.work == 0);
}

TEST_CASE(
    "entry preparation: no VMWRITE of the entry field while nothing was injected; 0 after an "
    "injection") {
  FakeVmcs f;
  f.fields[Field::kGuestInterruptibility] = 0;
  f.fields[Field::kGuestRflags] = 0x202;
  f.fields[Field::kGuestCr0] = 0x80000031;
  PendingEvents events;
  EntryEventState state;
  uint32_t act = activity::kActive;
  REQUIRE(write_entry_events(f, events, state, act));
  CHECK(f.writes.count(Field::kEntryInterruptionInfo) == 0);
  CHECK(f.reads_of.count(Field::kGuestRflags) == 0);  // nothing pending: no RFLAGS needed
  REQUIRE(events.queue_interrupt(0x50));
  REQUIRE(write_entry_events(f, events, state, act));
  CHECK((f.at(Field::kEntryInterruptionInfo) & intr_info::kValid) != 0);
  CHECK(state.entry_info_valid);
  // The next entry (after the VM exit) has nothing: the field is cleared
  // once, then left alone.
  state.injection_armed = false;
  REQUIRE(write_entry_events(f, events, state, act));
  CHECK(f.at(Field::kEntryInterruptionInfo) == 0);
  CHECK(f.writes[Field::kEntryInterruptionInfo] == 2);
  REQUIRE(write_entry_events(f, events, state, act));
  CHECK(f.writes[Field::kEntryInterruptionInfo] == 2);
}
