// libFuzzer target for the rep hypercall ABI (TLFS "Hypercall
// Continuation", variable headers) and the calls that use it: the IPI and
// remote-TLB-flush hypercalls with sparse VP sets. The core target
// (core_fuzz.cpp) models the messaging calls exactly and does not grant
// these; here their results are checked for shape and their interrupts
// against the TLFS rules. The input is a little program: each step picks an operation (hypercall
// with arbitrary control word, registers, mode and CPL; MSR read/write with an arbitrary value; raw
// bytes into the input page or a SIM/SIEF page; EOM) and takes its operands from the following
// bytes.
//
// The oracle keeps its own shadow of what the guest programmed (SIMP, SIEFP,
// the SINTs), from the TLFS rules for which writes are accepted, and never
// reads the core's SynIC. Invariants, besides ASan/UBSan: every result is a
// defined status with zero reserved bits and no more reps completed than
// asked; a continued rep call makes progress; every SynIC MSR write is accepted
// or refused (#GP) exactly as the TLFS says; the core writes only inside SIM
// or SIEF pages the guest enabled; every interrupt raised is the vector and
// AutoEOI setting of an unmasked SINT of that VP, or (after a successful
// SendSyntheticClusterIpi) one fixed vector of 16..255, not AutoEOI, on VPs
// of the partition.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/services/vmbus_host.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/unit/fakes.hpp"

using namespace microhv;

namespace {

constexpr uint64_t kPages = 32;
constexpr uint32_t kVps = 2;

using microhv::fuzz::Reader;

bool known_status(uint16_t s) {
  switch (static_cast<tlfs::Status>(s)) {
    case tlfs::Status::kSuccess:
    case tlfs::Status::kInvalidHypercallCode:
    case tlfs::Status::kInvalidHypercallInput:
    case tlfs::Status::kInvalidAlignment:
    case tlfs::Status::kInvalidParameter:
    case tlfs::Status::kAccessDenied:
    case tlfs::Status::kInvalidPartitionId:
    case tlfs::Status::kInvalidVpIndex:
    case tlfs::Status::kInvalidPortId:
    case tlfs::Status::kInvalidConnectionId:
    case tlfs::Status::kInsufficientBuffers:
    case tlfs::Status::kInvalidSynicState:
    case tlfs::Status::kInsufficientMemory:
    case tlfs::Status::kTimeout:  // a flush target that did not acknowledge (FakeTlb)
      return true;
    default:
      return false;
  }
}

// What the guest programmed into each VP's SynIC, as the TLFS says the
// writes take effect (TLFS 11.8).
struct ShadowSynic {
  uint64_t simp = 0, siefp = 0;
  uint64_t sint[16];
  ShadowSynic() {
    for (uint64_t& v : sint) v = 1ull << 16;  // reset: masked
  }
};

struct Shadow {
  ShadowSynic vp[kVps];
  unsigned address_bits = 64;  // the guest's physical address width (FakeMemory::width)

  // The result a SynIC MSR write must have and the SynIC it leaves; false
  // for MSRs the shadow does not follow.
  bool predict_write(uint32_t vp_index, uint32_t msr, uint64_t value, MsrResult* expect,
                     ShadowSynic* after) const {
    *after = vp[vp_index];
    if (msr == tlfs::msr::kSimp || msr == tlfs::msr::kSiefp) {
      // A page at or above the guest's physical address width is a reserved
      // bit: #GP, nothing changes (synic/msr.hpp); any other value is taken.
      const bool beyond = address_bits < 64 && ((value & ~0xFFFull) >> address_bits) != 0;
      if (!beyond) (msr == tlfs::msr::kSimp ? after->simp : after->siefp) = value;
      *expect = beyond ? MsrResult::kGp : MsrResult::kOk;
      return true;
    }
    if (msr >= tlfs::msr::kSint0 && msr <= tlfs::msr::kSint15) {
      // Bits 15:8 and 63:19 reserved; unmasked with a vector below 16 is #GP.
      const bool reserved = (value & ~0x7FFFFull) != 0 || (value & 0xFF00) != 0;
      const bool masked = (value >> 16) & 1;
      const bool valid = !reserved && (masked || (value & 0xFF) >= 16);
      if (valid) after->sint[msr - tlfs::msr::kSint0] = value;
      *expect = valid ? MsrResult::kOk : MsrResult::kGp;
      return true;
    }
    if (msr == tlfs::msr::kScontrol || msr == tlfs::msr::kEom) {
      *expect = MsrResult::kOk;
      return true;
    }
    if (msr == tlfs::msr::kSversion) {
      *expect = MsrResult::kGp;  // read-only
      return true;
    }
    return false;
  }

