// The order in which these report their statuses is part of the one
// documented check order in hypercall/abi.cpp: what the input names
// (connection, port), then the target VP, its SynIC, and last the buffers.
#include "synic/messaging.hpp"

#include "kernel/hypervisor.hpp"
#include "synic/delivery.hpp"

namespace microhv {
namespace {

using tlfs::Status;

struct Target {
  Status status;
  Port* port;
};

// Resolves a connection id to the live port of the expected type.
Target resolve_connection(Partition& partition, uint32_t raw_id, tlfs::PortType expected) {
  PortTable& table = partition.hypervisor().ports;
  if ((raw_id & ~tlfs::kConnectionIdMask) != 0) return {Status::kInvalidConnectionId, nullptr};
  Connection* c = table.find_connection(&partition, ConnectionId(raw_id));
  if (c == nullptr) return {Status::kInvalidConnectionId, nullptr};
  Port* port = table.port_of(*c);
  // Deleted, owned by a partition that is not active, or of the wrong type.
  if (port == nullptr || !port->owner->active() || port->type != expected) {
    return {Status::kInvalidPortId, nullptr};
  }
  return {Status::kSuccess, port};
}

// HV_ANY_VP: the lowest VP that can take the message now, else the lowest
// one that can take it at all (TLFS v6.0b 11.2.1). A fixed target must exist.
template <typename CanTake>
Vp* choose_target_vp(Port& port, CanTake can_take, bool prefer_free_slot, Status* status) {
  Partition& owner = *port.owner;
  if (port.target_vp.value() != tlfs::kAnyVp) {
    Vp* vp = owner.vp(port.target_vp);
    if (vp == nullptr) *status = Status::kInvalidVpIndex;
    return vp;
  }
  if (owner.vp_count() == 0) {
    *status = Status::kInvalidVpIndex;
    return nullptr;
  }
  Vp* fallback = nullptr;
  for (uint32_t i = 0; i < owner.vp_count(); ++i) {
    Vp* vp = owner.vp(VpIndex(i));
    if (!can_take(*vp)) continue;
    if (!prefer_free_slot || vp->synic.queue_of(port.target_sint).empty()) return vp;
    if (fallback == nullptr) fallback = vp;
  }
  if (fallback == nullptr) *status = Status::kInvalidSynicState;
  return fallback;
}

// A port's target SINT: 1..15; SINT 0 is left to the hypervisor's own
// messages.
Optional<SintIndex> port_sint(uint32_t n) {
  const Optional<SintIndex> sint = sint_index(n);
  if (!sint || sint.value() == SintIndex(0)) return kNone;
  return sint;
}

// A message port's delivery target for a post now: the VP, or the status.
struct Delivery {
  Status status;
  Port* port;
  Vp* vp;  // nullptr for a service's port
};

Delivery resolve_post(Partition& sender, uint32_t connection_id) {
  Target target = resolve_connection(sender, connection_id, tlfs::PortType::kMessage);
  if (target.status != Status::kSuccess) return {target.status, nullptr, nullptr};
  Port& port = *target.port;
  if (port.owner->service() != nullptr) return {Status::kSuccess, &port, nullptr};
  Status status = Status::kInvalidSynicState;
  Vp* vp = choose_target_vp(port, synic_can_take_messages, true, &status);
  if (vp == nullptr) return {status, &port, nullptr};
  // The one SynIC check: choose_target_vp made it for an HV_ANY_VP pick.
  if (port.target_vp.value() != tlfs::kAnyVp && !synic_can_take_messages(*vp)) {
    return {Status::kInvalidSynicState, &port, nullptr};
  }
  return {Status::kSuccess, &port, vp};
}

}  // namespace

Status post_message(Partition& sender, uint32_t connection_id, uint32_t type,
                    const uint8_t* payload, uint32_t size) {
  Delivery d = resolve_post(sender, connection_id);
  if (d.status != Status::kSuccess) return d.status;
  Port& port = *d.port;
  OutgoingMessage message{type, static_cast<uint8_t>(size), port.id.value(), payload};
  if (d.vp == nullptr) return port.owner->service()->on_message(port, message);
  return synic_post(*d.vp, port.target_sint, message, port, sender.hypervisor().ports);
}

Status post_capacity(Partition& sender, uint32_t connection_id, uint32_t count) {
  Delivery d = resolve_post(sender, connection_id);
  if (d.status != Status::kSuccess || d.vp == nullptr) return d.status;
  return sender.hypervisor().ports.free_buffer_count(*d.port) >= count
             ? Status::kSuccess
             : Status::kInsufficientBuffers;
}

Status signal_event(Partition& sender, uint32_t connection_id, uint16_t flag) {
  Target target = resolve_connection(sender, connection_id, tlfs::PortType::kEvent);
  if (target.status != Status::kSuccess) return target.status;
  Port& port = *target.port;
  if (flag >= port.flag_count) return Status::kInvalidParameter;

  Status status = Status::kInvalidSynicState;
  Vp* vp = choose_target_vp(port, synic_can_take_events, false, &status);
  if (vp == nullptr) return status;
  return synic_set_event_flag(*vp, port.target_sint, uint32_t{port.base_flag} + flag);
}

Status create_port(Partition& owner, const PortSpec& spec, Partition* connector) {
  Hypervisor& hv = owner.hypervisor();
  if (spec.type != tlfs::PortType::kMessage && spec.type != tlfs::PortType::kEvent) {
    return Status::kInvalidParameter;  // monitor ports are not implemented
  }
  const Optional<SintIndex> sint = port_sint(spec.target_sint);
  if (!sint) return Status::kInvalidParameter;
  bool events = spec.type == tlfs::PortType::kEvent;
  if (!events && (spec.base_flag != 0 || spec.flag_count != 0)) return Status::kInvalidParameter;
  if (events &&
      (spec.flag_count == 0 || uint32_t{spec.base_flag} + spec.flag_count > tlfs::kFlagsPerSint)) {
    return Status::kInvalidParameter;
  }
  if (hv.ports.find_port(&owner, spec.id) != nullptr) return Status::kInvalidPortId;
  if (hv.ports.ports_held_by(&owner) >= owner.quota().ports) return Status::kInsufficientMemory;
  // The target VP is checked when a message is posted: VPs come online later
  // than ports are made (APs), and the TLFS reports a missing VP then.
  Port fields;
  fields.owner = &owner;
  fields.id = spec.id;
  fields.type = spec.type;
  fields.target_sint = sint.value();
  fields.target_vp = spec.target_vp;
  fields.base_flag = spec.base_flag;
  fields.flag_count = spec.flag_count;
  fields.connection_partition = connector != nullptr ? connector->id() : PartitionId(0);
  fields.pinned = spec.pinned;
  if (hv.ports.add_port(fields) == nullptr) return Status::kInsufficientMemory;
  return Status::kSuccess;
}

Status delete_port(Partition& owner, PortId id) {
  PortTable& ports = owner.hypervisor().ports;
  Port* port = ports.find_port(&owner, id);
  if (port == nullptr) return Status::kInvalidPortId;
  if (port->pinned) return Status::kAccessDenied;
  ports.delete_port(*port);
  return Status::kSuccess;
}

Status retarget_message_port(Partition& owner, PortId id, VpIndex vp, uint32_t sint) {
  Port* port = owner.hypervisor().ports.find_port(&owner, id);
  if (port == nullptr || port->type != tlfs::PortType::kMessage) return Status::kInvalidPortId;
  const Optional<SintIndex> index = port_sint(sint);
  if (!index) return Status::kInvalidParameter;
  port->target_vp = vp;
  port->target_sint = index.value();
  return Status::kSuccess;
}

Status connect_port(Partition& connector, ConnectionId id, Partition& owner, PortId port_id,
                    tlfs::PortType type) {
  PortTable& ports = connector.hypervisor().ports;
  Port* port = ports.find_port(&owner, port_id);
  if (port == nullptr) return Status::kInvalidPortId;
  if (type != port->type) return Status::kInvalidParameter;
  if (port->connection_partition.value() != 0 && port->connection_partition != connector.id()) {
    return Status::kAccessDenied;  // the port names another partition as its peer
  }
  if ((id.value() & ~tlfs::kConnectionIdMask) != 0 ||
      ports.find_connection(&connector, id) != nullptr) {
    return Status::kInvalidConnectionId;
  }
  if (ports.connections_held_by(&connector) >= connector.quota().connections) {
    return Status::kInsufficientMemory;
  }
  if (ports.add_connection(&connector, id, *port) == nullptr) return Status::kInsufficientMemory;
  return Status::kSuccess;
}

Status create_connected_port(Partition& owner, const PortSpec& spec, Partition& connector,
                             ConnectionId connection) {
  Status status = create_port(owner, spec, &connector);
  if (status != Status::kSuccess) return status;
  status = connect_port(connector, connection, owner, spec.id, spec.type);
  if (status != Status::kSuccess) {
    PortTable& ports = owner.hypervisor().ports;
    ports.delete_port(*ports.find_port(&owner, spec.id));  // pinned or not: it was ours
  }
  return status;
}

Status disconnect_port(Partition& connector, ConnectionId id) {
  PortTable& ports = connector.hypervisor().ports;
  Connection* c = ports.find_connection(&connector, id);
  if (c == nullptr) return Status::kInvalidConnectionId;
  ports.remove_connection(*c);
  return Status::kSuccess;
}

}  // namespace microhv
