#include "synic/delivery.hpp"

#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

constexpr uint64_t kPendingBitInHeader = uint64_t{tlfs::kMessageFlagPending}
                                         << (8 * tlfs::kMessageFlagsOffset);

Gpa slot_of(const SynicState& s, uint32_t sint) { return s.sim_page() + sint * tlfs::kMessageSize; }

void raise_sint(Vp& vp, uint32_t sint) {
  const SynicState& s = vp.synic;
  // A masked SINT still receives messages in its slot; only the interrupt is
  // suppressed, and it is not remembered (TLFS 11.8.4: edge semantics).
  if (s.masked(sint)) return;
  vp.partition().interrupts().raise(vp.index(), s.vector(sint), s.auto_eoi(sint));
}

// The header goes in last so a guest polling MessageType never sees a type
// with a half-written payload.
bool write_slot(GuestMemory& memory, Gpa slot, const tlfs::Message& message, uint8_t flags) {
  tlfs::Message copy = message;
  copy.message_flags = flags;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&copy);
  if (!memory.write(slot + 4, bytes + 4, tlfs::kMessageSize - 4)) return false;
  return memory.write(slot, &copy.message_type, sizeof(copy.message_type));
}

bool slot_is_free(GuestMemory& memory, Gpa slot, bool* free) {
  uint32_t type = 0;
  if (!memory.read(slot, &type, sizeof(type))) return false;
  *free = type == tlfs::kMessageTypeNone;
  return true;
}

void enqueue(MessageQueue& q, PortTable& table, uint16_t index) {
  table.buffer(index)->next = MessageBuffer::kNoBufferIndex;
  if (q.empty()) {
    q.head = index;
  } else {
    table.buffer(q.tail)->next = index;
  }
  q.tail = index;
  ++q.length;
}

}  // namespace

bool synic_can_take_messages(Vp& vp) {
  const SynicState& s = vp.synic;
  return s.enabled() && s.sim_enabled() && vp.partition().memory().is_ram(s.sim_page(), kPageSize);
}

bool synic_can_take_events(Vp& vp) {
  const SynicState& s = vp.synic;
  return s.enabled() && s.sief_enabled() &&
         vp.partition().memory().is_ram(s.sief_page(), kPageSize);
}

tlfs::Status synic_post(Vp& vp, uint32_t sint, const tlfs::Message& message, Port& port,
                        PortTable& table) {
  GuestMemory& memory = vp.partition().memory();
  MessageQueue& q = vp.synic.queue[sint];
  Gpa slot = slot_of(vp.synic, sint);
  bool free = false;
  if (q.empty() && slot_is_free(memory, slot, &free) && free &&
      write_slot(memory, slot, message, 0)) {
    raise_sint(vp, sint);
    return tlfs::Status::kSuccess;
  }
  uint16_t index = table.take_buffer(port);
  if (index == MessageBuffer::kNoBufferIndex) return tlfs::Status::kInsufficientBuffers;
  table.buffer(index)->message = message;
  enqueue(q, table, index);
  synic_drain(vp, sint);
  return tlfs::Status::kSuccess;
}

void synic_drain(Vp& vp, uint32_t sint) {
  if (sint >= kSintCount) return;
  MessageQueue& q = vp.synic.queue[sint];
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
  uint8_t flags = buffer->next != MessageBuffer::kNoBufferIndex ? tlfs::kMessageFlagPending : 0;
  if (!write_slot(memory, slot, buffer->message, flags)) return;
  q.head = buffer->next;
  if (q.head == MessageBuffer::kNoBufferIndex) q.tail = MessageBuffer::kNoBufferIndex;
  --q.length;
  table.release_buffer(index);
  raise_sint(vp, sint);
}

void synic_drain_all(Vp& vp) {
  for (uint32_t sint = 0; sint < kSintCount; ++sint) synic_drain(vp, sint);
}

tlfs::Status synic_set_event_flag(Vp& vp, uint32_t sint, uint32_t flag) {
  if (sint >= kSintCount || flag >= tlfs::kFlagsPerSint) return tlfs::Status::kInvalidParameter;
  if (!synic_can_take_events(vp)) return tlfs::Status::kInvalidSynicState;
  Gpa word = vp.synic.sief_page() + sint * (tlfs::kFlagsPerSint / 8) + (flag / 64) * 8;
  uint64_t bit = uint64_t{1} << (flag % 64);
  uint64_t old = 0;
  if (!vp.partition().memory().fetch_or_u64(word, bit, &old)) {
    return tlfs::Status::kInvalidSynicState;
  }
  if ((old & bit) == 0) raise_sint(vp, sint);
  return tlfs::Status::kSuccess;
}

}  // namespace microhv
