// HvCallSendSyntheticClusterIpi(Ex) and HvCallFlushVirtualAddressSpace/List
// (Ex) through handle_hypercall, as a guest calls them: what reaches the
// InterruptSink and the GuestTlb, every status, and the CPUID hints that
// offer them (TLFS hypercall pages of each call; HV_VP_SET).
#include "hypercall/tlfs/processor_calls.hpp"

#include <vector>

#include "hypercall/abi.hpp"
#include "hypercall/cpuid.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::CallCode;
using tlfs::Status;
namespace control = tlfs::control;
namespace flags = tlfs::flush_flags;
using Scope = TlbFlushRequest::Scope;

namespace {

constexpr uint64_t kFast = control::kFastBit;

uint64_t code(CallCode c) {
  return static_cast<uint64_t>(c);
}
uint64_t with_var(CallCode c, uint32_t var) {
  return code(c) | uint64_t{var} << control::kVarHeaderShift;
}
uint64_t with_reps(uint64_t c, uint32_t count, uint32_t start = 0) {
  return c | uint64_t{count} << control::kRepCountShift |
         uint64_t{start} << control::kRepStartShift;
}
Status status_of(uint64_t r) {
  return static_cast<Status>(r & 0xFFFF);
}
uint32_t reps_of(uint64_t r) {
  return static_cast<uint32_t>(r >> 32) & 0xFFF;
}

struct Vps : Guest {
  explicit Vps(uint32_t n = 4) : Guest(n) {}
  // Slow call: `header` then `extra` qwords at the input page.
  template <typename Header>
  uint64_t call(uint64_t c, const Header& header, std::initializer_list<uint64_t> extra = {},
                uint32_t caller = 0) {
    memory.store(kInputPage, header);
    uint32_t i = 0;
    for (uint64_t q : extra) memory.store<uint64_t>(kInputPage + sizeof(Header) + 8 * i++, q);
    return hypercall_raw(c, kInputPage, 0, caller);
  }
  uint64_t ipi(uint32_t vector, uint64_t mask, uint8_t vtl = 0, uint32_t caller = 0) {
    tlfs::SendIpiInput in{vector, vtl, {0, 0, 0}, mask};
    return call(code(CallCode::kSendSyntheticClusterIpi), in, {}, caller);
  }
  uint64_t ipi_ex(uint32_t vector, uint64_t format, uint64_t banks,
                  std::initializer_list<uint64_t> bank_masks, int var = -1) {
    tlfs::SendIpiExHeader in{vector, 0, {0, 0, 0}, {format, banks}};
    const uint32_t v = var < 0 ? static_cast<uint32_t>(bank_masks.size()) : uint32_t(var);
    return call(with_var(CallCode::kSendSyntheticClusterIpiEx, v), in, bank_masks);
  }
  std::vector<uint32_t> ipi_targets(uint8_t vector) const {
    std::vector<uint32_t> vps;
    for (const auto& r : irqs.raised) {
      if (r.vector == vector && !r.auto_eoi) vps.push_back(r.vp);
    }
    return vps;
  }
};

}  // namespace

// ------------------------------------------------------------------ CPUID, gating
TEST_CASE("CPUID: 0x40000004 recommends remote flush (2), cluster IPI (10), Ex masks (11)") {
  Guest g(1);
  CpuidRegs r{};
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000004, &r));
  // Besides relaxed timing (bit 5, issue 13's time work).
  CHECK((r.eax & ~(1u << 5)) == ((1u << 2) | (1u << 10) | (1u << 11)));
  // One source of truth: a partition without a hint neither advertises it
  // nor accepts its calls.
  PartitionFeatures f = kFullFeatures;
  f.hints = tlfs::cpuid::kHintClusterIpi;
  g.partition->set_features(f);
  REQUIRE(hyperv_cpuid(*g.partition, 0x40000004, &r));
  CHECK(r.eax == (1u << 10));
}

