// The TLFS messaging operations (TLFS chapter 11): ports, connections,
// posting a message and signalling an event, in terms of partitions and
// typed ids. The hypercalls (hypercall/calls.cpp) reach them after the
// dispatcher's privilege and ABI checks; microhv's own services (the VMBus
// host, the test device) call them directly for a partition, and each
// validates what it is given exactly as for a hypercall. Callers hold
// Hypervisor::lock.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/partition.hpp"
#include "synic/delivery.hpp"

namespace microhv {

struct PortSpec {
  PortId id;
  tlfs::PortType type;
  uint32_t target_sint;
  VpIndex target_vp;  // may be tlfs::kAnyVp
  uint16_t base_flag;
  uint16_t flag_count;
  bool pinned = false;  // see Port::pinned
};
// Charged to the owner's quota (INSUFFICIENT_MEMORY when it is used up).
tlfs::Status create_port(Partition& owner, const PortSpec& spec, Partition* connector);
// ACCESS_DENIED for a pinned port: a service's port is not the guest's to
// delete, whoever asks on its behalf.
tlfs::Status delete_port(Partition& owner, PortId id);
// Points a live message port at another VP and SINT (the VMBus host, when a
// guest names where its replies go). Messages already queued stay where
// they are and are delivered there.
tlfs::Status retarget_message_port(Partition& owner, PortId id, VpIndex vp, uint32_t sint);
// Charged to the connector's quota (INSUFFICIENT_MEMORY when it is used up).
tlfs::Status connect_port(Partition& connector, ConnectionId id, Partition& owner, PortId port,
                          tlfs::PortType type);
tlfs::Status disconnect_port(Partition& connector, ConnectionId id);
// CreatePort in `owner` targeting spec, then ConnectPort from `connector` as
// `connection`; the port is deleted again when the connection fails.
tlfs::Status create_connected_port(Partition& owner, const PortSpec& spec, Partition& connector,
                                   ConnectionId connection);
// `payload` holds `size` (<= tlfs::kMaxPayload) bytes.
tlfs::Status post_message(Partition& sender, uint32_t connection_id, uint32_t type,
                          const uint8_t* payload, uint32_t size);
tlfs::Status signal_event(Partition& sender, uint32_t connection_id, uint16_t flag);
// The status post_message would give `count` messages posted now through
// `connection_id`, without posting: SUCCESS only if all of them would be
// accepted whatever the guest does to its SIM slot meanwhile (the port has
// `count` free buffers). A service checks it before it acts on a request
// whose replies must not be lost, and refuses the request with this status.
tlfs::Status post_capacity(Partition& sender, uint32_t connection_id, uint32_t count);

}  // namespace microhv
