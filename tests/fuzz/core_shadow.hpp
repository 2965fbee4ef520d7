// The core fuzz target's oracle, part 1: its own shadow of everything the
// TLFS says the guests can observe -- each partition's SynIC registers as
// written, the ports and connections (with partition authority, quotas and
// the VMBus host's pinned reply port), the messages accepted and not yet in
// a SIM slot, per VP and SINT in posting order -- and the delivery rules
// (TLFS 11.9: a free slot takes the head of the queue and raises the SINT;
// a busy one gets MessagePending; EOM and enabling SCONTROL/SIMP deliver).
// It never reads the core's state: only the guests' own memory (their SIM
// and SIEF pages, as a guest would) and what the core wrote there.
//
// Each step predicts what the core must do; check_step() then requires that
// every byte the core wrote lies where a predicted delivery, MessagePending
// bit or event flag goes, that each predicted message is in its slot byte
// for byte, and that the interrupts raised are exactly the predicted ones.
#pragma once

#include <deque>
#include <vector>

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/partition.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/unit/fakes.hpp"

namespace microhv::fuzz {

using tlfs::Status;

// The partitions of the fuzz world (ids as the guests name them).
constexpr uint64_t kGuestA = 1;   // 2 VPs
constexpr uint64_t kHost = 2;     // the VMBus host (service, no VPs)
constexpr uint64_t kChild = 3;    // 1 VP, child of partition 1
constexpr uint64_t kSibling = 4;  // 1 VP
constexpr uint64_t kPartitionIds[] = {kGuestA, kHost, kChild, kSibling};

struct ShadowVp {
  uint64_t scontrol = 0, simp = 0, siefp = 0;
  uint64_t sint[16];
  std::deque<uint32_t> queue[16];  // message indices, oldest first
  ShadowVp() {
    for (uint64_t& s : sint) s = tlfs::sint_bits::kReset;
  }
  bool masked(uint32_t s) const { return (sint[s] & tlfs::sint_bits::kMasked) != 0; }
};

struct ShadowPartition {
  uint64_t id = 0;
  uint64_t parent = 0;
  bool service = false;
  PartitionQuota quota{0, 0};
  std::vector<ShadowVp> vps;
  test::FakeMemory* memory = nullptr;
  test::FakeInterrupts* irqs = nullptr;
  std::vector<test::FakeInterrupts::Raised> expected_irqs;
  size_t irqs_checked = 0;
};

struct ShadowPort {
  uint64_t partition;
  uint32_t id;
  bool message;
  uint32_t sint, target;
  uint16_t base, count;
  uint64_t connection_partition;  // 0: any
  bool pinned;
  bool alive = true;
  uint32_t outstanding = 0;  // accepted messages waiting in its buffers
};

struct ShadowConnection {
  uint64_t partition;
  uint32_t id;
  uint32_t port;  // index into Shadow::ports: connections bind to one incarnation
};

struct ShadowMessage {
  uint32_t port;  // index into Shadow::ports
  uint32_t type;
  uint8_t size;
  uint8_t payload[tlfs::kMaxPayload];
};

class Shadow {
 public:
  std::vector<ShadowPartition> partitions;
  std::vector<ShadowPort> ports;
  std::vector<ShadowConnection> connections;
  std::vector<ShadowMessage> messages;
  uint64_t accepted = 0, delivered = 0;

  ShadowPartition* find(uint64_t id) {
    for (ShadowPartition& p : partitions) {
      if (p.id == id) return &p;
    }
    return nullptr;
  }
  ShadowPartition& partition(uint64_t id) { return *find(id); }
  // HV_PARTITION_ID_SELF is the caller.
  ShadowPartition* resolve(uint64_t caller, uint64_t id) {
    return find(id == tlfs::kPartitionSelf ? caller : id);
  }
  // The partition a port call acts on: itself or its child (TLFS).
  Status acting_on(uint64_t caller, uint64_t id, ShadowPartition** out) {
    ShadowPartition* p = resolve(caller, id);
    if (p == nullptr) return Status::kInvalidPartitionId;
    if (p->id != caller && p->parent != caller) return Status::kAccessDenied;
    *out = p;
    return Status::kSuccess;
  }

  // ---- ports and connections

