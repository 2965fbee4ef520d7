// Randomized model test: a fixed-seed sequence of >= 100,000 operations
// (post, signal, consume+EOM, bare EOM, EOI, SINT mask/unmask, SIMP and
// SCONTROL toggles, port create/delete, connect/disconnect) against the core,
// with an independent reference model written with std::deque. After every
// operation it asserts the status the model predicts, the interrupts raised,
// and that every write of the core landed inside an enabled SIM or SIEF page.
// At the end everything is drained: every accepted message must have been
// delivered exactly once, in posting order per (port, VP).
#include <deque>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {

constexpr uint32_t kVps = 4;
constexpr uint32_t kOps = 120000;
constexpr uint32_t kSints[] = {1, 2, 5};

struct ModelPort {
  uint32_t id;
  bool alive;
  bool message;  // else event
  uint32_t sint;
  uint32_t target;  // VP index or kAnyVp
  uint16_t flag_count;
  uint32_t outstanding = 0;  // queued in buffers
  uint32_t next_seq = 0;
};

struct Queued {
  uint32_t port_id, seq;
};

struct ModelVp {
  bool scontrol = false, simp = false, siefp = false;
  bool masked[16] = {};
  bool auto_eoi[16] = {};
  std::deque<Queued> queue[16];
};

struct Model {
  Guest g{kVps};
  std::mt19937_64 rng{20261124};
  std::map<uint32_t, ModelPort> ports;  // by port id (ids are never reused)
  std::map<uint32_t, uint32_t> conns;   // connection id -> port id
  ModelVp vps[kVps];
  uint32_t next_port_id = 1, next_conn_id = 1;
  size_t expected_irqs = 0;
  std::set<std::pair<uint32_t, uint32_t>> accepted, delivered;
  std::map<std::pair<uint32_t, uint32_t>, int64_t> last_seq;  // (port, vp) -> seq
  std::map<Status, uint32_t> status_counts;
  uint32_t ops_done = 0;

  uint32_t pick(uint32_t n) { return static_cast<uint32_t>(rng() % n); }

  bool can_msg(uint32_t vp) { return vps[vp].scontrol && vps[vp].simp; }
  bool can_evt(uint32_t vp) { return vps[vp].scontrol && vps[vp].siefp; }
  uint32_t slot_type(uint32_t vp, uint32_t sint) {
    return g.memory.load<uint32_t>(slot_of(vp, sint));
  }

  void raise(uint32_t vp, uint32_t sint) {
    if (!vps[vp].masked[sint]) ++expected_irqs;
  }

  // Mirrors the TLFS rule: a queued head goes into a free slot; a busy slot
  // gets MessagePending.
  void drain(uint32_t vp, uint32_t sint) {
    auto& q = vps[vp].queue[sint];
    if (q.empty() || !can_msg(vp)) return;
    if (slot_type(vp, sint) != 0) {
      REQUIRE((g.memory.load<uint8_t>(slot_of(vp, sint) + 5) & 1) == 1);
      return;
    }
    FAIL("a free slot with a queue behind it after a drain point");
  }
  void after_drain_point(uint32_t vp, uint32_t sint) {
    // The core has drained; model the delivery it must have made.
    auto& q = vps[vp].queue[sint];
    if (q.empty() || !can_msg(vp)) return;
    tlfs::Message m = g.slot(vp, sint);
    if (m.message_type == 0) FAIL("queued message not delivered into a free slot");
    // Either the slot holds an older, unconsumed message (pending set), or
    // the core put our head there.
    uint32_t port = 0, seq = 0;
    std::memcpy(&port, m.payload, 4);
    std::memcpy(&seq, m.payload + 4, 4);
    if (port == q.front().port_id && seq == q.front().seq) {
      q.pop_front();
      --ports[port].outstanding;
      raise(vp, sint);
      CHECK(((m.message_flags & 1) == 1) == !q.empty());
    } else {
      REQUIRE((m.message_flags & 1) == 1);
    }
  }
  void drain_all(uint32_t vp) {
    for (uint32_t s : kSints) after_drain_point(vp, s);
  }

  void check_writes() {
    for (auto& w : g.memory.writes) {
      bool ok = false;
      for (uint32_t vp = 0; vp < kVps; ++vp) {
        if (vps[vp].simp && w.gpa >= sim_of(vp) && w.gpa + w.len <= sim_of(vp) + kPageSize)
          ok = true;
        if (vps[vp].siefp && w.gpa >= sief_of(vp) && w.gpa + w.len <= sief_of(vp) + kPageSize)
          ok = true;
      }
      INFO("write at " << std::hex << w.gpa << " len " << w.len);
      REQUIRE(ok);
    }
    g.memory.writes.clear();
  }

