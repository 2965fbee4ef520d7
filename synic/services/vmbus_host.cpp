#include "synic/services/vmbus_host.hpp"

#include "kernel/hypervisor.hpp"
#include "synic/messaging.hpp"

namespace microhv {
namespace {

using tlfs::Status;

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

const char* later_not_logged(bool last) {
  return last ? " (later ones are not logged)" : "";
}

}  // namespace

bool VmbusHost::attach(Hypervisor& hv, Partition& guest, PartitionId host_id) {
  LockGuard guard(hv.lock);
  host_ = hv.create_service_partition(host_id, *this, vmbus::kHostQuota);
  guest_ = &guest;
  if (host_ == nullptr) return false;
  const PortSpec port{
      PortId(vmbus::kHostPort), tlfs::PortType::kMessage, vmbus::kDefaultSint, VpIndex(0), 0, 0};
  // Until INITIATE_CONTACT names a VP and SINT, the reply port points at
  // VMBUS_MESSAGE_SINT on VP 0; nothing is sent before it.
  const PortSpec replies{PortId(vmbus::kReplyPort),
                         tlfs::PortType::kMessage,
                         vmbus::kDefaultSint,
                         VpIndex(0),
                         0,
                         0,
                         /*pinned=*/true};
  return create_port(*host_, port, &guest) == Status::kSuccess &&
         connect_port(guest, ConnectionId(vmbus::kConnectionIdV5), *host_, port.id, port.type) ==
             Status::kSuccess &&
         connect_port(guest, ConnectionId(vmbus::kConnectionIdLegacy), *host_, port.id,
                      port.type) == Status::kSuccess &&
         create_connected_port(guest, replies, *host_, ConnectionId(vmbus::kReplyConnection)) ==
             Status::kSuccess;
}

void VmbusHost::reply(const void* body, uint32_t size) {
  uint8_t payload[tlfs::kMaxPayload] = {};
  __builtin_memcpy(payload, body, size);
  const uint32_t type = static_cast<const Header*>(body)->msgtype;
  const Status s =
      post_message(*host_, vmbus::kReplyConnection, vmbus::kMessageType, payload, size);
  bool last = false;
  if (s == Status::kSuccess) {
    ++replies_;
    if (replies_log_.allow(&last)) {
      log::info("vmbus: reply %u delivered to VP %u SINT %u (%u replies)%s\n", type, reply_vp_,
                reply_sint_, replies_, later_not_logged(last));
    }
  } else if (refused_log_.allow(&last)) {
    // post_capacity said it fits and nothing ran in between (the lock is held).
    log::error("vmbus: reply %u refused after the capacity check passed: %s (a microhv bug)%s\n",
               type, tlfs::status_name(s), later_not_logged(last));
  }
}

template <typename Act>
Status VmbusHost::answer(const void* body, uint32_t size, Act act) {
  const Status capacity = post_capacity(*host_, vmbus::kReplyConnection, 1);
  if (capacity != Status::kSuccess) return capacity;
  act();
  reply(body, size);
  return Status::kSuccess;
}

Status VmbusHost::initiate_contact(const uint8_t* payload, uint32_t size) {
  InitiateContact in{};
  __builtin_memcpy(&in, payload, size < sizeof(in) ? size : sizeof(in));
  const uint32_t v = in.version_requested;
  // Before 5.0 the guest names no SINT: host messages use VMBUS_MESSAGE_SINT.
  const uint32_t sint = v >= vmbus::version(5, 0) ? in.msg_sint : vmbus::kDefaultSint;
  const bool ok = supported(v);
  // The capacity check is for where the reply goes now: point the port
  // there, and back again if the request is refused.
  const uint32_t old_vp = reply_vp_, old_sint = reply_sint_;
  Status s =
      retarget_message_port(*guest_, PortId(vmbus::kReplyPort), VpIndex(in.target_vcpu), sint);
  if (s == Status::kSuccess) {
    const VersionResponse r{{vmbus::kVersionResponse, 0},
                            static_cast<uint8_t>(ok ? 1 : 0),
                            0,
                            0,
                            vmbus::kConnectionIdV5};
    reply_vp_ = in.target_vcpu;
    reply_sint_ = sint;
    s = answer(&r, sizeof(r), [&] {
      contacted_ = true;
      if (ok) {
        connected_ = true;
        version_ = v;
      }
    });
    if (s != Status::kSuccess) {
      reply_vp_ = old_vp;
      reply_sint_ = old_sint;
      retarget_message_port(*guest_, PortId(vmbus::kReplyPort), VpIndex(old_vp), old_sint);
    }
  }
  bool last = false;
  if (served_log_.allow(&last)) {
    log::info("vmbus: INITIATE_CONTACT version %u.%u, reply to VP %u SINT %u: %s%s\n", v >> 16,
              v & 0xFFFF, in.target_vcpu, sint,
              s != Status::kSuccess ? tlfs::status_name(s)
              : ok                  ? "accepted"
                                    : "not supported",
              later_not_logged(last));
  }
  return s;
}

Status VmbusHost::on_message(Port& port, const OutgoingMessage& message) {
  ++received_;
  bool last = false;
  if (port.id != PortId(vmbus::kHostPort) || message.type != vmbus::kMessageType ||
      message.payload_size < sizeof(Header)) {
    if (ignored_log_.allow(&last)) {
      log::error("vmbus: ignoring message type %u size %u on port %u%s\n", message.type,
                 message.payload_size, port.id.value(), later_not_logged(last));
    }
    return Status::kSuccess;  // accepted, as a real host would drop it
  }
  Header h;
  __builtin_memcpy(&h, message.payload, sizeof(h));
  if (served_log_.allow(&last)) {
    log::info("vmbus: PostMessage served: channel message %u (%u bytes), %u received%s\n",
              h.msgtype, message.payload_size, received_, later_not_logged(last));
  }
  if (h.msgtype == vmbus::kInitiateContact) {
    return initiate_contact(message.payload, message.payload_size);
  }
  // Everything else is answered only once the guest said where answers go.
  if (!contacted_ || (h.msgtype != vmbus::kRequestOffers && h.msgtype != vmbus::kUnload)) {
    if (ignored_log_.allow(&last)) {
      log::info("vmbus: channel message %u %s; ignored%s\n", h.msgtype,
                contacted_ ? "not implemented" : "before INITIATE_CONTACT", later_not_logged(last));
    }
    return Status::kSuccess;
  }
  if (h.msgtype == vmbus::kRequestOffers) {
    const Header done{vmbus::kAllOffersDelivered, 0};  // no devices to offer yet
    return answer(&done, sizeof(done), [] {});
  }
  const Header done{vmbus::kUnloadResponse, 0};
  return answer(&done, sizeof(done), [&] { connected_ = false; });
}

}  // namespace microhv
