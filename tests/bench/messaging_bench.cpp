// `make bench`: one HvCallPostMessage through the core (ABI decode, input
// copy, checks, SIM slot delivery, interrupt request) plus the guest's
// acknowledgement (free the slot, EOM) against a plain 256-byte memcpy, the
// floor for moving one message. Both run in the same process; the ratio is
// what to compare across machines. Three forms of the same work:
//   BM_PostDeliverEom            one connection and port in the tables;
//   BM_PostDeliverEomFullTables  the partition holds its whole quota of ports
//                                and connections, and posts through the last
//                                one made (what a lookup by table scan pays);
//   4 VPs posting concurrently   (printed after the table) each VP posts to
//                                a port of its own on its own thread, all
//                                through the one Hypervisor lock.
// Each checks that every post raised exactly one interrupt.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/hypervisor.hpp"
#include "tests/unit/fakes.hpp"

using namespace microhv;

namespace {

// Per VP i: its input page, SIM page and SIEF page.
constexpr uint32_t kVps = 4;
constexpr uint64_t kInput = 0x1000, kSim = 0x8000, kSief = 0x10000;
constexpr uint32_t kSint = 2;
uint64_t input_of(uint32_t vp) {
  return kInput + vp * kPageSize;
}
uint64_t slot_of(uint32_t vp) {
  return kSim + vp * kPageSize + kSint * tlfs::kMessageSize;
}

// Guest memory as the VT-x back end sees it: one range check, then a copy.
// (The test fake also logs every write, which is not what is measured here.)
class FlatMemory final : public GuestMemory {
 public:
  unsigned address_bits() const override { return 39; }
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
  // The guest freeing a slot: MessageType = 0.
  void free_slot(uint64_t gpa) {
    __atomic_store_n(reinterpret_cast<uint32_t*>(bytes + gpa), 0u, __ATOMIC_RELEASE);
  }
  alignas(4096) uint8_t bytes[32 * 4096] = {};
};

// Counts interrupt requests per VP, as the back end's pending bitmap would.
class CountingInterrupts final : public InterruptSink {
 public:
  void raise(VpIndex vp, uint8_t, bool) override {
    __atomic_fetch_add(&count[vp.value() % kVps], 1, __ATOMIC_RELAXED);
  }
  uint64_t total() const {
    uint64_t n = 0;
    for (uint64_t c : count) n += __atomic_load_n(&c, __ATOMIC_RELAXED);
    return n;
  }
  uint64_t count[kVps] = {};
};

// One partition with kVps VPs, each with its SynIC on and a message port
// (SINT 2, AutoEOI) that a connection of the same partition reaches;
// `filler` more ports and connections are made first, so that the ones
// posted through are the last in the tables.
struct Setup {
  std::unique_ptr<Hypervisor> hv = std::make_unique<Hypervisor>();
  FlatMemory memory;
  CountingInterrupts irqs;
  test::FakeClock clock;
  test::FakeOverlays overlays;
  test::FakeTlb tlb;
  Partition* partition;

