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
};
tlfs::Status create_port(Partition& owner, const PortSpec& spec, Partition* connector);
tlfs::Status delete_port(Partition& owner, PortId id);
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

}  // namespace microhv