  void op_create_port() {
    size_t alive = 0;
    for (auto& [id, p] : ports) alive += p.alive ? 1 : 0;
    if (alive >= 24) return;
    uint32_t id = next_port_id++;
    bool message = pick(4) != 0;
    uint32_t sint = kSints[pick(3)];
    uint32_t target = pick(8) == 0 ? tlfs::kAnyVp : pick(kVps + 1);  // kVps: no such VP
    uint16_t count = message ? 0 : static_cast<uint16_t>(1 + pick(128));
    uint16_t base = message ? 0 : static_cast<uint16_t>(pick(2048 - count + 1));
    Status s = g.create_port(
        id, sint, target, message ? tlfs::PortType::kMessage : tlfs::PortType::kEvent, base, count);
    // Draining ports may still hold table slots.
    if (s == Status::kInsufficientMemory) return;
    REQUIRE(s == Status::kSuccess);
    ports[id] = {id, true, message, sint, target, count};
    uint32_t conn = next_conn_id++;
    REQUIRE(g.connect(conn, id, message ? tlfs::PortType::kMessage : tlfs::PortType::kEvent) ==
            Status::kSuccess);
    conns[conn] = id;
  }

  void op_delete_port() {
    if (ports.empty()) return;
    auto it = std::next(ports.begin(), pick(static_cast<uint32_t>(ports.size())));
    Status s = g.delete_port(it->first);
    REQUIRE(s == (it->second.alive ? Status::kSuccess : Status::kInvalidPortId));
    it->second.alive = false;
  }

  void op_disconnect() {
    if (conns.empty()) return;
    auto it = std::next(conns.begin(), pick(static_cast<uint32_t>(conns.size())));
    uint32_t old_conn = it->first, port_id = it->second;
    REQUIRE(g.disconnect(old_conn) == Status::kSuccess);
    conns.erase(it);
    REQUIRE(g.post(old_conn, 1, 8) == Status::kInvalidConnectionId);
    // Reconnect under a new id so that traffic keeps flowing to live ports.
    ModelPort& p = ports[port_id];
    if (!p.alive) return;
    uint32_t conn = next_conn_id++;
    REQUIRE(
        g.connect(conn, port_id, p.message ? tlfs::PortType::kMessage : tlfs::PortType::kEvent) ==
        Status::kSuccess);
    conns[conn] = port_id;
  }

