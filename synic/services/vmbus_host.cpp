#include "synic/services/vmbus_host.hpp"

#include "kernel/base/log.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/messaging.hpp"

namespace microhv {
namespace {

constexpr uint32_t kHostPort = 1;
constexpr uint32_t kReplyPort = 0x564D4200;  // in the guest partition ("VMB")
constexpr uint32_t kReplyConnection = 1;     // in the host partition

// The versions microhv speaks, newest first. Linux 6.1 asks for 5.3 first.
constexpr uint32_t kVersions[] = {vmbus::version(5, 3), vmbus::version(5, 2), vmbus::version(5, 1),
                                  vmbus::version(5, 0), vmbus::version(4, 1), vmbus::version(4, 0)};

struct Header {  // vmbus_channel_message_header
  uint32_t msgtype;
  uint32_t padding;
};

struct InitiateContact {  // vmbus_channel_initiate_contact
  Header header;
  uint32_t version_requested;
  uint32_t target_vcpu;
  uint8_t msg_sint;  // 5.0+: the SINT for host messages (older: interrupt page)
  uint8_t msg_vtl;
  uint8_t reserved[6];
  uint64_t monitor_page1;
  uint64_t monitor_page2;
};
static_assert(sizeof(InitiateContact) == 40);

struct VersionResponse {  // vmbus_channel_version_response
  Header header;
  uint8_t version_supported;
  uint8_t connection_state;
  uint16_t padding;
  uint32_t msg_conn_id;
};
static_assert(sizeof(VersionResponse) == 16);

bool supported(uint32_t v) {
  for (uint32_t s : kVersions) {
    if (s == v) return true;
  }
  return false;
}

}  // namespace

bool VmbusHost::attach(Hypervisor& hv, Partition& guest, PartitionId host_id) {
  LockGuard guard(hv.lock);
  host_ = hv.create_service_partition(host_id, *this);
  guest_ = &guest;
  if (host_ == nullptr) return false;
  PortSpec port{PortId(kHostPort), tlfs::PortType::kMessage, vmbus::kDefaultSint, VpIndex(0), 0, 0};
  return create_port(*host_, port, &guest) == tlfs::Status::kSuccess &&
         connect_port(guest, ConnectionId(vmbus::kConnectionIdV5), *host_, port.id, port.type) ==
             tlfs::Status::kSuccess &&
         connect_port(guest, ConnectionId(vmbus::kConnectionIdLegacy), *host_, port.id,
                      port.type) == tlfs::Status::kSuccess;
}

// (Re)points the reply port at the VP and SINT the guest asked for.
bool VmbusHost::reply_to(uint32_t vp, uint32_t sint) {
  if (reply_port_ && vp == reply_vp_ && sint == reply_sint_) return true;
  if (reply_port_) {
    disconnect_port(*host_, ConnectionId(kReplyConnection));
    delete_port(*guest_, PortId(kReplyPort));
    reply_port_ = false;
  }
  const PortSpec spec{PortId(kReplyPort), tlfs::PortType::kMessage, sint, VpIndex(vp), 0, 0};
  if (create_connected_port(*guest_, spec, *host_, ConnectionId(kReplyConnection)) !=
      tlfs::Status::kSuccess) {
    return false;
  }
  reply_port_ = true;
  reply_vp_ = vp;
  reply_sint_ = sint;
  return true;
}

void VmbusHost::reply(const void* body, uint32_t size) {
  uint8_t payload[tlfs::kMaxPayload] = {};
  __builtin_memcpy(payload, body, size);
  uint32_t type = static_cast<const Header*>(body)->msgtype;
  tlfs::Status s = post_message(*host_, kReplyConnection, vmbus::kMessageType, payload, size);
  if (s == tlfs::Status::kSuccess) {
    ++replies_;
    log::info("vmbus: reply %u delivered to VP %u SINT %u (%u replies)\n", type, reply_vp_,
              reply_sint_, replies_);
  } else {
    log::error("vmbus: reply %u not delivered: %s\n", type, tlfs::status_name(s));
  }
}

tlfs::Status VmbusHost::initiate_contact(const uint8_t* payload, uint32_t size) {
  InitiateContact in{};
  __builtin_memcpy(&in, payload, size < sizeof(in) ? size : sizeof(in));
  uint32_t v = in.version_requested;
  // Before 5.0 the guest names no SINT: host messages use VMBUS_MESSAGE_SINT.
  uint32_t sint = v >= vmbus::version(5, 0) ? in.msg_sint : vmbus::kDefaultSint;
  bool ok = supported(v);
  log::info("vmbus: INITIATE_CONTACT version %u.%u, reply to VP %u SINT %u: %s\n", v >> 16,
            v & 0xFFFF, in.target_vcpu, sint, ok ? "accepted" : "not supported");
  if (!reply_to(in.target_vcpu, sint)) {
    log::error("vmbus: cannot reach VP %u SINT %u\n", in.target_vcpu, sint);
    return tlfs::Status::kInvalidParameter;
  }
  if (ok) {
    connected_ = true;
    version_ = v;
  }
  VersionResponse r{
      {vmbus::kVersionResponse, 0}, static_cast<uint8_t>(ok ? 1 : 0), 0, 0, vmbus::kConnectionIdV5};
  reply(&r, sizeof(r));
  return tlfs::Status::kSuccess;
}

tlfs::Status VmbusHost::on_message(Port& port, const OutgoingMessage& message) {
  ++received_;
  if (port.id != PortId(kHostPort) || message.type != vmbus::kMessageType ||
      message.payload_size < sizeof(Header)) {
    log::error("vmbus: ignoring message type %u size %u on port %u\n", message.type,
               message.payload_size, port.id.value());
    return tlfs::Status::kSuccess;  // accepted, as a real host would drop it
  }
  Header h;
  __builtin_memcpy(&h, message.payload, sizeof(h));
  log::info("vmbus: PostMessage served: channel message %u (%u bytes), %u received\n", h.msgtype,
            message.payload_size, received_);
  switch (h.msgtype) {
    case vmbus::kInitiateContact:
      return initiate_contact(message.payload, message.payload_size);
    case vmbus::kRequestOffers: {
      Header done{vmbus::kAllOffersDelivered, 0};  // no devices to offer yet
      if (reply_port_) reply(&done, sizeof(done));
      return tlfs::Status::kSuccess;
    }
    case vmbus::kUnload: {
      Header done{vmbus::kUnloadResponse, 0};
      connected_ = false;
      if (reply_port_) reply(&done, sizeof(done));
      return tlfs::Status::kSuccess;
    }
    default:
      log::info("vmbus: channel message %u not implemented; ignored\n", h.msgtype);
      return tlfs::Status::kSuccess;
  }
}

}  // namespace microhv
