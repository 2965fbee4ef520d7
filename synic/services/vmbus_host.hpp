// microhv's built-in VMBus host: enough of the VMBus control protocol for a
// Linux guest's hv_vmbus to negotiate a version, ask for offers (there are
// none yet) and unload. It is a service partition of the core, with ordinary
// ports and connections, all made once by attach() before the guest runs:
//  - the guest's connections 4 and 1 (VMBus 5.0+ and older) lead to the
//    host's message port;
//  - replies go out through the host's connection to a message port in the
//    guest partition, pinned (the guest cannot delete it) and reserved for
//    the host (the guest cannot connect to it), with message type 1, exactly
//    like any other posted message. INITIATE_CONTACT points that port at the
//    VP and SINT it names.
//
// No reply is lost while the guest was told SUCCESS: before acting on a
// request that is answered, the host checks that the answer can be queued
// (post_capacity); if not, it does nothing and the poster gets the status
// the reply would have got -- INVALID_VP_INDEX for a VP that does not exist,
// INVALID_SYNIC_STATE for a SynIC that cannot take messages,
// INSUFFICIENT_BUFFERS while 16 replies wait unread (Linux retries that one)
// -- and can post again. Messages that are not answered (malformed, not yet
// contacted, not implemented) are accepted and dropped, as a host would.
//
// Layouts follow Linux include/linux/hyperv.h (vmbus_channel_*).
#pragma once

#include <stdint.h>

#include "kernel/base/log.hpp"
#include "kernel/partition.hpp"

namespace microhv {

namespace vmbus {
inline constexpr uint32_t kConnectionIdV5 = 4;      // INITIATE_CONTACT for 5.0 and later
inline constexpr uint32_t kConnectionIdLegacy = 1;  // everything below 5.0
inline constexpr uint32_t kMessageType = 1;         // HV message type of VMBus messages
inline constexpr uint32_t kDefaultSint = 2;         // VMBUS_MESSAGE_SINT
inline constexpr uint32_t kHostPort = 1;            // in the host partition
inline constexpr uint32_t kReplyPort = 0x564D4200;  // in the guest partition ("VMB")
inline constexpr uint32_t kReplyConnection = 1;     // in the host partition
// What the host partition holds: its port and its reply connection.
// (Namespace-scope constexpr, internal linkage: GNU-EFI applies no GOT
// relocations.)
constexpr PartitionQuota kHostQuota{1, 1};

enum Msg : uint32_t {
  kOfferChannel = 1,
  kRequestOffers = 3,
  kAllOffersDelivered = 4,
  kInitiateContact = 14,
  kVersionResponse = 15,
  kUnload = 16,
  kUnloadResponse = 17,
};

constexpr uint32_t version(uint32_t major, uint32_t minor) {
  return major << 16 | minor;
}
}  // namespace vmbus

class VmbusHost final : public MessageService {
 public:
  // Creates the host partition (`host_id`), its port, the guest's
  // connections and the reply path. Call once, before the guest runs.
  bool attach(Hypervisor& hv, Partition& guest, PartitionId host_id);

  tlfs::Status on_message(Port& port, const OutgoingMessage& message) override;

  bool connected() const { return connected_; }
  uint32_t negotiated_version() const { return version_; }
  uint32_t messages_received() const { return received_; }
  uint32_t replies_delivered() const { return replies_; }

 private:
  tlfs::Status initiate_contact(const uint8_t* payload, uint32_t size);
  // Answers a request after `act` (which must not fail) if the answer can be
  // queued; otherwise nothing happens and the status says why.
  template <typename Act>
  tlfs::Status answer(const void* body, uint32_t size, Act act);
  void reply(const void* body, uint32_t size);

  Partition* host_ = nullptr;
  Partition* guest_ = nullptr;
  bool contacted_ = false;  // INITIATE_CONTACT named where replies go
  uint32_t reply_vp_ = 0, reply_sint_ = vmbus::kDefaultSint;
  bool connected_ = false;
  uint32_t version_ = 0;
  uint32_t received_ = 0, replies_ = 0;
  // Every line here is one a guest can trigger: the first few of each kind.
  log::RateLimit served_log_{32};
  log::RateLimit replies_log_{32};
  log::RateLimit refused_log_{16};
  log::RateLimit ignored_log_{16};
};

}  // namespace microhv