  // The VP a port's message or event goes to, or the failing status.
  Status target_of(const ModelPort& p, bool message, uint32_t* vp) {
    if (p.target != tlfs::kAnyVp) {
      if (p.target >= kVps) return Status::kInvalidVpIndex;
      *vp = p.target;
      return (message ? can_msg(*vp) : can_evt(*vp)) ? Status::kSuccess
                                                     : Status::kInvalidSynicState;
    }
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

  void op_post() {
    uint32_t conn =
        conns.empty() || pick(20) == 0
            ? 100000 + pick(10)
            : std::next(conns.begin(), pick(static_cast<uint32_t>(conns.size())))->first;
    Status expect = Status::kSuccess;
    ModelPort* p = nullptr;
    uint32_t vp = 0;
    auto c = conns.find(conn);
    if (c == conns.end()) {
      expect = Status::kInvalidConnectionId;
    } else {
      p = &ports[c->second];
      if (!p->alive || !p->message)
        expect = Status::kInvalidPortId;
      else
        expect = target_of(*p, true, &vp);
    }
    bool direct = false;
    if (expect == Status::kSuccess) {
      if (vps[vp].queue[p->sint].empty() && slot_type(vp, p->sint) == 0)
        direct = true;
      else if (p->outstanding == tlfs::kMessageBuffersPerPort)
        expect = Status::kInsufficientBuffers;
    }
    uint32_t seq = p != nullptr ? p->next_seq : 0;
    tlfs::PostMessageInput in{};
    in.connection_id = conn;
    in.message_type = 1 + pick(0x7FFFFFFE);
    in.payload_size = 8 + pick(233);
    uint32_t port_id = p != nullptr ? p->id : 0;
    std::memcpy(in.payload, &port_id, 4);
    std::memcpy(in.payload + 4, &seq, 4);
    Status got = g.status(kPost, &in, sizeof(in));
    ++status_counts[got];
    INFO("op " << ops_done << " conn " << conn);
    REQUIRE(got == expect);
    if (got != Status::kSuccess) return;
    ++p->next_seq;
    accepted.insert({port_id, seq});
    if (direct) {
      raise(vp, p->sint);
      tlfs::Message m = g.slot(vp, p->sint);
      REQUIRE(m.message_type == in.message_type);
      REQUIRE(m.payload_size == in.payload_size);
      REQUIRE(std::memcmp(m.payload, in.payload, in.payload_size) == 0);
      return;
    }
    vps[vp].queue[p->sint].push_back({port_id, seq});
    ++p->outstanding;
    after_drain_point(vp, p->sint);
  }

  void op_signal() {
    std::vector<uint32_t> event_conns;
    for (auto& [c, pid] : conns)
      if (!ports[pid].message) event_conns.push_back(c);
    if (event_conns.empty()) return;
    uint32_t conn = event_conns[pick(static_cast<uint32_t>(event_conns.size()))];
    ModelPort& p = ports[conns[conn]];
    uint16_t flag = static_cast<uint16_t>(pick(p.flag_count + 2));
    Status expect = Status::kSuccess;
    uint32_t vp = 0;
    if (!p.alive)
      expect = Status::kInvalidPortId;
    else if (flag >= p.flag_count)
      expect = Status::kInvalidParameter;
    else
      expect = target_of(p, false, &vp);
    bool was_set = false;
    uint64_t word = 0, bit = 0;
    if (expect == Status::kSuccess) {
      // Base flag is not in the model: recover it from the core's port.
      Port* port = g.hv->ports.find_port(g.partition, PortId(p.id));
      uint32_t n = port->base_flag + flag;
      word = sief_of(vp) + p.sint * 256 + (n / 64) * 8;
      bit = 1ull << (n % 64);
      was_set = (g.memory.load<uint64_t>(word) & bit) != 0;
    }
    Status got = g.signal(conn, flag);
    ++status_counts[got];
    REQUIRE(got == expect);
    if (got != Status::kSuccess) return;
    REQUIRE((g.memory.load<uint64_t>(word) & bit) != 0);
    if (!was_set) raise(vp, p.sint);
  }

  // The guest handles whatever is in a slot: checks order, frees, EOMs.
  void consume(uint32_t vp, uint32_t sint) {
    tlfs::Message m = g.slot(vp, sint);
    if (m.message_type == 0) return;
    uint32_t port = 0, seq = 0;
    std::memcpy(&port, m.payload, 4);
    std::memcpy(&seq, m.payload + 4, 4);
    REQUIRE(m.origin == port);
    REQUIRE(delivered.insert({port, seq}).second);  // exactly once
    auto key = std::make_pair(port, vp);
    auto last = last_seq.find(key);
    if (last != last_seq.end()) REQUIRE(int64_t{seq} > last->second);  // FIFO per port and VP
    last_seq[key] = seq;
    if (g.consume(vp, sint)) drain_all(vp);
  }

  void op_consume() { consume(pick(kVps), kSints[pick(3)]); }

  void op_eom() {
    uint32_t vp = pick(kVps);
    REQUIRE(g.wrmsr(vp, tlfs::msr::kEom, 0) == MsrResult::kOk);
    drain_all(vp);
  }

  void op_eoi() {
    uint32_t vp = pick(kVps);
    synic_end_of_interrupt(g.vp(vp), kVector);
    for (uint32_t s : kSints)
      if (!vps[vp].auto_eoi[s]) after_drain_point(vp, s);
  }

  void op_sint() {
    uint32_t vp = pick(kVps), sint = kSints[pick(3)];
    bool masked = pick(3) == 0, auto_eoi = pick(2) == 0;
    uint64_t v = kVector | (masked ? tlfs::sint_bits::kMasked : 0) |
                 (auto_eoi ? tlfs::sint_bits::kAutoEoi : 0);
    REQUIRE(g.wrmsr(vp, tlfs::msr::kSint0 + sint, v) == MsrResult::kOk);
    vps[vp].masked[sint] = masked;
    vps[vp].auto_eoi[sint] = auto_eoi;
  }

  void op_toggle(uint32_t msr) {
    uint32_t vp = pick(kVps);
    bool on = pick(4) != 0;  // mostly on, so traffic flows
    uint64_t base = msr == tlfs::msr::kSimp    ? sim_of(vp)
                    : msr == tlfs::msr::kSiefp ? sief_of(vp)
                                               : 0;
    REQUIRE(g.wrmsr(vp, msr, base | (on ? 1 : 0)) == MsrResult::kOk);
    if (msr == tlfs::msr::kSimp) vps[vp].simp = on;
    if (msr == tlfs::msr::kSiefp) vps[vp].siefp = on;
    if (msr == tlfs::msr::kScontrol) vps[vp].scontrol = on;
    if (msr != tlfs::msr::kSiefp) drain_all(vp);
  }

  void op_clear_flags() {
    uint32_t vp = pick(kVps);
    g.memory.store<uint64_t>(sief_of(vp) + kSints[pick(3)] * 256 + pick(32) * 8, 0);
  }

  void step() {
    uint32_t r = pick(100);
    if (r < 40)
      op_post();
    else if (r < 60)
      op_consume();
    else if (r < 68)
      op_signal();
    else if (r < 71)
      op_eom();
    else if (r < 73)
      op_eoi();
    else if (r < 78)
      op_sint();
    else if (r < 81)
      op_toggle(tlfs::msr::kSimp);
    else if (r < 83)
      op_toggle(tlfs::msr::kSiefp);
    else if (r < 86)
      op_toggle(tlfs::msr::kScontrol);
    else if (r < 90)
      op_create_port();
    else if (r < 92)
      op_delete_port();
    else if (r < 94)
      op_disconnect();
    else
      op_clear_flags();
    check_writes();
    REQUIRE(g.irqs.raised.size() == expected_irqs);
    ++ops_done;
  }
};

}  // namespace

