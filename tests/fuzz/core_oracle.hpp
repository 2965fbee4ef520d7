// The core fuzz target's oracle, part 2: the status every call must return
// and what it changes, from the TLFS pages of each call and microhv's
// documented choices (the check order in hypercall/abi.cpp, README
// "Interface choices"), computed on the shadow (core_shadow.hpp) alone; the
// VMBus host's protocol (Linux include/linux/hyperv.h message layouts) with
// its rule that no answer is lost; and the SynIC MSR rules (TLFS 11.8).
#pragma once

#include "tests/fuzz/core_shadow.hpp"

namespace microhv::fuzz {

namespace vmbus_wire {
constexpr uint32_t kHostPort = 1, kReplyPort = 0x564D4200, kReplyConnection = 1;
constexpr uint32_t kInitiateContact = 14, kVersionResponse = 15, kRequestOffers = 3,
                   kAllOffersDelivered = 4, kUnload = 16, kUnloadResponse = 17;
constexpr uint32_t version(uint32_t major, uint32_t minor) {
  return major << 16 | minor;
}
inline bool supported(uint32_t v) {
  for (uint32_t s :
       {version(5, 3), version(5, 2), version(5, 1), version(5, 0), version(4, 1), version(4, 0)}) {
    if (s == v) return true;
  }
  return false;
}
}  // namespace vmbus_wire

class Oracle : public Shadow {
 public:
  // The VMBus host as the guest sees it.
  bool contacted = false, connected = false;
  uint32_t reply_port = 0;  // index of the pinned reply port

  // ---- the port calls (TLFS HvCallCreatePort, DeletePort, ConnectPort,
  // DisconnectPort; microhv: RsvdZ first, then partitions, then the port)

  Status create_port(uint64_t caller, const tlfs::CreatePortInput& in) {
    const tlfs::PortInfo& info = in.port_info;
    if (in.port_vtl != 0 || in.min_connection_vtl != 0 || in.rsvdz0 != 0 || info.padding != 0 ||
        info.rsvdz != 0) {
      return Status::kInvalidParameter;
    }
    ShadowPartition* owner = nullptr;
    const Status who = acting_on(caller, in.port_partition, &owner);
    if (who != Status::kSuccess) return who;
    uint64_t connector = 0;
    if (in.connection_partition != 0) {
      ShadowPartition* c = resolve(caller, in.connection_partition);
      if (c == nullptr) return Status::kInvalidPartitionId;
      connector = c->id;
    }
    const bool message = info.port_type == 1, event = info.port_type == 2;
    if (!message && !event) return Status::kInvalidParameter;
    if (info.target_sint == 0 || info.target_sint >= 16) return Status::kInvalidParameter;
    if (message && (info.base_flag_number != 0 || info.flag_count != 0)) {
      return Status::kInvalidParameter;
    }
    if (event && (info.flag_count == 0 ||
                  uint32_t{info.base_flag_number} + info.flag_count > tlfs::kFlagsPerSint)) {
      return Status::kInvalidParameter;
    }
    if (alive_port(owner->id, in.port_id) >= 0) return Status::kInvalidPortId;
    if (ports_held(owner->id) >= owner->quota.ports) return Status::kInsufficientMemory;
    ports.push_back({owner->id, in.port_id, message, info.target_sint, info.target_vp,
                     info.base_flag_number, info.flag_count, connector, false});
    return Status::kSuccess;
  }

  Status delete_port(uint64_t caller, const tlfs::DeletePortInput& in) {
    if (in.rsvdz != 0) return Status::kInvalidParameter;
    ShadowPartition* owner = nullptr;
    const Status who = acting_on(caller, in.port_partition, &owner);
    if (who != Status::kSuccess) return who;
    const int port = alive_port(owner->id, in.port_id);
    if (port < 0) return Status::kInvalidPortId;
    if (ports[port].pinned) return Status::kAccessDenied;
    ports[port].alive = false;  // accepted messages are still delivered
    return Status::kSuccess;
  }

  Status connect_port(uint64_t caller, const tlfs::ConnectPortInput& in) {
    const tlfs::ConnectionInfo& info = in.connection_info;
    if (in.connection_vtl != 0 || in.rsvdz0 != 0 || in.rsvdz1 != 0 || in.rsvdz2 != 0 ||
        info.padding != 0 || info.rsvdz[0] != 0 || info.rsvdz[1] != 0 || info.rsvdz[2] != 0) {
      return Status::kInvalidParameter;
    }
    ShadowPartition* connector = nullptr;
    const Status who = acting_on(caller, in.connection_partition, &connector);
    if (who != Status::kSuccess) return who;
    ShadowPartition* owner = resolve(caller, in.port_partition);
    if (owner == nullptr) return Status::kInvalidPartitionId;
    const int port = alive_port(owner->id, in.port_id);
    if (port < 0) return Status::kInvalidPortId;
    const ShadowPort& p = ports[port];
    if (info.port_type != (p.message ? 1u : 2u)) return Status::kInvalidParameter;
    if (p.connection_partition != 0 && p.connection_partition != connector->id) {
      return Status::kAccessDenied;
    }
    if ((in.connection_id & ~tlfs::kConnectionIdMask) != 0 ||
        connection(connector->id, in.connection_id) >= 0) {
      return Status::kInvalidConnectionId;
    }
    if (connections_held(connector->id) >= connector->quota.connections) {
      return Status::kInsufficientMemory;
    }
    connections.push_back({connector->id, in.connection_id, static_cast<uint32_t>(port)});
    return Status::kSuccess;
  }