  // Pages the guest has enabled as SIM or SIEF, on any VP.
  bool inside_enabled_page(uint64_t gpa, uint64_t len) const {
    for (const ShadowSynic& s : vp) {
      for (uint64_t page : {s.simp, s.siefp}) {
        const uint64_t base = page & ~0xFFFull;
        if ((page & 1) != 0 && gpa >= base && gpa + len <= base + kPageSize) return true;
      }
    }
    return false;
  }

  // Every interrupt raised since the last check must be the vector and
  // AutoEOI bit of one of that VP's unmasked SINTs, as the shadow has them.
  void check_interrupts(const test::FakeInterrupts& irqs) {
    for (; irqs_checked < irqs.raised.size(); ++irqs_checked) {
      const auto& r = irqs.raised[irqs_checked];
      if (!possible_interrupt(r.vp, r.vector, r.auto_eoi)) abort();
    }
  }
  size_t irqs_checked = 0;

  // An interrupt the SynIC may raise on `vp_index`: the vector and AutoEOI
  // bit of one of its unmasked SINTs.
  bool possible_interrupt(uint32_t vp_index, uint8_t vector, bool auto_eoi) const {
    if (vp_index >= kVps) return false;
    for (uint64_t v : vp[vp_index].sint) {
      if (((v >> 16) & 1) == 0 && (v & 0xFF) == vector && (((v >> 17) & 1) != 0) == auto_eoi) {
        return true;
      }
    }
    return false;
  }
};

// One VMCALL as the CPU runs it, continued rep calls included. Checks the
// result's shape; IPIs are checked and consumed from `irqs`.
void checked_hypercall(Shadow& shadow, test::FakeInterrupts& irqs, Vp& vp, HypercallRegs regs) {
  const uint64_t control = regs.mode == CpuMode::kLong64 ? regs.rcx : regs.rdx << 32 | regs.rax;
  const uint16_t code = static_cast<uint16_t>(control);
  const uint32_t reps = tlfs::control::rep_count(control);
  shadow.check_interrupts(irqs);
  HypercallOutcome out{};
  for (uint32_t round = 0;; ++round) {
    out = handle_hypercall(vp, regs);
    if (out.end != HypercallEnd::kContinue) break;
    // Progress: the rep start grows, and stays below the rep count.
    const uint32_t before = tlfs::control::rep_start(control);
    const uint32_t after = tlfs::control::rep_start(out.value);
    if (after <= before || after >= reps || round > tlfs::control::kMaxReps) abort();
    uint64_t rax = regs.rax, rdx = regs.rdx;
    store_hypercall_control(regs, out.value, &regs.rcx, &rax, &rdx);
    regs.rax = rax;
    regs.rdx = rdx;
  }
  if (out.end == HypercallEnd::kUndefinedOpcode) return;
  if (!known_status(static_cast<uint16_t>(out.value))) abort();
  if ((out.value & 0xFFFF0000FFFF0000ull) != 0) abort();  // reserved result bits
  if (((out.value >> 32) & 0xFFF) > reps) abort();
  const bool ipi = code == uint16_t(tlfs::CallCode::kSendSyntheticClusterIpi) ||
                   code == uint16_t(tlfs::CallCode::kSendSyntheticClusterIpiEx);
  if (!ipi || static_cast<uint16_t>(out.value) != 0) return;
  for (; shadow.irqs_checked < irqs.raised.size(); ++shadow.irqs_checked) {
    const auto& r = irqs.raised[shadow.irqs_checked];
    const auto& first = irqs.raised[irqs.raised.size() - 1];
    if (r.vp >= kVps || r.auto_eoi || r.vector < 16 || r.vector != first.vector) abort();
  }
}

// A synthetic MSR write, checked against the shadow where it follows the
// MSR. What the write delivers is raised with the SINTs as they were.
void checked_wrmsr(Shadow& shadow, const test::FakeInterrupts& irqs, Vp& vp, uint32_t msr,
                   uint64_t value) {
  MsrResult expect = MsrResult::kOk;
  ShadowSynic after;
  const bool known = shadow.predict_write(vp.index().value(), msr, value, &expect, &after);
  const MsrResult got = write_synthetic_msr(vp, msr, value);
  if (known && got != expect) abort();
  shadow.check_interrupts(irqs);
  if (known) shadow.vp[vp.index().value()] = after;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto hv = std::make_unique<Hypervisor>();
  test::FakeMemory memory(kPages);
  memory.hole_start = 24 * kPageSize;  // "hypervisor memory" inside the range
  memory.hole_end = 28 * kPageSize;
  test::FakeInterrupts irqs;
  test::FakeClock clock;
  test::FakeOverlays overlays;
  test::FakeTlb tlb;
  Reader in{data, size};
  PartitionFeatures features = kFullFeatures;
  features.privileges &= in.take<uint8_t>() | 0xFFFFFF0Fu;  // sometimes drop privileges
  features.hints &= in.take<uint8_t>() | 0xFFFFF0FFu;       // sometimes drop the IPI/flush hints
  Partition* partition =
      hv->create_partition({PartitionId(1), kVps, features, kDefaultQuota, PartitionId{0},
                            TimeBase{test::FakeClock::kTscHz, 100'000'000}},
                           memory, irqs, clock, overlays, tlb);
  // The VMBus host listens on connections 1 and 4, which the structured
  // post below reaches.
  VmbusHost vmbus;
  if (!vmbus.attach(*hv, *partition, PartitionId(2))) abort();
  Shadow shadow;
  shadow.address_bits = memory.width;

  for (int steps = 0; steps < 64 && in.size > 0; ++steps) {
    Vp& vp = *partition->vp(VpIndex(in.take<uint8_t>() % kVps));
    switch (in.take<uint8_t>() % 10) {
      case 0: {  // hypercall
        HypercallRegs regs{};
        uint8_t mode = in.take<uint8_t>();
        regs.mode = static_cast<CpuMode>(mode % 4);
        regs.cpl = (mode >> 2) % 4;
        regs.rcx = in.take<uint64_t>();
        regs.rdx = in.take<uint64_t>() % (kPages * kPageSize + 64);
        regs.r8 = in.take<uint64_t>();
        regs.rax = in.take<uint16_t>();
        regs.rbx = in.take<uint16_t>();
        tlb.answer = (mode & 0x80) == 0;
        checked_hypercall(shadow, irqs, vp, regs);
        break;
      }
      case 9: {  // structured IPI or flush, with a VP set and a GVA list
        uint8_t b = in.take<uint8_t>();
        static const tlfs::CallCode kCodes[] = {tlfs::CallCode::kSendSyntheticClusterIpi,
                                                tlfs::CallCode::kSendSyntheticClusterIpiEx,
                                                tlfs::CallCode::kFlushVirtualAddressSpace,
                                                tlfs::CallCode::kFlushVirtualAddressList,
                                                tlfs::CallCode::kFlushVirtualAddressSpaceEx,
                                                tlfs::CallCode::kFlushVirtualAddressListEx};
        const uint64_t code = uint64_t(kCodes[b % 6]);
        uint64_t header[4] = {in.take<uint8_t>(), in.take<uint8_t>() & 7u, in.take<uint8_t>() & 3u,
                              in.take<uint8_t>() & 7u};
        memory.store(0, header);
        for (uint32_t i = 0; i < 8; ++i) memory.store(32 + 8 * i, in.take<uint64_t>());
        const uint64_t var = (b >> 3) & 3, count = in.take<uint8_t>() % 140;
        const uint64_t control = code | var << tlfs::control::kVarHeaderShift |
                                 count << tlfs::control::kRepCountShift |
                                 uint64_t{in.take<uint8_t>() % 8u} << tlfs::control::kRepStartShift;
        tlb.answer = (b & 0x80) == 0;
        checked_hypercall(shadow, irqs, vp, {CpuMode::kLong64, 0, 0, 0, control, 0, 0, 0, 0});
        break;
      }
      case 1: {  // wrmsr
        uint32_t msr = 0x40000000u + in.take<uint8_t>();
        uint64_t value = in.take<uint64_t>();
        const uint8_t shape = in.take<uint8_t>();
        if (shape & 1) value = (value % kPages) << 12 | (value & 1);  // plausible page
        if (shape & 2) value &= 0x300FF;  // SINT-shaped: vector, masked, AutoEOI
        checked_wrmsr(shadow, irqs, vp, msr, value);
        break;
      }
      case 2: {  // rdmsr
        uint64_t v = 0;
        read_synthetic_msr(vp, 0x40000000u + in.take<uint8_t>(), &v);
        break;
      }
      case 3: {  // guest writes bytes anywhere in RAM (input page, slots, flags)
        uint64_t at = in.take<uint16_t>() % (kPages * kPageSize - 16);
        uint64_t v = in.take<uint64_t>();
        memory.store(at, v);
        break;
      }
      case 4:  // the guest acknowledges a message
        checked_wrmsr(shadow, irqs, vp, tlfs::msr::kEom, 0);
        break;
      case 6: {  // structured CreatePort + ConnectPort, so posts can reach delivery
        uint8_t b = in.take<uint8_t>();
        tlfs::CreatePortInput port{};
        port.port_partition = tlfs::kPartitionSelf;
        port.port_id = b & 7;
        port.port_info.port_type = (b & 8) ? 2 : 1;
        port.port_info.target_sint = in.take<uint8_t>() % 17;
        port.port_info.target_vp = (b & 16) ? tlfs::kAnyVp : in.take<uint8_t>() % 3;
        if (b & 8) {
          port.port_info.base_flag_number = in.take<uint16_t>() % 2048;
          port.port_info.flag_count = in.take<uint16_t>() % 64;
        }
        memory.store(0, port);
        handle_hypercall(
            vp, {CpuMode::kLong64, 0, 0, 0, uint64_t(tlfs::CallCode::kCreatePort), 0, 0, 0, 0});
        tlfs::ConnectPortInput conn{};
        conn.connection_partition = tlfs::kPartitionSelf;
        conn.connection_id = in.take<uint8_t>() & 7;
        conn.port_partition = tlfs::kPartitionSelf;
        conn.port_id = port.port_id;
        conn.connection_info.port_type = port.port_info.port_type;
        memory.store(0, conn);
        handle_hypercall(
            vp, {CpuMode::kLong64, 0, 0, 0, uint64_t(tlfs::CallCode::kConnectPort), 0, 0, 0, 0});
        break;
      }
      case 7: {  // structured PostMessage or SignalEvent on a small connection id
        uint8_t b = in.take<uint8_t>();
        uint64_t code;
        if (b & 8) {
          tlfs::SignalEventInput signal{};
          signal.connection_id = b & 7;
          signal.flag_number = in.take<uint16_t>() % 2100;
          memory.store(0, signal);
          code = uint64_t(tlfs::CallCode::kSignalEvent);
        } else {
          tlfs::PostMessageInput post{};
          post.connection_id = b & 7;
          post.message_type = in.take<uint32_t>();
          post.payload_size = in.take<uint8_t>();
          memory.store(0, post);
          code = uint64_t(tlfs::CallCode::kPostMessage);
        }
        handle_hypercall(vp, {CpuMode::kLong64, 0, 0, 0, code, 0, 0, 0, 0});
        break;
      }
      case 8: {  // building block: this VP's SynIC on, with a SINT programmed
        uint64_t page = 8 + 2 * vp.index().value();
        checked_wrmsr(shadow, irqs, vp, tlfs::msr::kSimp, page << 12 | 1);
        checked_wrmsr(shadow, irqs, vp, tlfs::msr::kSiefp, (page + 1) << 12 | 1);
        const uint32_t sint = in.take<uint8_t>() % 16;
        const uint64_t value = 0x20 + in.take<uint8_t>() % 0xE0 | (uint64_t{in.take<uint8_t>()} & 7)
                                                                      << 16;
        checked_wrmsr(shadow, irqs, vp, tlfs::msr::kSint0 + sint, value);
        checked_wrmsr(shadow, irqs, vp, tlfs::msr::kScontrol, 1);
        break;
      }
      case 5: {
        CpuidRegs r{};
        hyperv_cpuid(*partition, 0x40000000u + in.take<uint8_t>(), &r);
        break;
      }
    }
    for (auto& w : memory.writes) {
      if (!shadow.inside_enabled_page(w.gpa, w.len)) abort();
    }
    memory.writes.clear();
    shadow.check_interrupts(irqs);
  }
  return 0;
}
