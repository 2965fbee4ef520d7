#include "kernel/ports.hpp"

namespace microhv {
namespace {
constexpr uint32_t kBuffersPerPort = tlfs::kMessageBuffersPerPort;
static_assert(kBuffersPerPort == 16, "free_buffers is a 16-bit map");
static_assert(kPoolSize < kNoBuffer);
}  // namespace

Port* PortTable::find_port(const Partition* owner, PortId id) {
  const uint16_t slot = port_index_.find(owner, id.value(), [&](uint16_t s) {
    const Port& p = ports_[s];
    return p.state == PortState::kActive && p.owner == owner && p.id == id;
  });
  return slot < kMaxPorts ? &ports_[slot] : nullptr;
}

Port* PortTable::add_port(const Port& fields) {
  for (auto& p : ports_) {
    if (p.state != PortState::kFree) continue;
    const uint32_t generation = p.generation;
    p = fields;
    p.generation = generation;
    p.free_buffers = 0xFFFF;
    p.state = PortState::kActive;
    port_index_.insert(p.owner, p.id.value(), slot_of(p));
    return &p;
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
  const uint16_t slot = connection_index_.find(owner, id.value(), [&](uint16_t s) {
    const Connection& c = connections_[s];
    return c.in_use && c.owner == owner && c.id == id;
  });
  return slot < kMaxConnections ? &connections_[slot] : nullptr;
}

Connection* PortTable::add_connection(Partition* owner, ConnectionId id, const Port& port) {
  for (auto& c : connections_) {
    if (c.in_use) continue;
    c = Connection{true, owner, id, slot_of(port), port.generation};
    connection_index_.insert(owner, id.value(), static_cast<uint16_t>(&c - connections_));
    return &c;
  }
  return nullptr;
}

void PortTable::remove_connection(Connection& c) {
  if (!c.in_use) return;
  connection_index_.erase(c.owner, c.id.value(), static_cast<uint16_t>(&c - connections_));
  c = Connection{};
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
  if (port.state == PortState::kActive)
    port_index_.erase(port.owner, port.id.value(), slot_of(port));
  ++port.generation;
  port.state = port.free_buffers == 0xFFFF ? PortState::kFree : PortState::kDraining;
}

}  // namespace microhv
