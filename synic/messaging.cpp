// Status order: ACCESS_DENIED first (the TLFS prefers it when several apply),
// then the caller's own input (INVALID_PARAMETER), then what the input names:
// connection, port, target VP, the target's SynIC, and last buffers.
// Reserved (RsvdZ) input fields that are not zero are INVALID_PARAMETER.
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
  if (port.target_vp != kAnyVp) {
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
    if (!prefer_free_slot || vp->synic.queue[port.target_sint].empty()) return vp;
    if (fallback == nullptr) fallback = vp;
  }
  if (fallback == nullptr) *status = Status::kInvalidSynicState;
  return fallback;
}

}  // namespace

Status post_message(Partition& sender, uint32_t connection_id, uint32_t type,
                    const uint8_t* payload, uint32_t size) {
  Target target = resolve_connection(sender, connection_id, tlfs::PortType::kMessage);
  if (target.status != Status::kSuccess) return target.status;
  Port& port = *target.port;
  OutgoingMessage message{type, static_cast<uint8_t>(size), port.id.value(), payload};
  if (MessageService* service = port.owner->service()) return service->on_message(port, message);

  Status status = Status::kInvalidSynicState;
  Vp* vp = choose_target_vp(port, synic_can_take_messages, true, &status);
  if (vp == nullptr) return status;
  if (!synic_can_take_messages(*vp)) return Status::kInvalidSynicState;
  return synic_post(*vp, port.target_sint, message, port, sender.hypervisor().ports);
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
  // SINT 0 is left to the hypervisor's own messages.
  if (spec.target_sint == 0 || spec.target_sint >= kSintCount) return Status::kInvalidParameter;
  bool events = spec.type == tlfs::PortType::kEvent;
  if (!events && (spec.base_flag != 0 || spec.flag_count != 0)) return Status::kInvalidParameter;
  if (events &&
      (spec.flag_count == 0 || uint32_t{spec.base_flag} + spec.flag_count > tlfs::kFlagsPerSint)) {
    return Status::kInvalidParameter;
  }
  if (hv.ports.find_port(&owner, spec.id) != nullptr) return Status::kInvalidPortId;
  Port* port = hv.ports.allocate_port();
  if (port == nullptr) return Status::kInsufficientMemory;

  // The target VP is checked when a message is posted: VPs come online later
  // than ports are made (APs), and the TLFS reports a missing VP then.
  uint32_t generation = port->generation;
  *port = Port{};
  port->generation = generation;
  port->state = PortState::kActive;
  port->owner = &owner;
  port->id = spec.id;
  port->type = spec.type;
  port->target_sint = static_cast<uint8_t>(spec.target_sint);
  port->target_vp = spec.target_vp;
  port->base_flag = spec.base_flag;
  port->flag_count = spec.flag_count;
  port->connection_partition = connector != nullptr ? connector->id() : PartitionId(0);
  return Status::kSuccess;
}

Status delete_port(Partition& owner, PortId id) {
  PortTable& ports = owner.hypervisor().ports;
  Port* port = ports.find_port(&owner, id);
  if (port == nullptr) return Status::kInvalidPortId;
  ports.delete_port(*port);
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
  Connection* c = ports.allocate_connection();
  if (c == nullptr) return Status::kInsufficientMemory;
  c->in_use = true;
  c->owner = &connector;
  c->id = id;
  c->port_slot = ports.slot_of(*port);
  c->port_generation = port->generation;
  return Status::kSuccess;
}

Status disconnect_port(Partition& connector, ConnectionId id) {
  Connection* c = connector.hypervisor().ports.find_connection(&connector, id);
  if (c == nullptr) return Status::kInvalidConnectionId;
  *c = Connection{};
  return Status::kSuccess;
}

// ---- The hypercalls: privileges and the wire format, then the above.