TEST_CASE("IPI/flush: a call whose hint the partition does not offer is INVALID_HYPERCALL_CODE") {
  Vps g(2);
  PartitionFeatures f = kFullFeatures;
  f.hints = tlfs::cpuid::kHintClusterIpi | tlfs::cpuid::kHintRemoteTlbFlush;  // no Ex masks
  g.partition->set_features(f);
  CHECK(g.ipi(0x40, 1) == 0);
  CHECK(status_of(g.ipi_ex(0x40, tlfs::kGenericSetAll, 0, {})) == Status::kInvalidHypercallCode);
  tlfs::FlushSpaceExHeader ex{0, flags::kAllVirtualAddressSpaces, {tlfs::kGenericSetAll, 0}};
  CHECK(status_of(g.call(code(CallCode::kFlushVirtualAddressSpaceEx), ex)) ==
        Status::kInvalidHypercallCode);
  f.hints = 0;
  g.partition->set_features(f);
  CHECK(status_of(g.ipi(0x40, 1)) == Status::kInvalidHypercallCode);
  tlfs::FlushSpaceInput space{0, flags::kAllProcessors | flags::kAllVirtualAddressSpaces, 0};
  CHECK(status_of(g.call(code(CallCode::kFlushVirtualAddressSpace), space)) ==
        Status::kInvalidHypercallCode);
  CHECK(g.tlb.flushes.empty());
  CHECK(g.ipi_targets(0x40) == std::vector<uint32_t>{0});  // only the first, offered call
}

// ------------------------------------------------------------------ IPIs
TEST_CASE("IPI: a fixed interrupt, not AutoEOI, on each VP of the mask, the caller included") {
  Vps g(4);
  CHECK(g.ipi(0x41, 0b1011, 0, 1) == 0);
  CHECK(g.ipi_targets(0x41) == std::vector<uint32_t>{0, 1, 3});
  for (const auto& r : g.irqs.raised) CHECK_FALSE(r.auto_eoi);
}

TEST_CASE("IPI: the fast form takes vector/VTL in RDX and the mask in R8") {
  Vps g(4);
  CHECK(g.hypercall_raw(code(CallCode::kSendSyntheticClusterIpi) | kFast, 0xF3, 0x4) == 0);
  CHECK(g.ipi_targets(0xF3) == std::vector<uint32_t>{2});
  // The padding bytes (RDX 63:40) are ignored (TLFS: padding is ignored).
  CHECK(g.hypercall_raw(code(CallCode::kSendSyntheticClusterIpi) | kFast,
                        0xFFFFFF0000000000ull | 0xF4, 0x1) == 0);
  CHECK(g.ipi_targets(0xF4) == std::vector<uint32_t>{0});
}

TEST_CASE("IPI: vectors outside 0x10..0xFF are INVALID_PARAMETER and nothing is sent") {
  Vps g(2);
  for (uint32_t v : {0u, 2u, 0xFu, 0x100u, 0x1F3u, 0xFFFFFFFFu}) {
    INFO("vector " << v);
    CHECK(status_of(g.ipi(v, 0x3)) == Status::kInvalidParameter);
  }
  CHECK(g.ipi(0x10, 0x1) == 0);
  CHECK(g.ipi(0xFF, 0x1) == 0);
  CHECK(g.irqs.raised.size() == 2);
}

TEST_CASE("IPI: only VTL 0 can be targeted, named or implied") {
  Vps g(2);
  CHECK(g.ipi(0x42, 1, 0x00) == 0);  // the caller's VTL
  CHECK(g.ipi(0x42, 1, 0x10) == 0);  // explicitly VTL 0
  for (uint8_t vtl : {0x11, 0x12, 0x1F, 0x01, 0x20, 0x80}) {
    INFO("target VTL byte 0x" << std::hex << int(vtl));
    CHECK(status_of(g.ipi(0x42, 1, vtl)) == Status::kInvalidParameter);
  }
  CHECK(g.irqs.raised.size() == 2);
}

TEST_CASE("IPI: VPs past the partition are ignored; an empty set sends nothing and succeeds") {
  Vps g(2);
  CHECK(g.ipi(0x43, 0xFFFFFFFFFFFFFFFCull) == 0);
  CHECK(g.irqs.raised.empty());
  CHECK(g.ipi(0x43, 0) == 0);
  CHECK(g.irqs.raised.empty());
  CHECK(g.ipi(0x43, ~0ull) == 0);
  CHECK(g.ipi_targets(0x43) == std::vector<uint32_t>{0, 1});
}

