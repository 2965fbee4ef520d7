// Group "authority": the guest tries to act on partitions that are not its
// own (TLFS HvCallCreatePort, DeletePort, ConnectPort, DisconnectPort: the
// caller must be the partition it names or that partition's parent) and to
// rewire microhv's VMBus host, which is partition 2 and nobody's child.
// Every attempt must fail with the TLFS status, and the VMBus host must
// still answer afterwards; a request whose answer cannot be delivered (a VP
// that does not exist) gets the status that says so instead of SUCCESS.
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

using tlfs::PortType;

constexpr uint64_t kOwnId = 1;                    // microhv runs the guest as partition 1
constexpr uint64_t kVmbusPartition = 2;           // microhv's VMBus host
constexpr uint64_t kNoSuchPartition = 77;         // no partition has it
constexpr uint32_t kVmbusHostPort = 1;            // the host's port (partition 2)
constexpr uint32_t kVmbusReplyConn = 1;           // the host's connection for its replies
constexpr uint32_t kVmbusReplyPort = 0x564D4200;  // its reply port, in our partition
constexpr uint32_t kPortOwnId = 0x100A, kConnProbe = 0x200A, kConnHijack = 0x200B;
// The VMBus replies land in the masked SINT's slot: no interrupt to handle.
constexpr uint8_t kReplySint = kSintMasked;

HvResult create_in(uint64_t partition, uint32_t port_id) {
  tlfs::CreatePortInput in{};
  in.port_partition = partition;
  in.port_id = port_id;
  in.port_info.port_type = static_cast<uint32_t>(PortType::kMessage);
  in.port_info.target_sint = kSintMsg;
  return hypercall_in(tlfs::CallCode::kCreatePort, &in, sizeof(in));
}

HvResult delete_in(uint64_t partition, uint32_t port_id) {
  tlfs::DeletePortInput in{partition, port_id, 0};
  return hypercall_in(tlfs::CallCode::kDeletePort, &in, sizeof(in));
}

HvResult connect_as(uint64_t connection_partition, uint32_t conn, uint64_t port_partition,
                    uint32_t port_id) {
  tlfs::ConnectPortInput in{};
  in.connection_partition = connection_partition;
  in.connection_id = conn;
  in.port_partition = port_partition;
  in.port_id = port_id;
  in.connection_info.port_type = static_cast<uint32_t>(PortType::kMessage);
  return hypercall_in(tlfs::CallCode::kConnectPort, &in, sizeof(in));
}

HvResult disconnect_as(uint64_t connection_partition, uint32_t conn) {
  tlfs::DisconnectPortInput in{connection_partition, conn, 0};
  return hypercall_in(tlfs::CallCode::kDisconnectPort, &in, sizeof(in));
}

// A VMBus control message (Linux include/linux/hyperv.h) on connection 4.
HvResult vmbus_post(const uint32_t* body, uint32_t size) {
  tlfs::PostMessageInput in{};
  in.connection_id = 4;
  in.message_type = 1;
  in.payload_size = size;
  memcpy(in.payload, body, size);
  return hypercall_in(tlfs::CallCode::kPostMessage, &in, sizeof(in));
}

HvResult initiate_contact(uint32_t vp, uint8_t sint) {
  const uint32_t m[10] = {14, 0, 5u << 16 | 3, vp, sint};  // INITIATE_CONTACT 5.3
  return vmbus_post(m, sizeof(m));
}

// The VMBus message type in the reply slot (0: none), checking that it came
// from the host's reply port.
uint32_t reply_in_slot() {
  volatile tlfs::Message* m = sim_slot(kReplySint);
  if (m->message_type != 1 || m->origin != kVmbusReplyPort) return 0;
  return *reinterpret_cast<volatile uint32_t*>(m->payload);
}

}  // namespace

