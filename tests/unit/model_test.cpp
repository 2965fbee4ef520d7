// Randomized model test: a fixed-seed sequence of 120,000 operations (post,
// signal, consume + EOM, bare EOM, SINT writes, SIMP/SIEFP/SCONTROL toggles,
// port create/delete, connect/disconnect, the guest clearing event flags)
// against an independent reference model of the TLFS rules (chapter 11).
//
// The model keeps its own state -- every SynIC register the guest wrote, the
// per-VP, per-SINT FIFOs, the ports and their buffers, and the bytes it
// expects in every SIM and SIEF page -- and never looks at the core's. After
// every operation it predicts and checks:
//  - the status of the call (and of each MSR write);
//  - every interrupt, in order: VP, vector, AutoEOI;
//  - every byte the core wrote or should have written in the SIM and SIEF
//    pages (slot headers, payloads, MessagePending, event flags), and that
//    nothing was written anywhere else.
// At the end everything is drained: every accepted message must have been
// delivered exactly once, in posting order per (port, VP).
// The model itself is tests/unit/synic_model.hpp; this file drives it.
#include <algorithm>

#include "tests/unit/synic_model.hpp"

using namespace microhv;
using namespace microhv::test;
using namespace microhv::test::model;
using tlfs::Status;

namespace {

struct Model : SynicModel {
  // ---- guest actions

  MsrResult wrmsr(uint32_t vp, uint32_t msr, uint64_t value) { return g.wrmsr(vp, msr, value); }

  void op_create_port() {
    size_t alive = 0;
    for (auto& [id, p] : ports) alive += p.alive ? 1 : 0;
    if (alive >= kMaxAlivePorts) return;
    ModelPort p;
    p.id = next_port_id++;
    p.message = pick(4) != 0;
    p.sint = kSints[pick(3)];
    p.target = pick(8) == 0 ? tlfs::kAnyVp : pick(kVps + 1);  // kVps: no such VP
    p.flag_count = p.message ? 0 : static_cast<uint16_t>(1 + pick(128));
    p.base_flag = p.message ? 0 : static_cast<uint16_t>(pick(2048 - p.flag_count + 1));
    const auto type = p.message ? tlfs::PortType::kMessage : tlfs::PortType::kEvent;
    const Status expect =
        port_slots_in_use() >= kModelQuota.ports ? Status::kInsufficientMemory : Status::kSuccess;
    REQUIRE(g.create_port(p.id, p.sint, p.target, type, p.base_flag, p.flag_count) == expect);
    ++status_counts[expect];
    if (expect != Status::kSuccess) return;
    p.alive = true;
    ports[p.id] = p;
    connect(p.id, type);
  }

  void connect(uint32_t port_id, tlfs::PortType type) {
    const uint32_t conn = next_conn_id++;
    const Status expect =
        conns.size() >= kModelQuota.connections ? Status::kInsufficientMemory : Status::kSuccess;
    REQUIRE(g.connect(conn, port_id, type) == expect);
    if (expect == Status::kSuccess) conns[conn] = port_id;
  }

  void op_delete_port() {
    if (ports.empty()) return;
    auto it = std::next(ports.begin(), pick(static_cast<uint32_t>(ports.size())));
    REQUIRE(g.delete_port(it->first) ==
            (it->second.alive ? Status::kSuccess : Status::kInvalidPortId));
    // Accepted messages stay queued and are still delivered.
    it->second.alive = false;
  }

  void op_disconnect() {
    if (conns.empty()) return;
    auto it = std::next(conns.begin(), pick(static_cast<uint32_t>(conns.size())));
    const uint32_t old_conn = it->first, port_id = it->second;
    REQUIRE(g.disconnect(old_conn) == Status::kSuccess);
    conns.erase(it);
    REQUIRE(g.post(old_conn, 1, 8) == Status::kInvalidConnectionId);
    // Reconnect under a new id so that traffic keeps flowing to live ports.
    const ModelPort& p = ports[port_id];
    if (p.alive) connect(port_id, p.message ? tlfs::PortType::kMessage : tlfs::PortType::kEvent);
  }