  int alive_port(uint64_t partition, uint32_t id) const {
    for (size_t i = 0; i < ports.size(); ++i) {
      if (ports[i].alive && ports[i].partition == partition && ports[i].id == id) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  uint32_t ports_held(uint64_t partition) const {
    uint32_t n = 0;
    for (const ShadowPort& p : ports) {
      n += (p.partition == partition && (p.alive || p.outstanding > 0)) ? 1 : 0;
    }
    return n;
  }
  int connection(uint64_t partition, uint32_t id) const {
    for (size_t i = 0; i < connections.size(); ++i) {
      if (connections[i].partition == partition && connections[i].id == id) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  uint32_t connections_held(uint64_t partition) const {
    uint32_t n = 0;
    for (const ShadowConnection& c : connections) n += c.partition == partition ? 1 : 0;
    return n;
  }

  // ---- SynIC state as the guest programmed it

  bool can_msg(ShadowPartition& p, uint32_t vp) {
    const ShadowVp& v = p.vps[vp];
    return (v.scontrol & 1) != 0 && (v.simp & 1) != 0 &&
           p.memory->is_ram(Gpa(v.simp & ~0xFFFull), kPageSize);
  }
  bool can_evt(ShadowPartition& p, uint32_t vp) {
    const ShadowVp& v = p.vps[vp];
    return (v.scontrol & 1) != 0 && (v.siefp & 1) != 0 &&
           p.memory->is_ram(Gpa(v.siefp & ~0xFFFull), kPageSize);
  }
  static uint64_t slot_gpa(const ShadowVp& v, uint32_t sint) {
    return (v.simp & ~0xFFFull) + sint * tlfs::kMessageSize;
  }
  uint32_t slot_type(ShadowPartition& p, uint32_t vp, uint32_t sint) {
    return p.memory->load<uint32_t>(slot_gpa(p.vps[vp], sint));
  }

  void raise(ShadowPartition& p, uint32_t vp, uint32_t sint) {
    const ShadowVp& v = p.vps[vp];
    if (v.masked(sint)) return;
    p.expected_irqs.push_back(
        {vp, static_cast<uint8_t>(v.sint[sint]), (v.sint[sint] & tlfs::sint_bits::kAutoEoi) != 0});
  }

  // ---- delivery (TLFS 11.9)

  // The VP a message port's post goes to now, or the failing status.
  Status message_target(const ShadowPort& port, uint32_t* vp) {
    ShadowPartition& p = partition(port.partition);
    if (port.target != tlfs::kAnyVp) {
      if (port.target >= p.vps.size()) return Status::kInvalidVpIndex;
      *vp = port.target;
      return can_msg(p, *vp) ? Status::kSuccess : Status::kInvalidSynicState;
    }
    if (p.vps.empty()) return Status::kInvalidVpIndex;
    int fallback = -1;
    for (uint32_t v = 0; v < p.vps.size(); ++v) {
      if (!can_msg(p, v)) continue;
      if (p.vps[v].queue[port.sint].empty()) {
        *vp = v;
        return Status::kSuccess;
      }
      if (fallback < 0) fallback = static_cast<int>(v);
    }
    if (fallback < 0) return Status::kInvalidSynicState;
    *vp = static_cast<uint32_t>(fallback);
    return Status::kSuccess;
  }

  // Accepts a message for a port of a guest partition (the target is
  // resolved): straight into a free slot, else into one of the port's 16
  // buffers, else INSUFFICIENT_BUFFERS.
  Status deliver_or_queue(uint32_t port_index, uint32_t vp, const ShadowMessage& m) {
    ShadowPort& port = ports[port_index];
    ShadowPartition& p = partition(port.partition);
    ShadowVp& v = p.vps[vp];
    const uint32_t index = static_cast<uint32_t>(messages.size());
    messages.push_back(m);
    if (v.queue[port.sint].empty() && slot_type(p, vp, port.sint) == 0) {
      ++accepted;
      write_slot(p, vp, port.sint, index, 0);
      raise(p, vp, port.sint);
      return Status::kSuccess;
    }
    if (port.outstanding == tlfs::kMessageBuffersPerPort) {
      messages.pop_back();
      return Status::kInsufficientBuffers;
    }
    ++accepted;
    ++port.outstanding;
    v.queue[port.sint].push_back(index);
    drain(p, vp, port.sint);
    return Status::kSuccess;
  }

  void drain(ShadowPartition& p, uint32_t vp, uint32_t sint) {
    ShadowVp& v = p.vps[vp];
    auto& q = v.queue[sint];
    if (q.empty() || !can_msg(p, vp)) return;
    if (slot_type(p, vp, sint) != 0) {
      pending.push_back({&p, slot_gpa(v, sint), 8});
      allow(p, slot_gpa(v, sint), 8);
      return;
    }
    const uint32_t index = q.front();
    q.pop_front();
    --ports[messages[index].port].outstanding;
    write_slot(p, vp, sint, index, q.empty() ? 0 : tlfs::kMessageFlagPending);
    raise(p, vp, sint);
  }
  void drain_all(ShadowPartition& p, uint32_t vp) {
    for (uint32_t s = 0; s < 16; ++s) drain(p, vp, s);
  }

  // ---- expectations of one step, and their check

  struct Region {
    ShadowPartition* p;
    uint64_t gpa, len;
  };
  struct Delivery {
    ShadowPartition* p;
    uint64_t slot;
    uint32_t message;
    uint8_t flags;
  };
  struct Bit {
    ShadowPartition* p;
    uint64_t gpa;  // the qword; for pending: the slot header
    uint64_t mask;
  };
  std::vector<Region> allowed;
  std::vector<Delivery> deliveries;
  std::vector<Region> pending;  // slot headers that must have MessagePending
  std::vector<Bit> flags;       // SIEF bits that must be set

  void allow(ShadowPartition& p, uint64_t gpa, uint64_t len) { allowed.push_back({&p, gpa, len}); }

  void write_slot(ShadowPartition& p, uint32_t vp, uint32_t sint, uint32_t index,
                  uint8_t slot_flags) {
    const uint64_t slot = slot_gpa(p.vps[vp], sint);
    deliveries.push_back({&p, slot, index, slot_flags});
    allow(p, slot, 16 + messages[index].size);
    ++delivered;
  }

  void check_step() {
    for (ShadowPartition& p : partitions) {
      if (p.memory == nullptr) continue;
      for (const auto& w : p.memory->writes) {
        bool inside = false;
        for (const Region& r : allowed) {
          if (r.p == &p && w.gpa >= r.gpa && w.gpa + w.len <= r.gpa + r.len) inside = true;
        }
        expect(inside, "the core wrote guest memory where no delivery or flag was due");
      }
      p.memory->writes.clear();
    }
    for (const Delivery& d : deliveries) {
      const ShadowMessage& m = messages[d.message];
      const tlfs::Message got = d.p->memory->load<tlfs::Message>(d.slot);
      expect(got.message_type == m.type && got.payload_size == m.size &&
                 got.message_flags == d.flags && got.reserved == 0 &&
                 got.origin == ports[m.port].id,
             "a delivered message header differs from the one accepted");
      expect(std::memcmp(got.payload, m.payload, m.size) == 0,
             "a delivered payload differs from the one accepted");
    }
    for (const Region& r : pending) {
      expect((r.p->memory->load<uint8_t>(r.gpa + 5) & tlfs::kMessageFlagPending) != 0,
             "MessagePending not set in a busy slot with messages queued behind it");
    }
    for (const Bit& b : flags) {
      expect((b.p->memory->load<uint64_t>(b.gpa) & b.mask) != 0, "an event flag was not set");
    }
    for (ShadowPartition& p : partitions) {
      if (p.irqs == nullptr) continue;
      expect(p.irqs->raised.size() == p.expected_irqs.size(),
             "a different number of interrupts than the SynIC rules give");
      for (; p.irqs_checked < p.expected_irqs.size(); ++p.irqs_checked) {
        const auto& got = p.irqs->raised[p.irqs_checked];
        const auto& want = p.expected_irqs[p.irqs_checked];
        expect(got.vp == want.vp && got.vector == want.vector && got.auto_eoi == want.auto_eoi,
               "an interrupt differs from the predicted VP, vector or AutoEOI");
      }
    }
    allowed.clear();
    deliveries.clear();
    pending.clear();
    flags.clear();
  }

  // Every accepted message is in some queue or was delivered: none lost.
  uint64_t queued() const {
    uint64_t n = 0;
    for (const ShadowPartition& p : partitions) {
      for (const ShadowVp& v : p.vps) {
        for (const auto& q : v.queue) n += q.size();
      }
    }
    return n;
  }
};

}  // namespace microhv::fuzz