  Status disconnect_port(uint64_t caller, const tlfs::DisconnectPortInput& in) {
    if (in.rsvdz != 0) return Status::kInvalidParameter;
    ShadowPartition* connector = nullptr;
    const Status who = acting_on(caller, in.connection_partition, &connector);
    if (who != Status::kSuccess) return who;
    const int c = connection(connector->id, in.connection_id);
    if (c < 0) return Status::kInvalidConnectionId;
    connections.erase(connections.begin() + c);
    return Status::kSuccess;
  }

  // ---- PostMessage and SignalEvent (TLFS pages of both)

  // The live port of `type` behind the caller's connection, or the status.
  Status resolve_connection(uint64_t caller, uint32_t id, bool message, uint32_t* port) {
    if ((id & ~tlfs::kConnectionIdMask) != 0) return Status::kInvalidConnectionId;
    const int c = connection(caller, id);
    if (c < 0) return Status::kInvalidConnectionId;
    *port = connections[c].port;
    const ShadowPort& p = ports[*port];
    return p.alive && p.message == message ? Status::kSuccess : Status::kInvalidPortId;
  }

  Status post(uint64_t caller, uint32_t connection_id, uint32_t type, uint32_t size,
              const uint8_t* payload) {
    uint32_t port = 0;
    const Status s = resolve_connection(caller, connection_id, true, &port);
    if (s != Status::kSuccess) return s;
    ShadowMessage m{port, type, static_cast<uint8_t>(size), {}};
    std::memcpy(m.payload, payload, size);
    if (ports[port].partition == kHost) return vmbus_message(m);
    uint32_t vp = 0;
    const Status target = message_target(ports[port], &vp);
    if (target != Status::kSuccess) return target;
    return deliver_or_queue(port, vp, m);
  }

  Status post_message(uint64_t caller, const tlfs::PostMessageInput& in) {
    if (in.rsvdz != 0 || in.message_type == 0 || (in.message_type & 0x80000000u) != 0 ||
        in.payload_size > tlfs::kMaxPayload) {
      return Status::kInvalidParameter;
    }
    return post(caller, in.connection_id, in.message_type, in.payload_size, in.payload);
  }

  Status signal_event(uint64_t caller, const tlfs::SignalEventInput& in) {
    if (in.rsvdz != 0) return Status::kInvalidParameter;
    uint32_t index = 0;
    const Status s = resolve_connection(caller, in.connection_id, false, &index);
    if (s != Status::kSuccess) return s;
    const ShadowPort& port = ports[index];
    if (in.flag_number >= port.count) return Status::kInvalidParameter;
    ShadowPartition& p = partition(port.partition);
    uint32_t vp = port.target;
    if (port.target == tlfs::kAnyVp) {
      if (p.vps.empty()) return Status::kInvalidVpIndex;
      vp = ~0u;
      for (uint32_t v = 0; v < p.vps.size() && vp == ~0u; ++v) {
        if (can_evt(p, v)) vp = v;
      }
      if (vp == ~0u) return Status::kInvalidSynicState;
    } else if (port.target >= p.vps.size()) {
      return Status::kInvalidVpIndex;
    }
    if (!can_evt(p, vp)) return Status::kInvalidSynicState;
    // TLFS 11.10.2: set the flag atomically; raise only on 0 -> 1.
    const uint32_t flag = uint32_t{port.base} + in.flag_number;
    const uint64_t word =
        (p.vps[vp].siefp & ~0xFFFull) + port.sint * (tlfs::kFlagsPerSint / 8) + (flag / 64) * 8;
    const uint64_t bit = uint64_t{1} << (flag % 64);
    allow(p, word, 8);
    flags.push_back({&p, word, bit});
    if ((p.memory->load<uint64_t>(word) & bit) == 0) raise(p, vp, port.sint);
    return Status::kSuccess;
  }

  // ---- the VMBus host: answers go through its pinned reply port in
  // partition 1; a request whose answer could not be queued is refused with
  // the answer's status and changes nothing.

