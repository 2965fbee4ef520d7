#include "synic/delivery.hpp"

#include <stddef.h>

#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

constexpr uint64_t kPendingBitInHeader = uint64_t{tlfs::kMessageFlagPending}
                                         << (8 * tlfs::kMessageFlagsOffset);

Gpa slot_of(const SynicState& s, SintIndex sint) {
  return s.sim_page() + uint64_t{sint.value()} * tlfs::kMessageSize;
}

uint16_t bit_of(SintIndex sint) {
  return static_cast<uint16_t>(1u << sint.value());
}

// The header goes in last so a guest polling MessageType never sees a type
// with a half-written payload.
bool write_slot(GuestMemory& memory, Gpa slot, const OutgoingMessage& m, uint8_t flags) {
  constexpr uint32_t kHeader = offsetof(tlfs::Message, payload);
  constexpr uint32_t kType = sizeof(m.type);
  tlfs::Message header;  // only the first kHeader bytes are used
  header.message_type = m.type;
  header.payload_size = m.payload_size;
  header.message_flags = flags;
  header.reserved = 0;
  header.origin = m.origin;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&header);
  return (m.payload_size == 0 || memory.write(slot + kHeader, m.payload, m.payload_size)) &&
         memory.write(slot + kType, bytes + kType, kHeader - kType) &&
         memory.write(slot, bytes, kType);
}

OutgoingMessage view_of(const tlfs::Message& m) {
  return {m.message_type, m.payload_size, m.origin, m.payload};
}

bool slot_is_free(GuestMemory& memory, Gpa slot, bool* free) {
  uint32_t type = 0;
  if (!memory.read(slot, &type, sizeof(type))) return false;
  *free = type == tlfs::kMessageTypeNone;
  return true;
}

void enqueue(SynicState& s, SintIndex sint, PortTable& table, uint16_t index) {
  MessageQueue& q = s.queue_of(sint);
  __atomic_fetch_or(&s.queued_sints, bit_of(sint), __ATOMIC_RELEASE);
  table.buffer(index)->next = kNoBuffer;
  if (q.empty()) {
    q.head = index;
  } else {
    table.buffer(q.tail)->next = index;
  }
  q.tail = index;
  ++q.length;
}

}  // namespace

void synic_raise(Vp& vp, SintIndex sint) {
  const SynicState& s = vp.synic;
  // A masked SINT still receives messages in its slot; only the interrupt is
  // suppressed, and it is not remembered (TLFS 11.8.4: edge semantics).
  if (s.masked(sint)) return;
  vp.partition().interrupts().raise(vp.index(), s.vector(sint), s.auto_eoi(sint));
}

bool synic_can_take_messages(Vp& vp) {
  const SynicState& s = vp.synic;
  return s.enabled() && s.sim_enabled() && vp.partition().memory().is_ram(s.sim_page(), kPageSize);
}

bool synic_can_take_events(Vp& vp) {
  const SynicState& s = vp.synic;
  return s.enabled() && s.sief_enabled() &&
         vp.partition().memory().is_ram(s.sief_page(), kPageSize);
}

tlfs::Status synic_post(Vp& vp, SintIndex sint, const OutgoingMessage& message, Port& port,
                        PortTable& table) {
  GuestMemory& memory = vp.partition().memory();
  MessageQueue& q = vp.synic.queue_of(sint);
  Gpa slot = slot_of(vp.synic, sint);
  bool free = false;
  if (q.empty() && slot_is_free(memory, slot, &free) && free &&
      write_slot(memory, slot, message, 0)) {
    synic_raise(vp, sint);
    return tlfs::Status::kSuccess;
  }
  uint16_t index = table.take_buffer(port);
  if (index == kNoBuffer) return tlfs::Status::kInsufficientBuffers;
  tlfs::Message& stored = table.buffer(index)->message;
  stored.message_type = message.type;
  stored.payload_size = message.payload_size;
  stored.message_flags = 0;
  stored.reserved = 0;
  stored.origin = message.origin;
  __builtin_memcpy(stored.payload, message.payload, message.payload_size);
  enqueue(vp.synic, sint, table, index);
  synic_drain(vp, sint);
  return tlfs::Status::kSuccess;
}