Status hv_post_message(Vp& caller, const tlfs::PostMessageInput& in) {
  Partition& self = caller.partition();
  if (!self.has_privilege(tlfs::cpuid::kPostMessages)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  if (in.message_type == tlfs::kMessageTypeNone ||
      (in.message_type & tlfs::kMessageTypeHypervisorBit) != 0) {
    return Status::kInvalidParameter;  // types with bit 31 belong to the hypervisor
  }
  if (in.payload_size > tlfs::kMaxPayload) return Status::kInvalidParameter;
  return post_message(self, in.connection_id, in.message_type, in.payload, in.payload_size);
}

Status hv_signal_event(Vp& caller, const tlfs::SignalEventInput& in) {
  if (!caller.partition().has_privilege(tlfs::cpuid::kSignalEvents)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  return signal_event(caller.partition(), in.connection_id, in.flag_number);
}

Status hv_create_port(Vp& caller, const tlfs::CreatePortInput& in) {
  Partition& self = caller.partition();
  if (!self.has_privilege(tlfs::cpuid::kCreatePort)) return Status::kAccessDenied;
  const tlfs::PortInfo& info = in.port_info;
  // Only VTL 0 exists; proximity hints are accepted and ignored.
  if (in.port_vtl != 0 || in.min_connection_vtl != 0 || in.rsvdz0 != 0 || info.padding != 0 ||
      info.rsvdz != 0) {
    return Status::kInvalidParameter;
  }
  Partition* owner = self.hypervisor().find_partition(self, in.port_partition);
  if (owner == nullptr) return Status::kInvalidPartitionId;
  if (owner->service() != nullptr) return Status::kAccessDenied;  // microhv's own
  Partition* connector = nullptr;
  if (in.connection_partition != 0) {
    connector = self.hypervisor().find_partition(self, in.connection_partition);
    if (connector == nullptr) return Status::kInvalidPartitionId;
  }
  PortSpec spec{PortId(in.port_id),    static_cast<tlfs::PortType>(info.port_type),
                info.target_sint,      VpIndex(info.target_vp),
                info.base_flag_number, info.flag_count};
  return create_port(*owner, spec, connector);
}

Status hv_delete_port(Vp& caller, const tlfs::DeletePortInput& in) {
  Partition& self = caller.partition();
  if (!self.has_privilege(tlfs::cpuid::kCreatePort)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  Partition* owner = self.hypervisor().find_partition(self, in.port_partition);
  if (owner == nullptr) return Status::kInvalidPartitionId;
  if (owner->service() != nullptr) return Status::kAccessDenied;  // microhv's own
  return delete_port(*owner, PortId(in.port_id));
}

Status hv_connect_port(Vp& caller, const tlfs::ConnectPortInput& in) {
  Partition& self = caller.partition();
  if (!self.has_privilege(tlfs::cpuid::kConnectPort)) return Status::kAccessDenied;
  const tlfs::ConnectionInfo& info = in.connection_info;
  if (in.connection_vtl != 0 || in.rsvdz0 != 0 || in.rsvdz1 != 0 || in.rsvdz2 != 0 ||
      info.padding != 0 || info.rsvdz[0] != 0 || info.rsvdz[1] != 0 || info.rsvdz[2] != 0) {
    return Status::kInvalidParameter;
  }
  Partition* connector = self.hypervisor().find_partition(self, in.connection_partition);
  Partition* owner = self.hypervisor().find_partition(self, in.port_partition);
  if (connector == nullptr || owner == nullptr) return Status::kInvalidPartitionId;
  return connect_port(*connector, ConnectionId(in.connection_id), *owner, PortId(in.port_id),
                      static_cast<tlfs::PortType>(info.port_type));
}

Status hv_disconnect_port(Vp& caller, const tlfs::DisconnectPortInput& in) {
  Partition& self = caller.partition();
  if (!self.has_privilege(tlfs::cpuid::kConnectPort)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  Partition* connector = self.hypervisor().find_partition(self, in.connection_partition);
  if (connector == nullptr) return Status::kInvalidPartitionId;
  return disconnect_port(*connector, ConnectionId(in.connection_id));
}

}  // namespace microhv