  void op_post() {
    const uint32_t conn =
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
      expect = !p->alive || !p->message ? Status::kInvalidPortId : target_of(*p, true, &vp);
    }
    // The message: a random type and size, the port and a sequence number
    // first, random bytes after (including past PayloadSize in the input).
    Msg m{};
    m.type = 1 + pick(0x7FFFFFFE);
    m.size = 8 + pick(233);
    m.origin = p != nullptr ? p->id : 0;
    for (uint8_t& b : m.payload) b = static_cast<uint8_t>(rng());
    const uint32_t seq = p != nullptr ? p->next_seq : 0;
    std::memcpy(m.payload, &m.origin, 4);
    std::memcpy(m.payload + 4, &seq, 4);
    bool direct = false;
    if (expect == Status::kSuccess) {
      direct = vps[vp].queue[p->sint].empty() && vps[vp].slot_type(p->sint) == 0;
      if (!direct && p->outstanding == kBuffers) expect = Status::kInsufficientBuffers;
    }
    tlfs::PostMessageInput in{};
    in.connection_id = conn;
    in.message_type = m.type;
    in.payload_size = m.size;
    std::memcpy(in.payload, m.payload, tlfs::kMaxPayload);
    const Status got = g.status(kPost, &in, sizeof(in));
    ++status_counts[got];
    INFO("op " << ops_done << " conn " << conn);
    REQUIRE(got == expect);
    if (got != Status::kSuccess) return;
    ++p->next_seq;
    accepted.insert({m.origin, seq});
    if (direct) {
      write_slot(vp, p->sint, m, 0);
      raise(vp, p->sint);
      return;
    }
    vps[vp].queue[p->sint].push_back(m);
    ++p->outstanding;
    drain(vp, p->sint);
  }

  void op_signal() {
    std::vector<uint32_t> event_conns;
    for (auto& [c, pid] : conns)
      if (!ports[pid].message) event_conns.push_back(c);
    if (event_conns.empty()) return;
    const uint32_t conn = event_conns[pick(static_cast<uint32_t>(event_conns.size()))];
    const ModelPort& p = ports[conns[conn]];
    const uint16_t flag = static_cast<uint16_t>(pick(p.flag_count + 2));
    Status expect = Status::kSuccess;
    uint32_t vp = 0;
    if (!p.alive)
      expect = Status::kInvalidPortId;
    else if (flag >= p.flag_count)
      expect = Status::kInvalidParameter;
    else
      expect = target_of(p, false, &vp);
    const Status got = g.signal(conn, flag);
    ++status_counts[got];
    REQUIRE(got == expect);
    if (got != Status::kSuccess) return;
    // TLFS 11.10.2: set flag base + flag of the SINT's 2048; an interrupt
    // only when it goes from 0 to 1.
    const uint32_t n = p.base_flag + flag;
    uint8_t& byte = vps[vp].sief[p.sint * 256 + n / 8];
    const uint8_t bit = static_cast<uint8_t>(1u << (n % 8));
    const bool was_set = (byte & bit) != 0;
    byte |= bit;
    mark(sief_of(vp) + p.sint * 256 + n / 8, 1);
    if (!was_set) raise(vp, p.sint);
  }

  // The guest handles whatever is in a slot: checks order, frees the slot,
  // and writes EOM if MessagePending was set (TLFS 11.9.3).
  void consume(uint32_t vp, uint32_t sint) {
    ModelVp& v = vps[vp];
    if (v.slot_type(sint) == 0) return;
    Msg m{};
    std::memcpy(m.payload, v.slot(sint) + kPayloadOffset, 8);
    uint64_t origin;
    std::memcpy(&origin, v.slot(sint) + 8, 8);
    REQUIRE(origin == m.port());
    REQUIRE(delivered.insert({m.port(), m.seq()}).second);  // exactly once
    const auto key = std::make_pair(m.port(), vp);
    auto last = last_seq.find(key);
    if (last != last_seq.end()) REQUIRE(int64_t{m.seq()} > last->second);  // FIFO per port, VP
    last_seq[key] = m.seq();
    const bool pending = (v.slot(sint)[kFlagsOffset] & tlfs::kMessageFlagPending) != 0;
    std::memset(v.slot(sint), 0, 4);  // MessageType = None
    g.memory.store<uint32_t>(slot_of(vp, sint), 0);
    if (pending) {
      REQUIRE(wrmsr(vp, tlfs::msr::kEom, 0) == MsrResult::kOk);
      drain_all(vp);
    }
  }

  void op_consume() { consume(pick(kVps), kSints[pick(3)]); }

  void op_eom() {
    const uint32_t vp = pick(kVps);
    REQUIRE(wrmsr(vp, tlfs::msr::kEom, 0) == MsrResult::kOk);
    drain_all(vp);
  }

  // A SINT write, now and then an invalid one (TLFS 11.8.4: reserved bits,
  // or an unmasked vector below 16, are #GP and change nothing).
  void op_sint() {
    const uint32_t vp = pick(kVps), sint = kSints[pick(3)];
    const bool masked = pick(3) == 0, auto_eoi = pick(2) == 0;
    uint64_t vector = 0x40 + pick(0xB0);
    const uint32_t r = pick(16);
    if (r == 0) vector = pick(16);  // below 16
    uint64_t value = vector | (masked ? 1ull << 16 : 0) | (auto_eoi ? 1ull << 17 : 0);
    if (r == 1) value |= 1ull << (19 + pick(45));  // a reserved bit
    const bool valid = (value >> 19) == 0 && (masked || vector >= 16);
    REQUIRE(wrmsr(vp, tlfs::msr::kSint0 + sint, value) ==
            (valid ? MsrResult::kOk : MsrResult::kGp));
    if (valid) vps[vp].sint[sint] = value;
  }