void group_authority() {
  if (!ensure_hypercall() || !ensure_synic()) {
    fail("authority-setup", "%s", fixture_error());
    return;
  }
  // The VMBus host's own partition and its reply path.
  check_status("authority-disconnect-vmbus-reply-denied",
               disconnect_as(kVmbusPartition, kVmbusReplyConn), Status::kAccessDenied,
               "DisconnectPort of partition 2's connection 1");
  check_status("authority-connect-as-vmbus-denied",
               connect_as(kVmbusPartition, kConnHijack, tlfs::kPartitionSelf, kPortMsg),
               Status::kAccessDenied, "ConnectPort for partition 2 to our own port");
  check_status("authority-delete-vmbus-port-denied", delete_in(kVmbusPartition, kVmbusHostPort),
               Status::kAccessDenied, "DeletePort of partition 2's port 1");
  check_status("authority-create-port-in-vmbus-denied", create_in(kVmbusPartition, kPortOwnId),
               Status::kAccessDenied, "CreatePort in partition 2");
  check_status("authority-delete-vmbus-reply-port-denied",
               delete_in(tlfs::kPartitionSelf, kVmbusReplyPort), Status::kAccessDenied,
               "DeletePort of the VMBus reply port in our own partition");
  check_status("authority-connect-to-vmbus-reply-port-denied",
               connect_as(tlfs::kPartitionSelf, kConnHijack, tlfs::kPartitionSelf, kVmbusReplyPort),
               Status::kAccessDenied, "ConnectPort to the VMBus reply port");

  // Ids that name nothing, and our own id spelled out.
  check_status("authority-unknown-partition-create", create_in(kNoSuchPartition, kPortOwnId),
               Status::kInvalidPartitionId, "CreatePort in partition 77");
  check_status("authority-unknown-partition-disconnect", disconnect_as(kNoSuchPartition, 1),
               Status::kInvalidPartitionId, "DisconnectPort of partition 77");
  if (check_status("authority-own-id-acts-on-self", create_in(kOwnId, kPortOwnId), Status::kSuccess,
                   "CreatePort with PortPartition = 1 (our id)")) {
    check_status("authority-own-id-delete", delete_in(kOwnId, kPortOwnId), Status::kSuccess,
                 "DeletePort with PortPartition = 1");
  }

  // Into another partition: only through a port it made for us.
  check_status("authority-connect-missing-vmbus-port",
               connect_as(tlfs::kPartitionSelf, kConnProbe, kVmbusPartition, 2),
               Status::kInvalidPortId, "ConnectPort to partition 2's port 2 (none)");
  check_status("authority-post-without-connection", post_message(kConnProbe, 1, 8, 0x41),
               Status::kInvalidConnectionId, "PostMessage on the refused connection");

  // After all that the host still answers where we tell it; an answer that
  // cannot be delivered is refused up front, not lost.
  clear_slot_and_eom(kReplySint, true);
  check_status("authority-vmbus-contact-missing-vp", initiate_contact(9, kReplySint),
               Status::kInvalidVpIndex, "INITIATE_CONTACT naming VP 9");
  HvResult r = initiate_contact(0, kReplySint);
  if (check_status("authority-vmbus-still-answers", r, Status::kSuccess,
                   "INITIATE_CONTACT 5.3 to VP 0, SINT 6")) {
    const uint32_t got = reply_in_slot();
    if (got == 15) {
      pass("authority-vmbus-version-response");
    } else {
      fail("authority-vmbus-version-response", "slot %u holds VMBus message %u, expected 15",
           kReplySint, got);
    }
    // UNLOAD while the slot is busy: its answer waits with MessagePending
    // and arrives at EOM.
    const uint32_t unload[2] = {16, 0};
    check_status("authority-vmbus-unload-queued", vmbus_post(unload, sizeof(unload)),
                 Status::kSuccess, "UNLOAD with the reply slot busy");
    const bool pending = (sim_slot(kReplySint)->message_flags & tlfs::kMessageFlagPending) != 0;
    clear_slot_and_eom(kReplySint, pending);
    const uint32_t second = reply_in_slot();
    if (pending && second == 17) {
      pass("authority-vmbus-reply-after-eom");
    } else {
      fail("authority-vmbus-reply-after-eom", "MessagePending %d, then VMBus message %u (want 17)",
           pending ? 1 : 0, second);
    }
    clear_slot_and_eom(kReplySint, false);
  }
}

}  // namespace guest
