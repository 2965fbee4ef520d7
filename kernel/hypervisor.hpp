// The hypervisor's whole portable state: partitions, ports, connections and
// message buffers, guarded by one lock. Lock order: Hypervisor::lock is the
// only lock of the core; the back end takes no core lock across VM entry.
#pragma once

#include "kernel/base/spinlock.hpp"
#include "kernel/partition.hpp"
#include "kernel/ports.hpp"

namespace microhv {

inline constexpr uint32_t kMaxPartitions = 4;

class Hypervisor {
 public:
  // nullptr when the id is in use or reserved, the VP count is out of range
  // or every partition slot is taken.
  Partition* create_partition(const PartitionConfig& config, GuestMemory& memory,
                              InterruptSink& interrupts, ReferenceClock& clock,
                              GuestPhysicalOverlays& overlays, GuestTlb& tlb);
  // A service partition (no VPs, no memory): see MessageService.
  Partition* create_service_partition(PartitionId id, MessageService& service);
  // Resolves a TLFS partition id as seen by `caller` (HV_PARTITION_ID_SELF).
  Partition* find_partition(Partition& caller, uint64_t id);

  PortTable ports;
  SpinLock lock;

 private:
  Partition* claim_slot(PartitionId id);

  Partition partitions_[kMaxPartitions];
};

}  // namespace microhv