  void op_toggle(uint32_t msr) {
    const uint32_t vp = pick(kVps);
    const bool on = pick(4) != 0;  // mostly on, so traffic flows
    const uint64_t base = msr == tlfs::msr::kSimp    ? sim_of(vp)
                          : msr == tlfs::msr::kSiefp ? sief_of(vp)
                                                     : 0;
    REQUIRE(wrmsr(vp, msr, base | (on ? 1 : 0)) == MsrResult::kOk);
    if (msr == tlfs::msr::kSimp) vps[vp].simp = on;
    if (msr == tlfs::msr::kSiefp) vps[vp].siefp = on;
    if (msr == tlfs::msr::kScontrol) vps[vp].scontrol = on;
    // Enabling SCONTROL or SIMP is a delivery point; the core drains on
    // every write of them (a disabled SynIC takes nothing).
    if (msr != tlfs::msr::kSiefp) drain_all(vp);
  }

  void op_clear_flags() {
    const uint32_t vp = pick(kVps);
    const uint64_t at = kSints[pick(3)] * 256 + pick(32) * 8;
    std::memset(vps[vp].sief + at, 0, 8);
    g.memory.store<uint64_t>(sief_of(vp) + at, 0);
  }

  void step() {
    const uint32_t r = pick(100);
    if (r < 40)
      op_post();
    else if (r < 60)
      op_consume();
    else if (r < 68)
      op_signal();
    else if (r < 73)
      op_eom();
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
    check_memory();
    check_irqs();
    ++ops_done;
  }
};

}  // namespace

TEST_CASE("Model: 120,000 random operations, every status, byte and interrupt predicted") {
  Model m;
  for (uint32_t vp = 0; vp < kVps; ++vp) {
    m.g.enable_synic(vp, 2);  // SIMP, SIEFP, SINT2 = kVector | AutoEOI, SCONTROL
    m.vps[vp].simp = m.vps[vp].siefp = m.vps[vp].scontrol = true;
    m.vps[vp].sint[2] = kVector | (1ull << 17);
  }
  for (int i = 0; i < 8; ++i) m.op_create_port();
  for (uint32_t i = 0; i < kOps; ++i) m.step();

  // Drain: every SynIC on, then consume until nothing moves.
  for (uint32_t vp = 0; vp < kVps; ++vp) {
    m.vps[vp].simp = m.vps[vp].scontrol = true;
    REQUIRE(m.wrmsr(vp, tlfs::msr::kSimp, sim_of(vp) | 1) == MsrResult::kOk);
    m.drain_all(vp);
    REQUIRE(m.wrmsr(vp, tlfs::msr::kScontrol, 1) == MsrResult::kOk);
    m.drain_all(vp);
  }
  for (size_t before = ~size_t{0}; before != m.delivered.size();) {
    before = m.delivered.size();
    for (uint32_t vp = 0; vp < kVps; ++vp)
      for (uint32_t s : kSints) m.consume(vp, s);
  }
  m.check_memory();
  m.check_irqs();
  for (uint32_t vp = 0; vp < kVps; ++vp) {
    for (uint32_t s : kSints) REQUIRE(m.vps[vp].queue[s].empty());
    // The whole SIM and SIEF pages, not only what was written.
    m.compare(sim_of(vp), kPageSize, "final SIM page");
    m.compare(sief_of(vp), kPageSize, "final SIEF page");
  }

  for (auto& [st, n] : m.status_counts) WARN(tlfs::status_name(st) << " " << n);
  CHECK(m.ops_done == kOps);
  CHECK(m.accepted.size() > 10000);
  CHECK(m.delivered == m.accepted);
  CHECK(m.expected_irqs.size() > 5000);
  // The run reached every interesting status, or it proves little.
  for (Status s : {Status::kSuccess, Status::kInsufficientBuffers, Status::kInvalidSynicState,
                   Status::kInvalidPortId, Status::kInvalidConnectionId, Status::kInvalidVpIndex,
                   Status::kInvalidParameter}) {
    INFO(tlfs::status_name(s));
    CHECK(m.status_counts[s] > 0);
  }
  WARN("model: " << m.ops_done << " ops, " << m.accepted.size()
                 << " messages accepted and delivered, " << m.expected_irqs.size()
                 << " interrupts, " << m.status_counts[Status::kInsufficientBuffers]
                 << " INSUFFICIENT_BUFFERS");
}