TEST_CASE("Model: 120,000 random operations keep exactly-once, in-order delivery") {
  Model m;
  for (uint32_t vp = 0; vp < kVps; ++vp) {
    m.g.enable_synic(vp, 2);
    m.vps[vp].scontrol = m.vps[vp].simp = m.vps[vp].siefp = true;
    for (bool& masked : m.vps[vp].masked) masked = true;  // SINT reset state
    m.vps[vp].masked[2] = false;
    m.vps[vp].auto_eoi[2] = true;
  }
  for (int i = 0; i < 8; ++i) m.op_create_port();
  for (uint32_t i = 0; i < kOps; ++i) m.step();

  // Drain: every SynIC on, every SINT unmasked, consume until nothing moves.
  for (uint32_t vp = 0; vp < kVps; ++vp) {
    m.vps[vp].simp = m.vps[vp].scontrol = true;
    REQUIRE(m.g.wrmsr(vp, tlfs::msr::kSimp, sim_of(vp) | 1) == MsrResult::kOk);
    REQUIRE(m.g.wrmsr(vp, tlfs::msr::kScontrol, 1) == MsrResult::kOk);
    m.drain_all(vp);
  }
  for (size_t before = 0; before != m.delivered.size() || before == 0;) {
    before = m.delivered.size();
    for (uint32_t vp = 0; vp < kVps; ++vp)
      for (uint32_t s : kSints) m.consume(vp, s);
    if (before == m.delivered.size()) break;
  }
  for (uint32_t vp = 0; vp < kVps; ++vp)
    for (uint32_t s : kSints) REQUIRE(m.vps[vp].queue[s].empty());

  // Statistics, not warnings: printed as plain lines (Catch2's WARN says "warning:").
  std::cout << "model: statuses:";
  for (auto& [st, n] : m.status_counts) std::cout << ' ' << tlfs::status_name(st) << ' ' << n;
  std::cout << '\n';
  CHECK(m.ops_done == kOps);
  CHECK(m.accepted.size() > 10000);
  CHECK(m.delivered == m.accepted);
  // The run reached every interesting status, or it proves little.
  for (Status s : {Status::kSuccess, Status::kInsufficientBuffers, Status::kInvalidSynicState,
                   Status::kInvalidPortId, Status::kInvalidConnectionId, Status::kInvalidVpIndex,
                   Status::kInvalidParameter}) {
    INFO(tlfs::status_name(s));
    CHECK(m.status_counts[s] > 0);
  }
  std::cout << "model: " << m.ops_done << " ops, " << m.accepted.size()
            << " messages accepted and delivered, " << m.status_counts[Status::kInsufficientBuffers]
            << " INSUFFICIENT_BUFFERS\n";
}