TEST_CASE("IPI Ex: sparse and all sets; the set's shape is checked before anything is sent") {
  Vps g(4);
  CHECK(g.ipi_ex(0x44, tlfs::kGenericSetSparse4k, 1, {0xA}) == 0);
  CHECK(g.ipi_targets(0x44) == std::vector<uint32_t>{1, 3});
  CHECK(g.ipi_ex(0x45, tlfs::kGenericSetAll, 0, {}) == 0);
  CHECK(g.ipi_targets(0x45) == std::vector<uint32_t>{0, 1, 2, 3});
  const size_t sent = g.irqs.raised.size();
  CHECK(status_of(g.ipi_ex(0x46, tlfs::kGenericSetSparse4k, 1, {0xA}, 0)) ==
        Status::kInvalidHypercallInput);
  CHECK(status_of(g.ipi_ex(0x46, tlfs::kGenericSetSparse4k, 1, {0xA, 0}, 2)) ==
        Status::kInvalidHypercallInput);
  CHECK(status_of(g.ipi_ex(0x46, 7, 1, {0xA})) == Status::kInvalidParameter);
  CHECK(status_of(g.ipi_ex(0x06, tlfs::kGenericSetAll, 0, {})) == Status::kInvalidParameter);
  CHECK(g.irqs.raised.size() == sent);
  // The fixed header alone is 24 bytes: no fast form without XMM input.
  CHECK(status_of(g.hypercall_raw(code(CallCode::kSendSyntheticClusterIpiEx) | kFast, 0x44, 1)) ==
        Status::kInvalidHypercallInput);
}

// ------------------------------------------------------------------ flushes
TEST_CASE("flush space: the mask's VPs, or all of them with HV_FLUSH_ALL_PROCESSORS") {
  Vps g(4);
  tlfs::FlushSpaceInput in{0x1000, 0, 0x6};
  CHECK(g.call(code(CallCode::kFlushVirtualAddressSpace), in, {}, 3) == 0);
  in = {0, flags::kAllProcessors | flags::kAllVirtualAddressSpaces, 0};
  CHECK(g.call(code(CallCode::kFlushVirtualAddressSpace), in) == 0);
  in = {0x2000, flags::kNonGlobalMappingsOnly, 0x1};
  CHECK(g.call(code(CallCode::kFlushVirtualAddressSpace), in) == 0);
  REQUIRE(g.tlb.flushes.size() == 3);
  CHECK(g.tlb.flushes[0].self == 3);
  CHECK(g.tlb.flushes[0].targets == 0x6);
  CHECK(g.tlb.flushes[0].scope == Scope::kAll);
  CHECK(g.tlb.flushes[1].targets == 0xF);
  CHECK(g.tlb.flushes[2].scope == Scope::kAllNonGlobal);
}

TEST_CASE("flush space: INVALID_PARAMETER for reserved flags, address space bits, an empty mask") {
  Vps g(2);
  const uint64_t c = code(CallCode::kFlushVirtualAddressSpace);
  for (int bit = 3; bit < 64; ++bit) {
    INFO("flag bit " << bit);
    CHECK(status_of(g.call(c, tlfs::FlushSpaceInput{0, 1ull << bit, 1})) ==
          Status::kInvalidParameter);
  }
  // Bits 63:52 of a CR3 are reserved; ignored with ALL_VIRTUAL_ADDRESS_SPACES.
  CHECK(status_of(g.call(c, tlfs::FlushSpaceInput{1ull << 52, 0, 1})) == Status::kInvalidParameter);
  CHECK(g.call(c, tlfs::FlushSpaceInput{1ull << 52, flags::kAllVirtualAddressSpaces, 1}) == 0);
  CHECK(g.call(c, tlfs::FlushSpaceInput{0x000FFFFFFFFFF000ull, 0, 1}) == 0);
  // No processor at all: the old hypervisor reference names it (KVM flushes all).
  CHECK(status_of(g.call(c, tlfs::FlushSpaceInput{0, 0, 0})) == Status::kInvalidParameter);
  // Only VPs the partition does not have: nothing to flush.
  CHECK(g.call(c, tlfs::FlushSpaceInput{0, 0, 0xF0}) == 0);
  CHECK(g.tlb.flushes.size() == 2);
  // 24 bytes of input: no fast form without XMM input.
  CHECK(status_of(g.hypercall_raw(c | kFast, 0, flags::kAllProcessors)) ==
        Status::kInvalidHypercallInput);
}

