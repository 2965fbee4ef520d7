#include "kernel/hypervisor.hpp"

namespace microhv {

Partition* Hypervisor::claim_slot(PartitionId id, PartitionQuota quota) {
  // 0 is "no partition" in port records, and SELF is an alias.
  if (id.value() == 0 || id.value() == tlfs::kPartitionSelf) return nullptr;
  if (quota.ports > kMaxPorts - reserved_.ports ||
      quota.connections > kMaxConnections - reserved_.connections) {
    return nullptr;
  }
  Partition* free_slot = nullptr;
  for (auto& p : partitions_) {
    if (p.in_use() && p.id() == id) return nullptr;
    if (!p.in_use() && free_slot == nullptr) free_slot = &p;
  }
  if (free_slot != nullptr) {
    reserved_.ports += quota.ports;
    reserved_.connections += quota.connections;
  }
  return free_slot;
}

Partition* Hypervisor::create_partition(const PartitionConfig& config, GuestMemory& memory,
                                        InterruptSink& interrupts, ReferenceClock& clock,
                                        GuestPhysicalOverlays& overlays, GuestTlb& tlb) {
  if (config.vp_count > kMaxVps) return nullptr;
  Partition* parent = nullptr;
  if (config.parent.value() != 0) {
    for (auto& p : partitions_) {
      if (p.in_use() && p.id() == config.parent) parent = &p;
    }
    if (parent == nullptr) return nullptr;
  }
  Partition* p = claim_slot(config.id, config.quota);
  if (p != nullptr) {
    p->init(*this, config, parent, {&memory, &interrupts, &clock, &overlays, &tlb}, nullptr);
  }
  return p;
}

Partition* Hypervisor::create_service_partition(PartitionId id, MessageService& service,
                                                PartitionQuota quota) {
  Partition* p = claim_slot(id, quota);
  if (p != nullptr) {
    p->init(*this, {id, 0, PartitionFeatures{0, 0}, quota}, nullptr,
            {nullptr, nullptr, nullptr, nullptr, nullptr}, &service);
  }
  return p;
}

Partition* Hypervisor::find_partition(Partition& caller, uint64_t id) {
  if (id == tlfs::kPartitionSelf) return &caller;
  for (auto& p : partitions_) {
    if (p.in_use() && p.id().value() == id) return &p;
  }
  return nullptr;
}

PartitionLookup Hypervisor::acting_on(Partition& caller, uint64_t id) {
  Partition* target = find_partition(caller, id);
  if (target == nullptr) return {tlfs::Status::kInvalidPartitionId, nullptr};
  if (target != &caller && target->parent() != &caller) {
    return {tlfs::Status::kAccessDenied, nullptr};
  }
  if (!target->active()) return {tlfs::Status::kInvalidPartitionState, nullptr};
  return {tlfs::Status::kSuccess, target};
}

}  // namespace microhv
