// Message and event delivery into a VP's SIM and SIEF pages (TLFS 11.9,
// 11.10). Callers hold Hypervisor::lock.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/message.hpp"
#include "kernel/partition.hpp"
#include "kernel/ports.hpp"

namespace microhv {

// SCONTROL enabled, SIMP enabled and the SIM page is guest RAM.
bool synic_can_take_messages(Vp& vp);
// SCONTROL enabled, SIEFP enabled and the SIEF page is guest RAM.
bool synic_can_take_events(Vp& vp);

// Raises SINT `sint` of `vp` the way every SynIC interrupt is raised: the
// SINT's vector, with its AutoEOI flag, through the partition's
// InterruptSink; nothing when the SINT is masked (TLFS 11.8.4: edge
// semantics, not remembered).
void synic_raise(Vp& vp, SintIndex sint);

// Puts `message` into SINT `sint`'s SIM slot of `vp` if the slot is free and
// nothing is queued ahead of it; otherwise queues it in one of `port`'s
// buffers and sets MessagePending. INSUFFICIENT_BUFFERS only when the port has
// no free buffer. Precondition: synic_can_take_messages(vp).
tlfs::Status synic_post(Vp& vp, SintIndex sint, const OutgoingMessage& message, Port& port,
                        PortTable& table);

// A message of the hypervisor's own (a timer expiration) that needs no port
// buffer: written into SINT `sint`'s slot when it is free (kDelivered, the
// SINT raised); when it is busy MessagePending is set in it and the caller
// keeps the message until the guest's EOM (kBusy); kUnavailable when the
// SynIC cannot take messages (the message is lost, TLFS 11.9).
enum class SlotOffer : uint8_t { kDelivered, kBusy, kUnavailable };
SlotOffer synic_offer(Vp& vp, SintIndex sint, const OutgoingMessage& message);

// Delivers the head of SINT `sint`'s queue if its slot is free, else makes
// sure MessagePending is set in the occupied slot.
void synic_drain(Vp& vp, SintIndex sint);
void synic_drain_all(Vp& vp);

// Sets flag `flag` of SINT `sint` in the SIEF page atomically and raises the
// SINT only on a 0 -> 1 transition (TLFS 11.10.2).
tlfs::Status synic_set_event_flag(Vp& vp, SintIndex sint, uint32_t flag);

}  // namespace microhv
