// The reference model of the TLFS SynIC rules (chapter 11) used by
// model_test.cpp: its own copy of every SynIC register the guest wrote, the
// per-VP, per-SINT FIFOs, the ports and their buffers and the bytes every SIM
// and SIEF page must hold; what the core must do from that state (raise,
// write_slot, drain, target_of); and the checks of the core's writes and
// interrupts against it. It never looks at the core's state.
#pragma once

#include <deque>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "kernel/ports.hpp"
#include "tests/unit/harness.hpp"

namespace microhv::test::model {

using tlfs::Status;

constexpr uint32_t kVps = 4;
constexpr uint32_t kOps = 120000;
constexpr uint32_t kSints[] = {1, 2, 5};
constexpr uint32_t kBuffers = 16;  // TLFS: 16 guest message buffers per port
constexpr uint32_t kMaxAlivePorts = 24;
// The whole port tables for the one partition.
constexpr PartitionQuota kModelQuota{kMaxPorts, kMaxConnections};

// HV_MESSAGE (TLFS 11.9): type @0, PayloadSize @4, MessageFlags @5 (bit 0
// MessagePending), reserved @6, origin @8, payload @16.
constexpr uint32_t kFlagsOffset = 5;
constexpr uint32_t kPayloadOffset = 16;

struct ModelPort {
  uint32_t id = 0;
  bool alive = false;
  bool message = false;  // else event
  uint32_t sint = 0;
  uint32_t target = 0;  // VP index or HV_ANY_VP
  uint16_t base_flag = 0, flag_count = 0;
  uint32_t outstanding = 0;  // messages waiting in its buffers
  uint32_t next_seq = 0;
};

struct Msg {
  uint32_t type;
  uint32_t size;
  uint32_t origin;
  uint8_t payload[tlfs::kMaxPayload];
  uint32_t port() const { return load32(0); }
  uint32_t seq() const { return load32(4); }
  uint32_t load32(uint32_t at) const {
    uint32_t v;
    std::memcpy(&v, payload + at, 4);
    return v;
  }
};

struct Irq {
  uint32_t vp;
  uint8_t vector;
  bool auto_eoi;
};

struct ModelVp {
  bool scontrol = false, simp = false, siefp = false;
  uint64_t sint[16];
  std::deque<Msg> queue[16];
  uint8_t sim[kPageSize] = {};   // what the SIM page must hold
  uint8_t sief[kPageSize] = {};  // what the SIEF page must hold
  ModelVp() {
    for (uint64_t& s : sint) s = 1ull << 16;  // reset value: masked (TLFS 11.8.4)
  }
  bool masked(uint32_t s) const { return (sint[s] >> 16) & 1; }
  bool auto_eoi(uint32_t s) const { return (sint[s] >> 17) & 1; }
  uint8_t vector(uint32_t s) const { return static_cast<uint8_t>(sint[s]); }
  uint8_t* slot(uint32_t s) { return sim + s * tlfs::kMessageSize; }
  uint32_t slot_type(uint32_t s) {
    uint32_t t;
    std::memcpy(&t, slot(s), 4);
    return t;
  }
};

struct SynicModel {
  Guest g{PartitionConfig{PartitionId(1), kVps, kFullFeatures, kModelQuota}};
  std::mt19937_64 rng{20261124};
  std::map<uint32_t, ModelPort> ports;  // by port id (ids are never reused)
  std::map<uint32_t, uint32_t> conns;   // connection id -> port id
  ModelVp vps[kVps];
  uint32_t next_port_id = 1, next_conn_id = 1;
  std::vector<Irq> expected_irqs;
  size_t irqs_checked = 0;
  std::vector<std::pair<uint64_t, uint64_t>> dirty;  // ranges the model changed this op
  std::set<std::pair<uint32_t, uint32_t>> accepted, delivered;
  std::map<std::pair<uint32_t, uint32_t>, int64_t> last_seq;  // (port, vp) -> seq
  std::map<Status, uint32_t> status_counts;
  uint32_t ops_done = 0;

  uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng() % n); }
  bool can_msg(uint32_t vp) const { return vps[vp].scontrol && vps[vp].simp; }
  bool can_evt(uint32_t vp) const { return vps[vp].scontrol && vps[vp].siefp; }

  // ---- what the core must do (the TLFS rules, from the model's state)

  void raise(uint32_t vp, uint32_t sint) {
    const ModelVp& v = vps[vp];
    if (!v.masked(sint)) expected_irqs.push_back({vp, v.vector(sint), v.auto_eoi(sint)});
  }

  // A message into a free slot: header and PayloadSize bytes, nothing after.
  void write_slot(uint32_t vp, uint32_t sint, const Msg& m, uint8_t flags) {
    uint8_t* slot = vps[vp].slot(sint);
    uint64_t origin = m.origin;
    std::memcpy(slot, &m.type, 4);
    slot[4] = static_cast<uint8_t>(m.size);
    slot[kFlagsOffset] = flags;
    slot[6] = slot[7] = 0;
    std::memcpy(slot + 8, &origin, 8);
    std::memcpy(slot + kPayloadOffset, m.payload, m.size);
    mark(sim_of(vp) + sint * tlfs::kMessageSize, kPayloadOffset + m.size);
  }

  // The head of the queue into the slot if it is free, else MessagePending
  // in the occupied slot (TLFS 11.9.3).
  void drain(uint32_t vp, uint32_t sint) {
    ModelVp& v = vps[vp];
    auto& q = v.queue[sint];
    if (q.empty() || !can_msg(vp)) return;
    if (v.slot_type(sint) != 0) {
      v.slot(sint)[kFlagsOffset] |= tlfs::kMessageFlagPending;
      mark(sim_of(vp) + sint * tlfs::kMessageSize + kFlagsOffset, 1);
      return;
    }
    const Msg m = q.front();
    q.pop_front();
    --ports[m.origin].outstanding;
    write_slot(vp, sint, m, q.empty() ? 0 : tlfs::kMessageFlagPending);
    raise(vp, sint);
  }
  void drain_all(uint32_t vp) {
    for (uint32_t s = 0; s < 16; ++s) drain(vp, s);
  }

  // The VP a port's message or event goes to, or the failing status.
  Status target_of(const ModelPort& p, bool message, uint32_t* vp) {
    if (p.target != tlfs::kAnyVp) {
      if (p.target >= kVps) return Status::kInvalidVpIndex;
      *vp = p.target;
      return (message ? can_msg(*vp) : can_evt(*vp)) ? Status::kSuccess
                                                     : Status::kInvalidSynicState;
    }
    // HV_ANY_VP: the lowest VP that can take it now (for messages: its queue
    // for the SINT is empty), else the lowest that can take it at all.
    int fallback = -1;
    for (uint32_t v = 0; v < kVps; ++v) {
      if (!(message ? can_msg(v) : can_evt(v))) continue;
      if (!message || vps[v].queue[p.sint].empty()) {
        *vp = v;
        return Status::kSuccess;
      }
      if (fallback < 0) fallback = static_cast<int>(v);
    }
    if (fallback < 0) return Status::kInvalidSynicState;
    *vp = static_cast<uint32_t>(fallback);
    return Status::kSuccess;
  }

  // Port-table slots in use: live ports and deleted ones still holding
  // accepted messages.
  uint32_t port_slots_in_use() const {
    uint32_t n = 0;
    for (auto& [id, p] : ports) n += (p.alive || p.outstanding > 0) ? 1 : 0;
    return n;
  }

  // ---- checks

  void mark(uint64_t gpa, uint64_t len) { dirty.push_back({gpa, len}); }

  // The model's expected bytes at a GPA inside a SIM or SIEF page.
  const uint8_t* expected_at(uint64_t gpa) {
    for (uint32_t vp = 0; vp < kVps; ++vp) {
      if (gpa >= sim_of(vp) && gpa < sim_of(vp) + kPageSize)
        return vps[vp].sim + (gpa - sim_of(vp));
      if (gpa >= sief_of(vp) && gpa < sief_of(vp) + kPageSize) {
        return vps[vp].sief + (gpa - sief_of(vp));
      }
    }
    return nullptr;
  }

  void compare(uint64_t gpa, uint64_t len, const char* why) {
    const uint8_t* want = expected_at(gpa);
    INFO(why << " at GPA 0x" << std::hex << gpa << " len " << std::dec << len << ", op "
             << ops_done);
    REQUIRE(want != nullptr);
    REQUIRE(std::memcmp(&g.memory.bytes[gpa], want, len) == 0);
  }

  void check_memory() {
    for (auto& w : g.memory.writes) {
      // The core writes only inside a page the guest enabled as SIM or SIEF.
      bool inside = false;
      for (uint32_t vp = 0; vp < kVps; ++vp) {
        if (vps[vp].simp && w.gpa >= sim_of(vp) && w.gpa + w.len <= sim_of(vp) + kPageSize)
          inside = true;
        if (vps[vp].siefp && w.gpa >= sief_of(vp) && w.gpa + w.len <= sief_of(vp) + kPageSize)
          inside = true;
      }
      INFO("core write at 0x" << std::hex << w.gpa << " len " << std::dec << w.len);
      REQUIRE(inside);
      compare(w.gpa, w.len, "a core write differs from the model");
    }
    for (auto& [gpa, len] : dirty)
      compare(gpa, len, "the core did not write what the model expects");
    g.memory.writes.clear();
    dirty.clear();
  }

  // The interrupts raised since the last check, against the predicted ones.
  void check_irqs() {
    INFO("op " << ops_done);
    REQUIRE(g.irqs.raised.size() == expected_irqs.size());
    for (; irqs_checked < expected_irqs.size(); ++irqs_checked) {
      const auto& got = g.irqs.raised[irqs_checked];
      const Irq& want = expected_irqs[irqs_checked];
      if (got.vp == want.vp && got.vector == want.vector && got.auto_eoi == want.auto_eoi) continue;
      INFO("interrupt " << irqs_checked << ": VP " << got.vp << " vector " << int{got.vector}
                        << " AutoEOI " << got.auto_eoi << ", expected VP " << want.vp << " vector "
                        << int{want.vector} << " AutoEOI " << want.auto_eoi);
      FAIL("interrupt differs from the model");
    }
  }
};

}  // namespace microhv::test::model
