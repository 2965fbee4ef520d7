// The wire-format adapters of the messaging hypercalls: each takes the
// caller's VP and the call's input block, already copied out of guest memory
// by the dispatcher (hypercall/hypercall.cpp), checks the input's own fields
// (RsvdZ, VTLs, partition ids) and calls the operation in synic/messaging.
// The privilege check is not here: the dispatcher makes it once, for every
// call, from the call table. Callers hold Hypervisor::lock.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"

namespace microhv {

class Vp;

// Only the first PayloadSize bytes of in.payload are read (and valid).
tlfs::Status hv_post_message(Vp& caller, const tlfs::PostMessageInput& in);
tlfs::Status hv_signal_event(Vp& caller, const tlfs::SignalEventInput& in);
tlfs::Status hv_create_port(Vp& caller, const tlfs::CreatePortInput& in);
tlfs::Status hv_delete_port(Vp& caller, const tlfs::DeletePortInput& in);
tlfs::Status hv_connect_port(Vp& caller, const tlfs::ConnectPortInput& in);
tlfs::Status hv_disconnect_port(Vp& caller, const tlfs::DisconnectPortInput& in);

}  // namespace microhv
