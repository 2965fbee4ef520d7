// THE CHECK ORDER (the one place it is written down; README.md points here).
// The TLFS leaves the order open except that it prefers ACCESS_DENIED when
// several statuses apply. Each step ends the call with one status:
//   1. real or virtual-8086 mode, or CPL > 0: #UD, no status (handle_hypercall);
//   2. reserved control bits or IsNested: INVALID_HYPERCALL_INPUT;
//   3. unknown call code, or a call whose CPUID 0x40000004 hint the
//      partition does not offer: INVALID_HYPERCALL_CODE;
//   4. the partition lacks the call's privilege (CPUID 0x40000003.EBX bit in
//      the call table): ACCESS_DENIED, before any input is read. This is the
//      only privilege check: the handlers never repeat it;
//   5. the control word against the call's shape: a rep count or rep start
//      on a simple call; on a rep call a rep count of 0 or a rep start not
//      below it; a variable header on a call that has none; the fast form of
//      a call whose input block (fixed header + variable header + rep
//      elements) exceeds 16 bytes or that has output elements:
//      INVALID_HYPERCALL_INPUT;
//   6. the input GPA misaligned (8 bytes), or the whole input block crossing
//      a page or outside guest RAM; the same for the output GPA when the
//      call has output elements: INVALID_ALIGNMENT;
//   7. the call's own checks, each status at the first failing step:
//      PostMessage (hypercall/calls.cpp, synic/messaging.cpp,
//        synic/delivery.cpp): RsvdZ, MessageType, PayloadSize
//        (INVALID_PARAMETER); the connection (INVALID_CONNECTION_ID); the
//        port behind it (INVALID_PORT_ID); the target VP (INVALID_VP_INDEX);
//        its SynIC (INVALID_SYNIC_STATE); last the port's buffers
//        (INSUFFICIENT_BUFFERS).
//      SignalEvent: RsvdZ; connection; port; the flag number against the
//        port's flag count (INVALID_PARAMETER); target VP; its SynIC.
//      Create/Delete/Connect/DisconnectPort: RsvdZ and VTL fields
//        (INVALID_PARAMETER); the partition the call acts on, which must be
//        the caller or its child (no such id: INVALID_PARTITION_ID; another
//        partition, microhv's services always: ACCESS_DENIED; not active:
//        INVALID_PARTITION_STATE), and the other partition it names
//        (INVALID_PARTITION_ID); then the port's type, SINT, flags
//        (INVALID_PARAMETER), its id (INVALID_PORT_ID; DeletePort of a port a
//        service pinned, and ConnectPort to a port reserved for another
//        partition: ACCESS_DENIED), the connection id (INVALID_CONNECTION_ID)
//        and the partition's quota (INSUFFICIENT_MEMORY).
//      IPIs and TLB flushes: hypercall/processor_calls.cpp.
// Steps 2-6 report 0 reps completed. A rep call then runs at most kRepBatch
// reps per exit; if reps remain after a successful batch the call is
// continued (RIP stays, RCX's rep start = reps completed) instead of
// returning a status.
#include "hypercall/abi.hpp"

#include "kernel/partition.hpp"

