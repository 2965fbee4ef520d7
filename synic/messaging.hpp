// The TLFS messaging hypercalls: ports, connections, HvCallPostMessage and
// HvCallSignalEvent. Each takes the caller's VP and the input block already
// copied out of guest memory, and returns the TLFS status. Callers hold
// Hypervisor::lock.
#pragma once

#include "hypercall/tlfs.hpp"
#include "kernel/partition.hpp"

namespace microhv {

// Takes the input snapshot by reference: its payload is zeroed past
// PayloadSize and sent from there.
tlfs::Status hv_post_message(Vp& caller, tlfs::PostMessageInput& in);
tlfs::Status hv_signal_event(Vp& caller, const tlfs::SignalEventInput& in);
tlfs::Status hv_create_port(Vp& caller, const tlfs::CreatePortInput& in);
tlfs::Status hv_delete_port(Vp& caller, const tlfs::DeletePortInput& in);
tlfs::Status hv_connect_port(Vp& caller, const tlfs::ConnectPortInput& in);
tlfs::Status hv_disconnect_port(Vp& caller, const tlfs::DisconnectPortInput& in);

}  // namespace microhv