SlotOffer synic_offer(Vp& vp, SintIndex sint, const OutgoingMessage& message) {
  if (!synic_can_take_messages(vp)) return SlotOffer::kUnavailable;
  GuestMemory& memory = vp.partition().memory();
  const Gpa slot = slot_of(vp.synic, sint);
  bool free = false;
  if (!slot_is_free(memory, slot, &free)) return SlotOffer::kUnavailable;
  if (!free) {
    // As in synic_drain: the atomic OR sees a slot the guest freed since.
    uint64_t old = 0;
    if (!memory.fetch_or_u64(slot, kPendingBitInHeader, &old)) return SlotOffer::kUnavailable;
    if (static_cast<uint32_t>(old) != tlfs::kMessageTypeNone) return SlotOffer::kBusy;
  }
  // Whatever is queued for this SINT waits for the next EOM: MessagePending
  // tells the guest there is more.
  const uint8_t flags = vp.synic.queue_of(sint).empty() ? 0 : tlfs::kMessageFlagPending;
  if (!write_slot(memory, slot, message, flags)) return SlotOffer::kUnavailable;
  synic_raise(vp, sint);
  return SlotOffer::kDelivered;
}

void synic_drain(Vp& vp, SintIndex sint) {
  MessageQueue& q = vp.synic.queue_of(sint);
  if (q.empty() || !synic_can_take_messages(vp)) return;
  GuestMemory& memory = vp.partition().memory();
  PortTable& table = vp.partition().hypervisor().ports;
  Gpa slot = slot_of(vp.synic, sint);

  bool free = false;
  if (!slot_is_free(memory, slot, &free)) return;
  if (!free) {
    // Busy: flag it. The guest clears MessageType, then reads MessagePending
    // and writes EOM if set (TLFS 11.9.3). The OR is atomic and returns the
    // type at that instant, so a slot freed since our read is seen here and
    // filled now instead of waiting for an EOM that will never come.
    uint64_t old = 0;
    if (!memory.fetch_or_u64(slot, kPendingBitInHeader, &old)) return;
    if (static_cast<uint32_t>(old) != tlfs::kMessageTypeNone) return;
  }

  uint16_t index = q.head;
  MessageBuffer* buffer = table.buffer(index);
  if (buffer == nullptr) return;
  uint8_t flags = buffer->next != kNoBuffer ? tlfs::kMessageFlagPending : 0;
  if (!write_slot(memory, slot, view_of(buffer->message), flags)) return;
  q.head = buffer->next;
  if (q.head == kNoBuffer) {
    q.tail = kNoBuffer;
    __atomic_fetch_and(&vp.synic.queued_sints, static_cast<uint16_t>(~bit_of(sint)),
                       __ATOMIC_RELEASE);
  }
  --q.length;
  table.release_buffer(index);
  synic_raise(vp, sint);
}

void synic_drain_all(Vp& vp) {
  for (uint32_t pending = vp.synic.queued_sints; pending != 0; pending &= pending - 1) {
    synic_drain(vp, SintIndex(static_cast<uint8_t>(__builtin_ctz(pending))));
  }
}

tlfs::Status synic_set_event_flag(Vp& vp, SintIndex sint, uint32_t flag) {
  if (flag >= tlfs::kFlagsPerSint) return tlfs::Status::kInvalidParameter;
  if (!synic_can_take_events(vp)) return tlfs::Status::kInvalidSynicState;
  Gpa word =
      vp.synic.sief_page() + uint64_t{sint.value()} * (tlfs::kFlagsPerSint / 8) + (flag / 64) * 8;
  uint64_t bit = uint64_t{1} << (flag % 64);
  uint64_t old = 0;
  if (!vp.partition().memory().fetch_or_u64(word, bit, &old)) {
    return tlfs::Status::kInvalidSynicState;
  }
  if ((old & bit) == 0) synic_raise(vp, sint);
  return tlfs::Status::kSuccess;
}

}  // namespace microhv