TEST_CASE("flush space: a target that does not acknowledge makes it HV_STATUS_TIMEOUT") {
  Vps g(2);
  g.tlb.answer = false;
  CHECK(status_of(g.call(code(CallCode::kFlushVirtualAddressSpace),
                         tlfs::FlushSpaceInput{0, flags::kAllProcessors, 0})) == Status::kTimeout);
}

TEST_CASE("flush list: the GVA ranges of each batch, in order; a simple-call rep count refused") {
  Vps g(2);
  const uint64_t c = code(CallCode::kFlushVirtualAddressList);
  const tlfs::FlushSpaceInput in{0x3000, 0, 0x2};
  CHECK(g.call(with_reps(c, 3), in, {0x7000, 0x9003, 0xFFFFFFFFFFFFF000ull}) ==
        tlfs::make_result(Status::kSuccess, 3));
  REQUIRE(g.tlb.flushes.size() == 1);
  CHECK(g.tlb.flushes[0].scope == Scope::kRanges);
  CHECK(g.tlb.flushes[0].targets == 0x2);
  CHECK(g.tlb.flushes[0].ranges == std::vector<uint64_t>{0x7000, 0x9003, 0xFFFFFFFFFFFFF000ull});
  // Rep count 0 on the rep call, a rep count on the simple Space call.
  CHECK(status_of(g.call(c, in)) == Status::kInvalidHypercallInput);
  CHECK(status_of(g.call(with_reps(code(CallCode::kFlushVirtualAddressSpace), 1), in)) ==
        Status::kInvalidHypercallInput);
  // NON_GLOBAL_MAPPINGS_ONLY "does not make sense for this call".
  const tlfs::FlushSpaceInput non_global{0, flags::kNonGlobalMappingsOnly, 0x1};
  CHECK(g.call(with_reps(c, 1), non_global, {0x1000}) ==
        tlfs::make_result(Status::kInvalidParameter, 0));
  CHECK(g.tlb.flushes.size() == 1);
}

TEST_CASE("flush list: a long list is flushed batch by batch and continued between them") {
  Vps g(2);
  const tlfs::FlushSpaceInput in{0, flags::kAllProcessors, 0};
  g.memory.store(kInputPage, in);
  for (uint32_t i = 0; i < 200; ++i) g.memory.store<uint64_t>(kInputPage + 24 + 8 * i, i << 12);
  const uint64_t c = with_reps(code(CallCode::kFlushVirtualAddressList), 200);
  CHECK(g.hypercall_raw(c, kInputPage, 0) == tlfs::make_result(Status::kSuccess, 200));
  CHECK(g.continuations == 3);
  CHECK(control::rep_start(g.last_rcx) == 3 * kRepBatch);  // RCX as the last VMCALL had it
  REQUIRE(g.tlb.flushes.size() == 4);
  CHECK(g.tlb.flushes[0].ranges.size() == kRepBatch);
  CHECK(g.tlb.flushes[3].ranges.size() == 200 - 3 * kRepBatch);
  CHECK(g.tlb.flushes[3].ranges.back() == uint64_t{199} << 12);
  CHECK(g.tlb.flushes[1].ranges.front() == uint64_t{kRepBatch} << 12);

  // Resumed from rep start 70, as a guest re-executing the VMCALL would.
  g.tlb.flushes.clear();
  CHECK(g.hypercall_raw(with_reps(code(CallCode::kFlushVirtualAddressList), 200, 70), kInputPage,
                        0) == tlfs::make_result(Status::kSuccess, 200));
  REQUIRE(g.tlb.flushes.size() == 3);
  CHECK(g.tlb.flushes[0].ranges.front() == uint64_t{70} << 12);
}

