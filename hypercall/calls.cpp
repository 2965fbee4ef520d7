// Reserved (RsvdZ) input fields that are not zero, and any VTL but 0, are
// INVALID_PARAMETER. Then the partition a port call acts on: the caller
// itself (HV_PARTITION_ID_SELF or its own id) or a partition it is the
// parent of (Hypervisor::acting_on). Where this sits in the check order:
// hypercall.cpp.
#include "hypercall/calls.hpp"

#include "kernel/hypervisor.hpp"
#include "synic/messaging.hpp"

namespace microhv {

using tlfs::Status;

Status hv_post_message(Vp& caller, const tlfs::PostMessageInput& in) {
  Partition& self = caller.partition();
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  if (in.message_type == tlfs::kMessageTypeNone ||
      (in.message_type & tlfs::kMessageTypeHypervisorBit) != 0) {
    return Status::kInvalidParameter;  // types with bit 31 belong to the hypervisor
  }
  if (in.payload_size > tlfs::kMaxPayload) return Status::kInvalidParameter;
  return post_message(self, in.connection_id, in.message_type, in.payload, in.payload_size);
}

Status hv_signal_event(Vp& caller, const tlfs::SignalEventInput& in) {
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  return signal_event(caller.partition(), in.connection_id, in.flag_number);
}

Status hv_create_port(Vp& caller, const tlfs::CreatePortInput& in) {
  Partition& self = caller.partition();
  const tlfs::PortInfo& info = in.port_info;
  // Only VTL 0 exists; proximity hints are accepted and ignored.
  if (in.port_vtl != 0 || in.min_connection_vtl != 0 || in.rsvdz0 != 0 || info.padding != 0 ||
      info.rsvdz != 0) {
    return Status::kInvalidParameter;
  }
  const PartitionLookup owner = self.hypervisor().acting_on(self, in.port_partition);
  if (owner.status != Status::kSuccess) return owner.status;
  // Who may connect: any partition that exists (0: any at all).
  Partition* connector = nullptr;
  if (in.connection_partition != 0) {
    connector = self.hypervisor().find_partition(self, in.connection_partition);
    if (connector == nullptr) return Status::kInvalidPartitionId;
  }
  PortSpec spec{PortId(in.port_id),    static_cast<tlfs::PortType>(info.port_type),
                info.target_sint,      VpIndex(info.target_vp),
                info.base_flag_number, info.flag_count};
  return create_port(*owner.partition, spec, connector);
}

Status hv_delete_port(Vp& caller, const tlfs::DeletePortInput& in) {
  Partition& self = caller.partition();
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  const PartitionLookup owner = self.hypervisor().acting_on(self, in.port_partition);
  if (owner.status != Status::kSuccess) return owner.status;
  return delete_port(*owner.partition, PortId(in.port_id));
}

Status hv_connect_port(Vp& caller, const tlfs::ConnectPortInput& in) {
  Partition& self = caller.partition();
  const tlfs::ConnectionInfo& info = in.connection_info;
  if (in.connection_vtl != 0 || in.rsvdz0 != 0 || in.rsvdz1 != 0 || in.rsvdz2 != 0 ||
      info.padding != 0 || info.rsvdz[0] != 0 || info.rsvdz[1] != 0 || info.rsvdz[2] != 0) {
    return Status::kInvalidParameter;
  }
  const PartitionLookup connector = self.hypervisor().acting_on(self, in.connection_partition);
  if (connector.status != Status::kSuccess) return connector.status;
  // The port may be in any partition: whether this one may connect to it is
  // the port's own rule (its ConnectionPartition, checked by connect_port).
  Partition* owner = self.hypervisor().find_partition(self, in.port_partition);
  if (owner == nullptr) return Status::kInvalidPartitionId;
  if (!owner->active()) return Status::kInvalidPartitionState;
  return connect_port(*connector.partition, ConnectionId(in.connection_id), *owner,
                      PortId(in.port_id), static_cast<tlfs::PortType>(info.port_type));
}

Status hv_disconnect_port(Vp& caller, const tlfs::DisconnectPortInput& in) {
  Partition& self = caller.partition();
  if (in.rsvdz != 0) return Status::kInvalidParameter;
  const PartitionLookup connector = self.hypervisor().acting_on(self, in.connection_partition);
  if (connector.status != Status::kSuccess) return connector.status;
  return disconnect_port(*connector.partition, ConnectionId(in.connection_id));
}

}  // namespace microhv
