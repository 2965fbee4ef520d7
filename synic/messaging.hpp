// The TLFS messaging hypercalls: ports, connections, HvCallPostMessage and
// HvCallSignalEvent. Each takes the caller's VP and the input block already
// copied out of guest memory, and returns the TLFS status. Callers hold
// Hypervisor::lock.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/partition.hpp"
#include "synic/delivery.hpp"

namespace microhv {

// Takes the input snapshot by reference: its payload is zeroed past
// PayloadSize and sent from there.
// The same operations for the hypervisor's own services (the VMBus host, the
// test device), which act for a partition without its privileges. Each
// validates what it is given exactly as the hypercalls do.
struct PortSpec {
  PortId id;
  tlfs::PortType type;
  uint32_t target_sint;
  VpIndex target_vp;  // may be kAnyVp
  uint16_t base_flag;
  uint16_t flag_count;
};
tlfs::Status create_port(Partition& owner, const PortSpec& spec, Partition* connector);
tlfs::Status delete_port(Partition& owner, PortId id);
tlfs::Status connect_port(Partition& connector, ConnectionId id, Partition& owner, PortId port,
                          tlfs::PortType type);
tlfs::Status disconnect_port(Partition& connector, ConnectionId id);
// `payload` holds `size` (<= tlfs::kMaxPayload) bytes.
tlfs::Status post_message(Partition& sender, uint32_t connection_id, uint32_t type,
                          const uint8_t* payload, uint32_t size);
tlfs::Status signal_event(Partition& sender, uint32_t connection_id, uint16_t flag);

// Only the first PayloadSize bytes of in.payload are read (and valid).
tlfs::Status hv_post_message(Vp& caller, const tlfs::PostMessageInput& in);
tlfs::Status hv_signal_event(Vp& caller, const tlfs::SignalEventInput& in);
tlfs::Status hv_create_port(Vp& caller, const tlfs::CreatePortInput& in);
tlfs::Status hv_delete_port(Vp& caller, const tlfs::DeletePortInput& in);
tlfs::Status hv_connect_port(Vp& caller, const tlfs::ConnectPortInput& in);
tlfs::Status hv_disconnect_port(Vp& caller, const tlfs::DisconnectPortInput& in);

}  // namespace microhv