TEST_CASE("flush list: a timeout in a later batch reports the reps of the batches before it") {
  struct Flaky final : GuestTlb {
    bool flush(VpIndex, VpMask, const TlbFlushRequest&) override { return ++calls < 3; }
    int calls = 0;
  };
  Vps g(2);
  Flaky flaky;
  Hypervisor hv;
  Partition* p = hv.create_partition({PartitionId(1), 2, kFullFeatures}, g.memory, g.irqs, g.clock,
                                     g.overlays, flaky);
  const tlfs::FlushSpaceInput in{0, flags::kAllProcessors, 0};
  g.memory.store(kInputPage, in);
  uint64_t c = with_reps(code(CallCode::kFlushVirtualAddressList), 200);
  HypercallOutcome o{};
  for (int i = 0; i < 10; ++i) {
    HypercallRegs regs{CpuMode::kLong64, 0, 0, 0, c, kInputPage, 0, 0, 0};
    o = handle_hypercall(*p->vp(VpIndex(0)), regs);
    if (o.end != HypercallEnd::kContinue) break;
    c = o.value;
  }
  REQUIRE(o.end == HypercallEnd::kResult);
  CHECK(status_of(o.value) == Status::kTimeout);
  CHECK(reps_of(o.value) == 2 * kRepBatch);
}

TEST_CASE("flush Ex: VP sets choose the targets; the shape of the set is checked first") {
  Vps g(4);
  const uint64_t space = code(CallCode::kFlushVirtualAddressSpaceEx);
  tlfs::FlushSpaceExHeader h{0x5000, 0, {tlfs::kGenericSetSparse4k, 1}};
  CHECK(g.call(with_var(CallCode::kFlushVirtualAddressSpaceEx, 1), h, {0x9}) == 0);
  h.processor_set = {tlfs::kGenericSetAll, 0};
  CHECK(g.call(space, h) == 0);
  REQUIRE(g.tlb.flushes.size() == 2);
  CHECK(g.tlb.flushes[0].targets == 0x9);
  CHECK(g.tlb.flushes[1].targets == 0xF);
  // An empty sparse set: nothing to flush, SUCCESS.
  h.processor_set = {tlfs::kGenericSetSparse4k, 0};
  CHECK(g.call(space, h) == 0);
  CHECK(g.tlb.flushes.size() == 2);
  // Bank count vs. variable header, unknown format, reserved flag bits.
  h.processor_set = {tlfs::kGenericSetSparse4k, 1};
  CHECK(status_of(g.call(space, h)) == Status::kInvalidHypercallInput);
  h.processor_set = {5, 0};
  CHECK(status_of(g.call(space, h)) == Status::kInvalidParameter);
  h = {0, 1ull << 9, {tlfs::kGenericSetAll, 0}};
  CHECK(status_of(g.call(space, h)) == Status::kInvalidParameter);
  CHECK(g.tlb.flushes.size() == 2);
}

TEST_CASE("flush list Ex: the GVA list follows the bank masks (fixed + variable header)") {
  Vps g(4);
  const tlfs::FlushSpaceExHeader h{
      0, flags::kAllVirtualAddressSpaces, {tlfs::kGenericSetSparse4k, 1}};
  const uint64_t c = with_reps(with_var(CallCode::kFlushVirtualAddressListEx, 1), 2);
  CHECK(g.call(c, h, {0x4, 0xABC000, 0xDEF001}) == tlfs::make_result(Status::kSuccess, 2));
  REQUIRE(g.tlb.flushes.size() == 1);
  CHECK(g.tlb.flushes[0].targets == 0x4);
  CHECK(g.tlb.flushes[0].ranges == std::vector<uint64_t>{0xABC000, 0xDEF001});
  // With the set's shape wrong the reps completed are 0.
  CHECK(g.call(with_reps(code(CallCode::kFlushVirtualAddressListEx), 2), h, {0xABC000, 0}) ==
        tlfs::make_result(Status::kInvalidHypercallInput, 0));
  const tlfs::FlushSpaceExHeader non_global{
      0, flags::kNonGlobalMappingsOnly, {tlfs::kGenericSetAll, 0}};
  CHECK(status_of(g.call(with_reps(code(CallCode::kFlushVirtualAddressListEx), 1), non_global,
                         {0x1000})) == Status::kInvalidParameter);
}
