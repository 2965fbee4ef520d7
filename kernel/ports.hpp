// Ports, connections and the message buffers behind them (TLFS 11.2-11.4).
// All tables are fixed-size arrays; every index is bounds-checked. Ports and
// connections are found by (partition, id) through a hash index
// (kernel/slot_index.hpp): one probe on the PostMessage path, however many
// are in use.
//
// A port owns kMessageBuffersPerPort buffers (TLFS: 16 guest message buffers
// per port). A message that cannot go straight into its SIM slot waits in one
// of them, linked into the target VP's per-SINT FIFO. A deleted port whose
// buffers still hold accepted messages stays "draining" until they are
// delivered: an accepted message is delivered exactly once.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/base/types.hpp"
#include "kernel/message.hpp"
#include "kernel/slot_index.hpp"

namespace microhv {

class Partition;

inline constexpr uint32_t kMaxPorts = 64;
inline constexpr uint32_t kMaxConnections = 128;
inline constexpr uint32_t kPoolSize = kMaxPorts * tlfs::kMessageBuffersPerPort;

enum class PortState : uint8_t { kFree, kActive, kDraining };

struct Port {
  PortState state = PortState::kFree;
  uint32_t generation = 0;  // bumped on delete: stale connections see a deleted port
  Partition* owner = nullptr;
  PortId id{0};
  tlfs::PortType type = tlfs::PortType::kMessage;
  SintIndex target_sint{0};
  VpIndex target_vp{0};  // may be tlfs::kAnyVp
  uint16_t base_flag = 0;
  uint16_t flag_count = 0;
  PartitionId connection_partition{0};  // 0: any partition may connect
  uint16_t free_buffers = 0xFFFF;       // bit i: buffer i of this port is free
  // Made by one of microhv's services in a guest partition (the VMBus
  // host's reply port): only the service may change it, a guest's
  // DeletePort is ACCESS_DENIED.
  bool pinned = false;
};

struct Connection {
  bool in_use = false;
  Partition* owner = nullptr;
  ConnectionId id{0};
  uint16_t port_slot = 0;
  uint32_t port_generation = 0;
};

class PortTable {
 public:
  // The active port `owner` has under `id`, or nullptr.
  Port* find_port(const Partition* owner, PortId id);
  // Takes a kFree slot for `fields` (state, generation and buffers are the
  // table's) and makes it the active port of (fields.owner, fields.id);
  // nullptr when every slot is taken. Precondition: no active port has that
  // key.
  Port* add_port(const Port& fields);
  // Slots `owner` holds: live ports and deleted ones still draining.
  uint32_t ports_held_by(const Partition* owner) const;
  Port* port_at(uint32_t slot) { return slot < kMaxPorts ? &ports_[slot] : nullptr; }
  uint16_t slot_of(const Port& p) const { return static_cast<uint16_t>(&p - ports_); }

  Connection* find_connection(const Partition* owner, ConnectionId id);
  // A connection of `owner` under `id` to `port`; nullptr when every slot
  // is taken. Precondition: `owner` has no connection under `id`.
  Connection* add_connection(Partition* owner, ConnectionId id, const Port& port);
  void remove_connection(Connection& c);
  uint32_t connections_held_by(const Partition* owner) const;
  // The live port behind a connection, or nullptr if it was deleted.
  Port* port_of(const Connection& c);

  // Buffer management: buffer index = port slot * 16 + i.
  uint16_t take_buffer(Port& port);  // kNoBuffer when the port has none free
  void release_buffer(uint16_t index);
  MessageBuffer* buffer(uint16_t index) { return index < kPoolSize ? &pool_[index] : nullptr; }
  uint32_t free_buffer_count(const Port& port) const;

  void delete_port(Port& port);  // kDraining if buffers are in use, else kFree

 private:
  Port ports_[kMaxPorts];
  Connection connections_[kMaxConnections];
  SlotIndex<kMaxPorts> port_index_;              // active ports only
  SlotIndex<kMaxConnections> connection_index_;  // connections in use
  MessageBuffer pool_[kPoolSize];
};

}  // namespace microhv