  explicit Setup(uint32_t filler = 0) {
    partition = hv->create_partition({PartitionId(1), kVps, kFullFeatures}, memory, irqs, clock,
                                     overlays, tlb);
    for (uint32_t i = 0; i < kVps; ++i) {
      Vp& vp = *partition->vp(VpIndex(i));
      write_synthetic_msr(vp, tlfs::msr::kSimp, (kSim + i * kPageSize) | 1);
      write_synthetic_msr(vp, tlfs::msr::kSiefp, (kSief + i * kPageSize) | 1);
      write_synthetic_msr(vp, tlfs::msr::kSint0 + kSint, 0x50 | tlfs::sint_bits::kAutoEoi);
      write_synthetic_msr(vp, tlfs::msr::kScontrol, 1);
    }
    for (uint32_t n = 0; n < filler; ++n) connect(VpIndex(0), 0x100 + n, 0x100 + n);
    for (uint32_t i = 0; i < kVps; ++i) connect(VpIndex(i), 1 + i, 7 + i);
    for (uint32_t i = 0; i < kVps; ++i) {
      tlfs::PostMessageInput post{};
      post.connection_id = 7 + i;
      post.message_type = 1;
      post.payload_size = tlfs::kMaxPayload;
      memory.store(input_of(i), post);
    }
  }
  void connect(VpIndex target, uint32_t port_id, uint32_t connection_id) {
    tlfs::CreatePortInput port{};
    port.port_partition = tlfs::kPartitionSelf;
    port.port_id = port_id;
    port.port_info = {1, 0, kSint, target.value(), 0, 0, 0};
    memory.store(input_of(0), port);
    if (call(0, uint64_t(tlfs::CallCode::kCreatePort)) != 0) std::abort();
    tlfs::ConnectPortInput conn{};
    conn.connection_partition = tlfs::kPartitionSelf;
    conn.connection_id = connection_id;
    conn.port_partition = tlfs::kPartitionSelf;
    conn.port_id = port_id;
    conn.connection_info.port_type = 1;
    memory.store(input_of(0), conn);
    if (call(0, uint64_t(tlfs::CallCode::kConnectPort)) != 0) std::abort();
  }
  uint64_t call(uint32_t vp, uint64_t control) {
    HypercallRegs regs{CpuMode::kLong64, 0, 0, 0, control, input_of(vp), 0, 0, 0};
    return handle_hypercall(*partition->vp(VpIndex(vp)), regs).value;
  }
  // One message: post, the guest frees the slot, EOM. True if delivered.
  bool round_trip(uint32_t vp) {
    const uint64_t r = call(vp, uint64_t(tlfs::CallCode::kPostMessage));
    memory.free_slot(slot_of(vp));
    write_synthetic_msr(*partition->vp(VpIndex(vp)), tlfs::msr::kEom, 0);
    return r == 0;
  }
};

void run_round_trips(benchmark::State& state, Setup& s) {
  const uint64_t before = s.irqs.total();
  bool ok = true;
  for (auto _ : state) ok &= s.round_trip(0);
  if (!ok || s.irqs.total() - before != static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("a message was not delivered");
}

void BM_PostDeliverEom(benchmark::State& state) {
  Setup s;
  run_round_trips(state, s);
}
BENCHMARK(BM_PostDeliverEom);

void BM_PostDeliverEomFullTables(benchmark::State& state) {
  // The partition's whole share: kDefaultQuota ports and connections.
  Setup s(kDefaultQuota.ports - kVps);
  run_round_trips(state, s);
}
BENCHMARK(BM_PostDeliverEomFullTables);

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

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

struct Contended {
  double wall_ns_per_message;
  double cpu_ns_per_message;
  bool all_delivered;
};

// kVps threads, one per VP, each posting `per_thread` messages through its
// own connection; all of them meet at Hypervisor::lock.
Contended run_contended(uint32_t threads, uint64_t per_thread) {
  Setup s;
  std::vector<std::thread> workers;
  bool ok[kVps] = {};
  int go = 0;
  const double cpu0 = cpu_seconds();
  const auto wall0 = std::chrono::steady_clock::now();
  for (uint32_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      while (__atomic_load_n(&go, __ATOMIC_ACQUIRE) == 0) {
      }
      bool delivered = true;
      for (uint64_t i = 0; i < per_thread; ++i) delivered &= s.round_trip(t);
      ok[t] = delivered;
    });
  }
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  for (auto& w : workers) w.join();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const double cpu = cpu_seconds() - cpu0;
  const uint64_t messages = threads * per_thread;
  bool all = s.irqs.total() == messages;
  for (uint32_t t = 0; t < threads; ++t) all &= ok[t] && s.irqs.count[t] == per_thread;
  return {wall * 1e9 / double(messages), cpu * 1e9 / double(messages), all};
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double copy = reporter.ns["BM_Memcpy256"];
  for (const char* name : {"BM_PostDeliverEom", "BM_PostDeliverEomFullTables"}) {
    const double post = reporter.ns[name];
    if (post > 0 && copy > 0) {
      std::printf(
          "%s: post+deliver+EOM %.1f ns, memcpy(256) %.1f ns, ratio %.1fx (target: <= 5x)\n", name,
          post, copy, post / copy);
    }
  }
  constexpr uint64_t kPerThread = 500000;
  const Contended one = run_contended(1, kPerThread);
  const Contended four = run_contended(kVps, kPerThread);
  std::printf("contention: 1 VP  posting: %.1f ns/message wall, %.1f ns CPU%s\n",
              one.wall_ns_per_message, one.cpu_ns_per_message,
              one.all_delivered ? "" : " (ERROR: a message was not delivered)");
  std::printf(
      "contention: %u VPs posting concurrently (%u host CPUs): %.1f ns/message wall, "
      "%.1f ns CPU per message (%.1fx memcpy(256))%s\n",
      kVps, std::thread::hardware_concurrency(), four.wall_ns_per_message, four.cpu_ns_per_message,
      copy > 0 ? four.cpu_ns_per_message / copy : 0.0,
      four.all_delivered ? "" : " (ERROR: a message was not delivered)");
  return one.all_delivered && four.all_delivered ? 0 : 1;
}
