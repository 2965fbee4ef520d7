#include "kernel/ports.hpp"

namespace microhv {
namespace {
constexpr uint32_t kBuffersPerPort = tlfs::kMessageBuffersPerPort;
static_assert(kBuffersPerPort == 16, "free_buffers is a 16-bit map");
static_assert(kPoolSize < kNoBuffer);
}  // namespace

Port* PortTable::find_port(const Partition* owner, PortId id) {
  for (auto& p : ports_) {
    if (p.state == PortState::kActive && p.owner == owner && p.id == id) return &p;
  }
  return nullptr;
}

Port* PortTable::allocate_port() {
  for (auto& p : ports_) {
    if (p.state == PortState::kFree) return &p;
  }
  return nullptr;
}

uint32_t PortTable::ports_held_by(const Partition* owner) const {
  uint32_t n = 0;
  for (const auto& p : ports_) n += (p.state != PortState::kFree && p.owner == owner) ? 1 : 0;
  return n;
}

uint32_t PortTable::connections_held_by(const Partition* owner) const {
  uint32_t n = 0;
  for (const auto& c : connections_) n += (c.in_use && c.owner == owner) ? 1 : 0;
  return n;
}

Connection* PortTable::find_connection(const Partition* owner, ConnectionId id) {
  for (auto& c : connections_) {
    if (c.in_use && c.owner == owner && c.id == id) return &c;
  }
  return nullptr;
}

Connection* PortTable::allocate_connection() {
  for (auto& c : connections_) {
    if (!c.in_use) return &c;
  }
  return nullptr;
}

Port* PortTable::port_of(const Connection& c) {
  Port* p = port_at(c.port_slot);
  if (p == nullptr || p->state != PortState::kActive || p->generation != c.port_generation) {
    return nullptr;
  }
  return p;
}

uint16_t PortTable::take_buffer(Port& port) {
  if (port.free_buffers == 0) return kNoBuffer;
  unsigned i = static_cast<unsigned>(__builtin_ctz(port.free_buffers));
  port.free_buffers = static_cast<uint16_t>(port.free_buffers & ~(1u << i));
  uint16_t index = static_cast<uint16_t>(slot_of(port) * kBuffersPerPort + i);
  pool_[index].next = kNoBuffer;
  return index;
}

void PortTable::release_buffer(uint16_t index) {
  if (index >= kPoolSize) return;
  Port& port = ports_[index / kBuffersPerPort];
  port.free_buffers = static_cast<uint16_t>(port.free_buffers | (1u << (index % kBuffersPerPort)));
  if (port.state == PortState::kDraining && port.free_buffers == 0xFFFF) {
    port.state = PortState::kFree;
  }
}

uint32_t PortTable::free_buffer_count(const Port& port) const {
  return static_cast<uint32_t>(__builtin_popcount(port.free_buffers));
}

void PortTable::delete_port(Port& port) {
  ++port.generation;
  port.state = port.free_buffers == 0xFFFF ? PortState::kFree : PortState::kDraining;
}

}  // namespace microhv