  Status reply_capacity() {
    uint32_t vp = 0;
    const Status target = message_target(ports[reply_port], &vp);
    if (target != Status::kSuccess) return target;
    return ports[reply_port].outstanding < tlfs::kMessageBuffersPerPort
               ? Status::kSuccess
               : Status::kInsufficientBuffers;
  }
  void reply(const void* body, uint8_t size) {
    ShadowMessage m{reply_port, 1, size, {}};
    std::memcpy(m.payload, body, size);
    uint32_t vp = 0;
    expect(message_target(ports[reply_port], &vp) == Status::kSuccess &&
               deliver_or_queue(reply_port, vp, m) == Status::kSuccess,
           "oracle: a reply refused after its capacity check");
  }

  Status vmbus_message(const ShadowMessage& m) {
    using namespace vmbus_wire;
    if (ports[m.port].id != kHostPort || m.type != 1 || m.size < 8) return Status::kSuccess;
    uint32_t msgtype = 0;
    std::memcpy(&msgtype, m.payload, 4);
    if (msgtype == kInitiateContact) {
      uint8_t in[40] = {};
      std::memcpy(in, m.payload, m.size < 40 ? m.size : 40);
      uint32_t v = 0, vcpu = 0;
      std::memcpy(&v, in + 8, 4);
      std::memcpy(&vcpu, in + 12, 4);
      const uint32_t sint = v >= version(5, 0) ? in[16] : 2;
      if (sint == 0 || sint >= 16) return Status::kInvalidParameter;
      ShadowPort& rp = ports[reply_port];
      const uint32_t old_vp = rp.target, old_sint = rp.sint;
      rp.target = vcpu;
      rp.sint = sint;
      const Status s = reply_capacity();
      if (s != Status::kSuccess) {
        rp.target = old_vp;
        rp.sint = old_sint;
        return s;
      }
      contacted = true;
      if (supported(v)) connected = true;
      const uint32_t r[4] = {kVersionResponse, 0, supported(v) ? 1u : 0u, 4};
      reply(r, 16);
      return Status::kSuccess;
    }
    if (!contacted || (msgtype != kRequestOffers && msgtype != kUnload)) return Status::kSuccess;
    const Status s = reply_capacity();
    if (s != Status::kSuccess) return s;
    const uint32_t r[2] = {msgtype == kUnload ? kUnloadResponse : kAllOffersDelivered, 0};
    if (msgtype == kUnload) connected = false;
    reply(r, 8);
    return Status::kSuccess;
  }

  // ---- SynIC MSR writes (TLFS 11.8): the result, and what they deliver.

  bool synic_write(ShadowPartition& p, uint32_t vp, uint32_t msr, uint64_t value, bool* gp) {
    ShadowVp& v = p.vps[vp];
    *gp = false;
    // SIMP/SIEFP: a page at or above the guest's physical address width is
    // a reserved bit, #GP and nothing changes (synic/msr.hpp).
    if ((msr == tlfs::msr::kSimp || msr == tlfs::msr::kSiefp) && p.memory != nullptr &&
        p.memory->width < 64 && ((value & ~0xFFFull) >> p.memory->width) != 0) {
      *gp = true;
      return true;
    }
    switch (msr) {
      case tlfs::msr::kSimp:
        v.simp = value;
        drain_all(p, vp);
        return true;
      case tlfs::msr::kScontrol:
        v.scontrol = value;
        drain_all(p, vp);
        return true;
      case tlfs::msr::kEom:
        drain_all(p, vp);
        return true;
      case tlfs::msr::kSiefp:
        v.siefp = value;
        return true;
      case tlfs::msr::kSversion:
        *gp = true;
        return true;
      default:
        break;
    }
    if (msr < tlfs::msr::kSint0 || msr > tlfs::msr::kSint15) return false;
    // Reserved bits 15:8 and 63:19; unmasked with a vector below 16 is #GP.
    const bool reserved = (value & ~0x7FFFFull) != 0 || (value & 0xFF00) != 0;
    const bool masked = (value & tlfs::sint_bits::kMasked) != 0;
    *gp = reserved || (!masked && (value & 0xFF) < 16);
    if (!*gp) v.sint[msr - tlfs::msr::kSint0] = value;
    return true;
  }

  // The value a SynIC MSR read must return; false for MSRs not followed.
  bool synic_read(const ShadowPartition& p, uint32_t vp, uint32_t msr, uint64_t* value) const {
    const ShadowVp& v = p.vps[vp];
    switch (msr) {
      case tlfs::msr::kScontrol:
        *value = v.scontrol;
        return true;
      case tlfs::msr::kSimp:
        *value = v.simp;
        return true;
      case tlfs::msr::kSiefp:
        *value = v.siefp;
        return true;
      case tlfs::msr::kSversion:
        *value = tlfs::kSversionValue;
        return true;
      case tlfs::msr::kEom:
        *value = 0;
        return true;
      default:
        break;
    }
    if (msr < tlfs::msr::kSint0 || msr > tlfs::msr::kSint15) return false;
    *value = v.sint[msr - tlfs::msr::kSint0];
    return true;
  }
};

}  // namespace microhv::fuzz
