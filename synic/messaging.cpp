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
Target resolve_connection(Vp& caller, uint32_t raw_id, tlfs::PortType expected) {
  Partition& partition = caller.partition();
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

Status hv_post_message(Vp& caller, tlfs::PostMessageInput& in) {
  if (!caller.partition().has_privilege(tlfs::cpuid::kPostMessages)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  if (in.message_type == tlfs::kMessageTypeNone ||
      (in.message_type & tlfs::kMessageTypeHypervisorBit) != 0) {
    return Status::kInvalidParameter;  // types with bit 31 belong to the hypervisor
  }
  if (in.payload_size > tlfs::kMaxPayload) return Status::kInvalidParameter;

  Target target = resolve_connection(caller, in.connection_id, tlfs::PortType::kMessage);
  if (target.status != Status::kSuccess) return target.status;
  Port& port = *target.port;

  Status status = Status::kInvalidSynicState;
  Vp* vp = choose_target_vp(port, synic_can_take_messages, true, &status);
  if (vp == nullptr) return status;
  if (!synic_can_take_messages(*vp)) return Status::kInvalidSynicState;

  // Only PayloadSize bytes are sent (seed: "only the first n bytes"); the
  // caller's bytes past them go out as zeros.
  if (in.payload_size < tlfs::kMaxPayload) {
    __builtin_memset(in.payload + in.payload_size, 0, tlfs::kMaxPayload - in.payload_size);
  }
  OutgoingMessage message{in.message_type, static_cast<uint8_t>(in.payload_size), port.id.value(),
                          in.payload};
  return synic_post(*vp, port.target_sint, message, port, caller.partition().hypervisor().ports);
}

Status hv_signal_event(Vp& caller, const tlfs::SignalEventInput& in) {
  if (!caller.partition().has_privilege(tlfs::cpuid::kSignalEvents)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;

  Target target = resolve_connection(caller, in.connection_id, tlfs::PortType::kEvent);
  if (target.status != Status::kSuccess) return target.status;
  Port& port = *target.port;
  if (in.flag_number >= port.flag_count) return Status::kInvalidParameter;

  Status status = Status::kInvalidSynicState;
  Vp* vp = choose_target_vp(port, synic_can_take_events, false, &status);
  if (vp == nullptr) return status;
  return synic_set_event_flag(*vp, port.target_sint, uint32_t{port.base_flag} + in.flag_number);
}

Status hv_create_port(Vp& caller, const tlfs::CreatePortInput& in) {
  Partition& self = caller.partition();
  Hypervisor& hv = self.hypervisor();
  if (!self.has_privilege(tlfs::cpuid::kCreatePort)) return Status::kAccessDenied;
  const tlfs::PortInfo& info = in.port_info;
  // Only VTL 0 exists; proximity hints are accepted and ignored.
  if (in.port_vtl != 0 || in.min_connection_vtl != 0 || in.rsvdz0 != 0 || info.padding != 0) {
    return Status::kInvalidParameter;
  }
  auto type = static_cast<tlfs::PortType>(info.port_type);
  if (type != tlfs::PortType::kMessage && type != tlfs::PortType::kEvent) {
    return Status::kInvalidParameter;  // monitor ports are not implemented
  }
  // SINT 0 is reserved for the hypervisor's own messages (tlfs-digest 2).
  if (info.target_sint == 0 || info.target_sint >= kSintCount) return Status::kInvalidParameter;
  if (type == tlfs::PortType::kMessage) {
    if (info.base_flag_number != 0 || info.flag_count != 0 || info.rsvdz != 0) {
      return Status::kInvalidParameter;
    }
  } else {
    if (info.rsvdz != 0 || info.flag_count == 0 ||
        uint32_t{info.base_flag_number} + info.flag_count > tlfs::kFlagsPerSint) {
      return Status::kInvalidParameter;
    }
  }
  Partition* owner = hv.find_partition(self, in.port_partition);
  if (owner == nullptr) return Status::kInvalidPartitionId;
  Partition* connector = nullptr;
  if (in.connection_partition != 0) {
    connector = hv.find_partition(self, in.connection_partition);
    if (connector == nullptr) return Status::kInvalidPartitionId;
  }
  PortId id(in.port_id);
  if (hv.ports.find_port(owner, id) != nullptr) return Status::kInvalidPortId;
  Port* port = hv.ports.allocate_port();
  if (port == nullptr) return Status::kInsufficientMemory;

  // The target VP is checked when a message is posted: VPs come online later
  // than ports are made (APs), and the TLFS reports a missing VP then.
  uint32_t generation = port->generation;
  *port = Port{};
  port->generation = generation;
  port->state = PortState::kActive;
  port->owner = owner;
  port->id = id;
  port->type = type;
  port->target_sint = static_cast<uint8_t>(info.target_sint);
  port->target_vp = VpIndex(info.target_vp);
  port->base_flag = info.base_flag_number;
  port->flag_count = info.flag_count;
  port->connection_partition = connector != nullptr ? connector->id() : PartitionId(0);
  return Status::kSuccess;
}

Status hv_delete_port(Vp& caller, const tlfs::DeletePortInput& in) {
  Partition& self = caller.partition();
  Hypervisor& hv = self.hypervisor();
  if (!self.has_privilege(tlfs::cpuid::kCreatePort)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  Partition* owner = hv.find_partition(self, in.port_partition);
  if (owner == nullptr) return Status::kInvalidPartitionId;
  Port* port = hv.ports.find_port(owner, PortId(in.port_id));
  if (port == nullptr) return Status::kInvalidPortId;
  hv.ports.delete_port(*port);
  return Status::kSuccess;
}

Status hv_connect_port(Vp& caller, const tlfs::ConnectPortInput& in) {
  Partition& self = caller.partition();
  Hypervisor& hv = self.hypervisor();
  if (!self.has_privilege(tlfs::cpuid::kConnectPort)) return Status::kAccessDenied;
  const tlfs::ConnectionInfo& info = in.connection_info;
  if (in.connection_vtl != 0 || in.rsvdz0 != 0 || in.rsvdz1 != 0 || in.rsvdz2 != 0 ||
      info.padding != 0 || info.rsvdz[0] != 0 || info.rsvdz[1] != 0 || info.rsvdz[2] != 0) {
    return Status::kInvalidParameter;
  }
  Partition* connector = hv.find_partition(self, in.connection_partition);
  Partition* owner = hv.find_partition(self, in.port_partition);
  if (connector == nullptr || owner == nullptr) return Status::kInvalidPartitionId;
  Port* port = hv.ports.find_port(owner, PortId(in.port_id));
  if (port == nullptr) return Status::kInvalidPortId;
  if (info.port_type != static_cast<uint32_t>(port->type)) return Status::kInvalidParameter;
  if (port->connection_partition.value() != 0 && port->connection_partition != connector->id()) {
    return Status::kAccessDenied;  // the port names another partition as its peer
  }
  if ((in.connection_id & ~tlfs::kConnectionIdMask) != 0 ||
      hv.ports.find_connection(connector, ConnectionId(in.connection_id)) != nullptr) {
    return Status::kInvalidConnectionId;
  }
  Connection* c = hv.ports.allocate_connection();
  if (c == nullptr) return Status::kInsufficientMemory;
  c->in_use = true;
  c->owner = connector;
  c->id = ConnectionId(in.connection_id);
  c->port_slot = hv.ports.slot_of(*port);
  c->port_generation = port->generation;
  return Status::kSuccess;
}

Status hv_disconnect_port(Vp& caller, const tlfs::DisconnectPortInput& in) {
  Partition& self = caller.partition();
  Hypervisor& hv = self.hypervisor();
  if (!self.has_privilege(tlfs::cpuid::kConnectPort)) return Status::kAccessDenied;
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  Partition* connector = hv.find_partition(self, in.connection_partition);
  if (connector == nullptr) return Status::kInvalidPartitionId;
  Connection* c = hv.ports.find_connection(connector, ConnectionId(in.connection_id));
  if (c == nullptr) return Status::kInvalidConnectionId;
  *c = Connection{};
  return Status::kSuccess;
}

}  // namespace microhv
