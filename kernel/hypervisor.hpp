// The hypervisor's whole portable state: partitions, ports, connections and
// message buffers, guarded by one lock. Lock order: Hypervisor::lock is the
// only lock of the core; the back end takes no core lock across VM entry.
// Nothing is written to the log while it is held (SpinLockDeferringLog).
#pragma once

#include "kernel/base/spinlock.hpp"
#include "kernel/partition.hpp"
#include "kernel/ports.hpp"

namespace microhv {

// A partition id resolved for an operation one partition performs on
// another: the partition, or the status that refuses it.
struct PartitionLookup {
  tlfs::Status status;
  Partition* partition;  // nullptr unless status is SUCCESS
};

class Hypervisor {
 public:
  // nullptr when the id is in use or reserved, the VP count is out of range,
  // the parent does not exist, the quota does not fit in what the other
  // partitions left of the tables, or every partition slot is taken.
  Partition* create_partition(const PartitionConfig& config, GuestMemory& memory,
                              InterruptSink& interrupts, ReferenceClock& clock,
                              GuestPhysicalOverlays& overlays, GuestTlb& tlb);
  // A service partition (no VPs, no memory, no parent): see MessageService.
  Partition* create_service_partition(PartitionId id, MessageService& service,
                                      PartitionQuota quota);
  // Resolves a TLFS partition id as seen by `caller` (HV_PARTITION_ID_SELF
  // is the caller itself); nullptr when no partition has it.
  Partition* find_partition(Partition& caller, uint64_t id);
  // The partition `caller` names as the one it acts on (the PortPartition of
  // CreatePort and DeletePort, the ConnectionPartition of ConnectPort and
  // DisconnectPort). The TLFS pages of those calls: the caller must be that
  // partition or its parent, else ACCESS_DENIED; an id naming no partition is
  // INVALID_PARTITION_ID; one that is not active, INVALID_PARTITION_STATE.
  // microhv's services have no parent, so no guest can ever act on them.
  PartitionLookup acting_on(Partition& caller, uint64_t id);

  // What the partitions created so far have reserved of the tables.
  const PartitionQuota& reserved() const { return reserved_; }

  PortTable ports;
  // The core's one lock; its holder's log lines are written after it.
  SpinLockDeferringLog lock;

 private:
  Partition* claim_slot(PartitionId id, PartitionQuota quota);

  Partition partitions_[kMaxPartitions];
  PartitionQuota reserved_{0, 0};
};

}  // namespace microhv
