// microhv's built-in VMBus host: enough of the VMBus control protocol for a
// Linux guest's hv_vmbus to negotiate a version, ask for offers (there are
// none yet) and unload. It is a service partition of the core, with ordinary
// ports and connections:
//  - the guest's connections 4 and 1 (VMBus 5.0+ and older) lead to the
//    host's message port;
//  - replies go out through the host's connection to a message port in the
//    guest partition that targets the VP and SINT named by INITIATE_CONTACT,
//    with message type 1, exactly like any other posted message.
// Layouts follow Linux include/linux/hyperv.h (vmbus_channel_*).
#pragma once

#include <stdint.h>

#include "kernel/partition.hpp"

namespace microhv {

namespace vmbus {
inline constexpr uint32_t kConnectionIdV5 = 4;      // INITIATE_CONTACT for 5.0 and later
inline constexpr uint32_t kConnectionIdLegacy = 1;  // everything below 5.0
inline constexpr uint32_t kMessageType = 1;         // HV message type of VMBus messages
inline constexpr uint32_t kDefaultSint = 2;         // VMBUS_MESSAGE_SINT

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
  // Creates the host partition (`host_id`), its port and the guest's
  // connections. Call once, before the guest runs.
  bool attach(Hypervisor& hv, Partition& guest, PartitionId host_id);

  tlfs::Status on_message(Port& port, const OutgoingMessage& message) override;

  bool connected() const { return connected_; }
  uint32_t negotiated_version() const { return version_; }
  uint32_t messages_received() const { return received_; }
  uint32_t replies_delivered() const { return replies_; }

 private:
  tlfs::Status initiate_contact(const uint8_t* payload, uint32_t size);
  bool reply_to(uint32_t vp, uint32_t sint);
  void reply(const void* body, uint32_t size);

  Partition* host_ = nullptr;
  Partition* guest_ = nullptr;
  bool reply_port_ = false;
  uint32_t reply_vp_ = 0, reply_sint_ = 0;
  bool connected_ = false;
  uint32_t version_ = 0;
  uint32_t received_ = 0, replies_ = 0;
};

}  // namespace microhv