namespace microhv {
namespace {

using tlfs::Status;
namespace control = tlfs::control;

// The fast form carries up to 16 bytes of input in two registers (XMM input
// is not offered: CPUID 0x40000003.EDX bit 4 is clear).
constexpr uint64_t kFastInputBytes = 16;

struct Decoded {
  uint64_t control;
  uint64_t input;   // GPA, or first fast input qword
  uint64_t output;  // GPA, or second fast input qword
};

Decoded decode(const HypercallRegs& r) {
  if (r.mode == CpuMode::kLong64) return {r.rcx, r.rdx, r.r8};
  auto pair = [](uint64_t hi, uint64_t lo) { return (hi & 0xFFFFFFFF) << 32 | (lo & 0xFFFFFFFF); };
  return {pair(r.rdx, r.rax), pair(r.rbx, r.rcx), pair(r.rdi, r.rsi)};
}

HypercallOutcome fail(Status s) {
  return {HypercallEnd::kResult, tlfs::make_result(s)};
}

const CallSpec* find_call(const CallSpec* table, size_t size, uint16_t code,
                          const Partition& partition) {
  for (size_t i = 0; i < size; ++i) {
    if (static_cast<uint16_t>(table[i].code) != code) continue;
    return partition.has_hints(table[i].hints) ? &table[i] : nullptr;
  }
  return nullptr;
}

// TLFS "Alignment Requirements": 8-byte aligned, inside one page, guest RAM.
bool block_ok(const Partition& partition, uint64_t gpa, uint64_t bytes) {
  if ((gpa & 7) != 0 || (gpa & kPageMask) + bytes > kPageSize) return false;
  return bytes == 0 || partition.memory().is_ram(Gpa(gpa), bytes);
}

}  // namespace

HypercallOutcome dispatch_hypercall(Vp& vp, const HypercallRegs& regs, const CallSpec* table,
                                    size_t table_size) {
  // TLFS: VMCALL is a hypercall only from CPL 0 in protected or long mode.
  if (regs.mode == CpuMode::kReal || regs.mode == CpuMode::kVirtual8086 || regs.cpl != 0) {
    return {HypercallEnd::kUndefinedOpcode, 0};
  }
  const Decoded d = decode(regs);
  const uint64_t c = d.control;
  if ((c & (control::kReservedMask | control::kNestedBit)) != 0) {
    return fail(Status::kInvalidHypercallInput);
  }
  Partition& partition = vp.partition();
  const CallSpec* spec =
      find_call(table, table_size, static_cast<uint16_t>(c & control::kCallCodeMask), partition);
  if (spec == nullptr) return fail(Status::kInvalidHypercallCode);
  if (spec->privilege != 0 && !partition.has_privilege(spec->privilege)) {
    return fail(Status::kAccessDenied);  // the only privilege check
  }

  const CallShape& shape = spec->shape;
  const uint32_t count = control::rep_count(c);
  const uint32_t start = control::rep_start(c);
  const uint32_t var_qwords = control::var_header_qwords(c);
  const bool shape_ok = shape.rep() ? (count != 0 && start < count) : (count == 0 && start == 0);
  if (!shape_ok || (var_qwords != 0 && !shape.var_header)) {
    return fail(Status::kInvalidHypercallInput);
  }
  const CallInput::Layout layout{shape.fixed_bytes, var_qwords, shape.in_element_bytes, count};
  const uint64_t in_bytes =
      shape.fixed_bytes + 8ull * var_qwords + static_cast<uint64_t>(shape.in_element_bytes) * count;
  const uint64_t out_bytes = static_cast<uint64_t>(shape.out_element_bytes) * count;

  const bool fast = (c & control::kFastBit) != 0;
  if (fast && (in_bytes > kFastInputBytes || out_bytes != 0)) {
    return fail(Status::kInvalidHypercallInput);
  }
  if (!fast && (!block_ok(partition, d.input, in_bytes) ||
                (out_bytes != 0 && !block_ok(partition, d.output, out_bytes)))) {
    return fail(Status::kInvalidAlignment);
  }
  const CallInput input = fast ? CallInput(d.input, d.output, layout)
                               : CallInput(partition.memory(), Gpa(d.input), layout);
  CallOutput output;
  if (out_bytes != 0) {
    output = CallOutput(partition.memory(), Gpa(d.output), shape.out_element_bytes, count);
  }

  RepWindow reps{};
  if (shape.rep()) reps = {start, count - start > kRepBatch ? start + kRepBatch : count, count};
  const CallResult r = spec->handler(vp, input, output, reps);
  if (!shape.rep()) return {HypercallEnd::kResult, tlfs::make_result(r.status)};
  if (r.status != Status::kSuccess) {
    // The failing rep's status with the reps completed before it (never
    // outside this window: a handler cannot claim reps it was not given).
    uint32_t done = r.reps_completed < start ? start : r.reps_completed;
    if (done >= reps.end) done = reps.end - 1;
    return {HypercallEnd::kResult, tlfs::make_result(r.status, done)};
  }
  if (reps.end < count) {
    return {HypercallEnd::kContinue, control::with_rep_start(c, reps.end)};
  }
  return {HypercallEnd::kResult, tlfs::make_result(Status::kSuccess, count)};
}

}  // namespace microhv
