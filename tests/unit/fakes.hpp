// Host stand-ins for the hardware interfaces of the core: guest memory that
// records every write, an interrupt sink that records every request, a clock
// the test sets, and overlays that record where the core put them. Shared by
// the unit tests, the fuzzer and the benchmark.
#pragma once

#include <cstring>
#include <vector>

#include "kernel/platform/clock.hpp"
#include "kernel/platform/guest_memory.hpp"
#include "kernel/platform/interrupts.hpp"
#include "kernel/platform/overlays.hpp"
#include "kernel/platform/tlb.hpp"

namespace microhv::test {

// Guest RAM is [0, size) minus an optional hole (e.g. "hypervisor memory")
// and, as the guest sees it, minus the pages overlays sit on (when
// `overlays_at` points to FakeOverlays::at, as in the harness): the back
// end's rule (vmx/guest_ept.hpp). Every write is recorded so tests can
// assert where the core wrote.
class FakeMemory final : public GuestMemory {
 public:
  explicit FakeMemory(uint64_t pages) : bytes(pages * kPageSize, 0) {}

  unsigned address_bits() const override { return width; }
  bool is_ram(Gpa gpa, uint64_t len) const override {
    uint64_t a = gpa.value();
    if (len == 0 || a + len < a || a + len > bytes.size()) return false;
    if (overlays_at != nullptr) {
      for (uint32_t i = 0; i < kOverlayCount; ++i) {
        const uint64_t page = overlays_at[i];
        if (page != ~0ull && a < page + kPageSize && a + len > page) return false;
      }
    }
    return a + len <= hole_start || a >= hole_end;
  }
  bool read(Gpa gpa, void* dst, uint64_t len) override {
    if (!is_ram(gpa, len)) return false;
    std::memcpy(dst, &bytes[gpa.value()], len);
    return true;
  }
  bool write(Gpa gpa, const void* src, uint64_t len) override {
    if (!is_ram(gpa, len)) return false;
    std::memcpy(&bytes[gpa.value()], src, len);
    writes.push_back({gpa.value(), len});
    return true;
  }
  bool fetch_or_u64(Gpa gpa, uint64_t bits, uint64_t* old) override {
    if ((gpa.value() & 7) != 0 || !is_ram(gpa, 8)) return false;
    std::memcpy(old, &bytes[gpa.value()], 8);
    uint64_t v = *old | bits;
    std::memcpy(&bytes[gpa.value()], &v, 8);
    writes.push_back({gpa.value(), 8});
    return true;
  }

  template <typename T>
  T load(uint64_t gpa) const {
    T v;
    std::memcpy(&v, &bytes[gpa], sizeof(T));
    return v;
  }
  template <typename T>
  void store(uint64_t gpa, const T& v) {
    std::memcpy(&bytes[gpa], &v, sizeof(T));
  }

  struct Write {
    uint64_t gpa, len;
  };
  std::vector<uint8_t> bytes;
  std::vector<Write> writes;
  uint64_t hole_start = ~0ull, hole_end = ~0ull;
  unsigned width = 39;                    // the guest's physical address width
  const uint64_t* overlays_at = nullptr;  // FakeOverlays::at (~0: not placed)
};

class FakeInterrupts final : public InterruptSink {
 public:
  struct Raised {
    uint32_t vp;
    uint8_t vector;
    bool auto_eoi;
  };
  void raise(VpIndex vp, uint8_t vector, bool auto_eoi) override {
    raised.push_back({vp.value(), vector, auto_eoi});
  }
  size_t count(uint32_t vp, uint8_t vector) const {
    size_t n = 0;
    for (auto& r : raised) n += (r.vp == vp && r.vector == vector) ? 1 : 0;
    return n;
  }
  std::vector<Raised> raised;
};

// The host TSC as the test sets it. With kTscHz (1 GHz, the harness' time
// base) 100 ticks are one reference-time unit (100 ns).
class FakeClock final : public ReferenceClock {
 public:
  static constexpr uint64_t kTscHz = 1'000'000'000;
  uint64_t read_tsc() override { return tsc; }
  void advance_100ns(uint64_t units) { tsc += units * (kTscHz / 10'000'000); }
  uint64_t tsc = 0;
};

// Overlays as the core drives them: each one's page contents, where it is
// placed (kNowhere: not), and every place/remove call in order.
class FakeOverlays final : public GuestPhysicalOverlays {
 public:
  static constexpr uint64_t kNowhere = ~0ull;
  FakeOverlays() {
    for (uint64_t& a : at) a = kNowhere;
  }
  bool write(OverlayId id, uint32_t offset, const void* data, uint32_t len) override {
    auto i = static_cast<size_t>(id);
    if (i >= kOverlayCount || offset > kPageSize || len > kPageSize - offset) return false;
    std::memcpy(&page[i][offset], data, len);
    return true;
  }
  OverlayStatus place(OverlayId id, Gpa gpa) override {
    calls.push_back({id, gpa.value()});
    if (gpa.value() >= refuse_from) return OverlayStatus::kRefused;
    if (gpa.value() >= fail_from) return OverlayStatus::kFailed;
    at[static_cast<size_t>(id)] = gpa.value();
    return OverlayStatus::kPlaced;
  }
  void remove(OverlayId id) override {
    calls.push_back({id, kNowhere});
    at[static_cast<size_t>(id)] = kNowhere;
  }
  struct Call {
    OverlayId id;
    uint64_t gpa;  // kNowhere: remove
  };
  uint8_t page[kOverlayCount][kPageSize] = {};
  uint64_t at[kOverlayCount];
  std::vector<Call> calls;
  uint64_t refuse_from = ~0ull;  // place() refuses GPAs from here on
  uint64_t fail_from = ~0ull;    // place() fails (out of page tables) for GPAs from here on
};

// Remote TLB flushes as the core asks for them: every request with its
// ranges copied, and the answer a test chooses (false: a target timed out).
class FakeTlb final : public GuestTlb {
 public:
  struct Flush {
    uint32_t self;
    uint64_t targets;
    TlbFlushRequest::Scope scope;
    std::vector<uint64_t> ranges;
  };
  bool flush(VpIndex self, VpMask targets, const TlbFlushRequest& what) override {
    Flush f{self.value(), targets.bits(), what.scope, {}};
    for (uint32_t i = 0; i < what.range_count; ++i) f.ranges.push_back(what.ranges[i]);
    flushes.push_back(f);
    return answer;
  }
  std::vector<Flush> flushes;
  bool answer = true;
};

}  // namespace microhv::test
