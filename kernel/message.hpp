// Messages inside the core: one on its way to a SIM slot (OutgoingMessage)
// and one waiting in a port's buffer (MessageBuffer), linked into a VP's
// per-SINT FIFO by buffer index (kernel/synic_state.hpp).
#pragma once

#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"

namespace microhv {

// A message on its way to a SIM slot: the header fields and a pointer to its
// payload_size payload bytes, so the payload moves from the caller's input
// snapshot to the slot in one copy. Only the first payload_size bytes are
// transferred (TLFS 11.9); slot bytes after them are not written.
struct OutgoingMessage {
  uint32_t type;
  uint8_t payload_size;
  uint64_t origin;
  const uint8_t* payload;  // payload_size bytes
};

// Index of a MessageBuffer in the port table's pool; kNoBuffer: none.
inline constexpr uint16_t kNoBuffer = 0xFFFF;

struct MessageBuffer {
  tlfs::Message message;
  uint16_t next = kNoBuffer;  // the next buffer in the same FIFO
};

}  // namespace microhv
