// libFuzzer target over the hypercall and synthetic-MSR entry points. The
// input is a little program: each step picks an operation (hypercall with
// arbitrary control word, registers, mode and CPL; MSR read/write with an
// arbitrary value; raw bytes into the input page or a SIM/SIEF page; EOI)
// and takes its operands from the following bytes. Invariants, besides
// ASan/UBSan: every result is a defined status with zero reserved bits, and
// the core writes only inside SIM/SIEF pages the guest enabled.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/services/vmbus_host.hpp"
#include "tests/unit/fakes.hpp"

using namespace microhv;

namespace {

constexpr uint64_t kPages = 32;
constexpr uint32_t kVps = 2;

struct Reader {
  const uint8_t* data;
  size_t size;
  template <typename T>
  T take() {
    T v{};
    size_t n = size < sizeof(T) ? size : sizeof(T);
    std::memcpy(&v, data, n);
    data += n;
    size -= n;
    return v;
  }
};

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
      return true;
    default:
      return false;
  }
}

// Pages the guest has enabled as SIM or SIEF, on any VP.
bool inside_enabled_page(Partition& p, uint64_t gpa, uint64_t len) {
  for (uint32_t i = 0; i < p.vp_count(); ++i) {
    const SynicState& s = p.vp(VpIndex(i))->synic;
    for (auto [on, base] :
         {std::pair{s.sim_enabled(), s.sim_page()}, std::pair{s.sief_enabled(), s.sief_page()}}) {
      if (on && gpa >= base.value() && gpa + len <= base.value() + kPageSize) return true;
    }
  }
  return false;
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
  Reader in{data, size};
  PartitionFeatures features = kFullFeatures;
  features.privileges &= in.take<uint8_t>() | 0xFFFFFF0Fu;  // sometimes drop privileges
  Partition* partition =
      hv->create_partition({PartitionId(1), kVps, features}, memory, irqs, clock, overlays);
  // The VMBus host listens on connections 1 and 4, which the structured
  // post below reaches.
  VmbusHost vmbus;
  if (!vmbus.attach(*hv, *partition, PartitionId(2))) abort();

  for (int steps = 0; steps < 64 && in.size > 0; ++steps) {
    Vp& vp = *partition->vp(VpIndex(in.take<uint8_t>() % kVps));
    switch (in.take<uint8_t>() % 9) {
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
        HypercallOutcome out = handle_hypercall(vp, regs);
        if (!out.inject_ud) {
          if (!known_status(static_cast<uint16_t>(out.result))) abort();
          if ((out.result >> 16) != 0) abort();  // no reps, reserved bits clear
        }
        break;
      }
      case 1: {  // wrmsr
        uint32_t msr = 0x40000000u + in.take<uint8_t>();
        uint64_t value = in.take<uint64_t>();
        if (in.take<uint8_t>() & 1) value = (value % kPages) << 12 | (value & 1);  // plausible page
        write_synthetic_msr(vp, msr, value);
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
      case 4:
        synic_end_of_interrupt(vp, in.take<uint8_t>());
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
        write_synthetic_msr(vp, tlfs::msr::kSimp, page << 12 | 1);
        write_synthetic_msr(vp, tlfs::msr::kSiefp, (page + 1) << 12 | 1);
        write_synthetic_msr(vp, tlfs::msr::kSint0 + in.take<uint8_t>() % 16,
                            0x20 + in.take<uint8_t>() % 0xE0 | (uint64_t{in.take<uint8_t>()} & 7)
                                                                   << 16);
        write_synthetic_msr(vp, tlfs::msr::kScontrol, 1);
        break;
      }
      case 5: {
        CpuidRegs r{};
        hyperv_cpuid(*partition, 0x40000000u + in.take<uint8_t>(), &r);
        break;
      }
    }
    for (auto& w : memory.writes) {
      if (!inside_enabled_page(*partition, w.gpa, w.len)) abort();
    }
    memory.writes.clear();
  }
  return 0;
}
