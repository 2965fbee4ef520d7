// `make bench`: one HvCallPostMessage through the core (ABI decode, input
// copy, checks, SIM slot delivery, interrupt request) plus the guest's
// acknowledgement (free the slot, EOM) against a plain 256-byte memcpy, the
// floor for moving one message. Both run in the same process; the ratio is
// what to compare across machines.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/hypervisor.hpp"
#include "tests/unit/fakes.hpp"

using namespace microhv;

namespace {

constexpr uint64_t kInput = 0x1000, kSim = 0x2000, kSief = 0x3000;

// Guest memory as the VT-x back end sees it: one range check, then a copy.
// (The test fake also logs every write, which is not what is measured here.)
class FlatMemory final : public GuestMemory {
 public:
  bool is_ram(Gpa gpa, uint64_t len) const override {
    return gpa.value() < sizeof(bytes) && len <= sizeof(bytes) - gpa.value();
  }
  bool read(Gpa gpa, void* dst, uint64_t len) override {
    if (!is_ram(gpa, len)) return false;
    std::memcpy(dst, bytes + gpa.value(), len);
    return true;
  }
  bool write(Gpa gpa, const void* src, uint64_t len) override {
    if (!is_ram(gpa, len)) return false;
    std::memcpy(bytes + gpa.value(), src, len);
    return true;
  }
  bool fetch_or_u64(Gpa gpa, uint64_t bits, uint64_t* old) override {
    if ((gpa.value() & 7) != 0 || !is_ram(gpa, 8)) return false;
    *old =
        __atomic_fetch_or(reinterpret_cast<uint64_t*>(bytes + gpa.value()), bits, __ATOMIC_SEQ_CST);
    return true;
  }
  template <typename T>
  void store(uint64_t gpa, const T& v) {
    std::memcpy(bytes + gpa, &v, sizeof(T));
  }
  template <typename T>
  T load(uint64_t gpa) const {
    T v;
    std::memcpy(&v, bytes + gpa, sizeof(T));
    return v;
  }
  alignas(4096) uint8_t bytes[16 * 4096] = {};
};

// Counts interrupt requests, as the back end's pending bitmap would.
class CountingInterrupts final : public InterruptSink {
 public:
  void raise(VpIndex, uint8_t, bool) override { ++count; }
  uint64_t count = 0;
};

struct Setup {
  std::unique_ptr<Hypervisor> hv = std::make_unique<Hypervisor>();
  FlatMemory memory;
  CountingInterrupts irqs;
  test::FakeClock clock;
  test::FakeOverlays overlays;
  test::FakeTlb tlb;
  Partition* partition;
  Vp* vp;

  Setup() {
    partition = hv->create_partition({PartitionId(1), 1, kFullFeatures}, memory, irqs, clock,
                                     overlays, tlb);
    vp = partition->vp(VpIndex(0));
    write_synthetic_msr(*vp, tlfs::msr::kSimp, kSim | 1);
    write_synthetic_msr(*vp, tlfs::msr::kSiefp, kSief | 1);
    write_synthetic_msr(*vp, tlfs::msr::kSint0 + 2, 0x50 | tlfs::sint_bits::kAutoEoi);
    write_synthetic_msr(*vp, tlfs::msr::kScontrol, 1);
    tlfs::CreatePortInput port{};
    port.port_partition = tlfs::kPartitionSelf;
    port.port_id = 1;
    port.port_info = {1, 0, 2, 0, 0, 0, 0};
    memory.store(kInput, port);
    call(uint64_t(tlfs::CallCode::kCreatePort));
    tlfs::ConnectPortInput conn{};
    conn.connection_partition = tlfs::kPartitionSelf;
    conn.connection_id = 7;
    conn.port_partition = tlfs::kPartitionSelf;
    conn.port_id = 1;
    conn.connection_info.port_type = 1;
    memory.store(kInput, conn);
    call(uint64_t(tlfs::CallCode::kConnectPort));
    tlfs::PostMessageInput post{};
    post.connection_id = 7;
    post.message_type = 1;
    post.payload_size = tlfs::kMaxPayload;
    memory.store(kInput, post);
  }
  uint64_t call(uint64_t control) {
    HypercallRegs regs{CpuMode::kLong64, 0, 0, 0, control, kInput, 0, 0, 0};
    return handle_hypercall(*vp, regs).value;
  }
};

void BM_PostDeliverEom(benchmark::State& state) {
  Setup s;
  for (auto _ : state) {
    uint64_t r = s.call(uint64_t(tlfs::CallCode::kPostMessage));
    benchmark::DoNotOptimize(r);
    s.memory.store<uint32_t>(kSim + 2 * 256, 0);  // guest frees the slot
    write_synthetic_msr(*s.vp, tlfs::msr::kEom, 0);
  }
  if (s.irqs.count != static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("a message was not delivered");
}
BENCHMARK(BM_PostDeliverEom);

void BM_Memcpy256(benchmark::State& state) {
  alignas(64) static uint8_t src[256], dst[256];
  for (auto _ : state) {
    // Hide both pointers from the optimizer so the copy really happens each time.
    uint8_t* d = dst;
    const uint8_t* s = src;
    benchmark::DoNotOptimize(d);
    benchmark::DoNotOptimize(s);
    std::memcpy(d, s, 256);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Memcpy256);

// Collects per-benchmark CPU time so that main can print the ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) ns[r.benchmark_name()] = r.GetAdjustedCPUTime();
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> ns;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  double post = reporter.ns["BM_PostDeliverEom"], copy = reporter.ns["BM_Memcpy256"];
  if (post > 0 && copy > 0) {
    std::printf("post+deliver+EOM: %.1f ns, memcpy(256): %.1f ns, ratio %.1fx (target: <= 5x)\n",
                post, copy, post / copy);
  }
  return 0;
}
