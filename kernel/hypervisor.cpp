#include "kernel/hypervisor.hpp"

namespace microhv {

Partition* Hypervisor::create_partition(const PartitionConfig& config, GuestMemory& memory,
                                        InterruptSink& interrupts, ReferenceClock& clock) {
  // 0 is "no partition" in port records, and SELF is an alias.
  if (config.id.value() == 0 || config.id == kSelfPartition) return nullptr;
  if (config.vp_count > kMaxVps) return nullptr;
  Partition* free_slot = nullptr;
  for (auto& p : partitions_) {
    if (p.in_use() && p.id() == config.id) return nullptr;
    if (!p.in_use() && free_slot == nullptr) free_slot = &p;
  }
  if (free_slot != nullptr) free_slot->init(*this, config, memory, interrupts, clock);
  return free_slot;
}

Partition* Hypervisor::find_partition(Partition& caller, uint64_t id) {
  if (id == tlfs::kPartitionSelf) return &caller;
  for (auto& p : partitions_) {
    if (p.in_use() && p.id().value() == id) return &p;
  }
  return nullptr;
}

}  // namespace microhv
