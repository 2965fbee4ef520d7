#include "kernel/hypervisor.hpp"

namespace microhv {

Partition* Hypervisor::claim_slot(PartitionId id) {
  // 0 is "no partition" in port records, and SELF is an alias.
  if (id.value() == 0 || id.value() == tlfs::kPartitionSelf) return nullptr;
  Partition* free_slot = nullptr;
  for (auto& p : partitions_) {
    if (p.in_use() && p.id() == id) return nullptr;
    if (!p.in_use() && free_slot == nullptr) free_slot = &p;
  }
  return free_slot;
}

Partition* Hypervisor::create_partition(const PartitionConfig& config, GuestMemory& memory,
                                        InterruptSink& interrupts, ReferenceClock& clock,
                                        GuestPhysicalOverlays& overlays, GuestTlb& tlb) {
  if (config.vp_count > kMaxVps) return nullptr;
  Partition* p = claim_slot(config.id);
  if (p != nullptr) {
    p->init(*this, config, {&memory, &interrupts, &clock, &overlays, &tlb}, nullptr);
  }
  return p;
}

Partition* Hypervisor::create_service_partition(PartitionId id, MessageService& service) {
  Partition* p = claim_slot(id);
  if (p != nullptr)
    p->init(*this, {id, 0, PartitionFeatures{0, 0, 0}},
            {nullptr, nullptr, nullptr, nullptr, nullptr}, &service);
  return p;
}

Partition* Hypervisor::find_partition(Partition& caller, uint64_t id) {
  if (id == tlfs::kPartitionSelf) return &caller;
  for (auto& p : partitions_) {
    if (p.in_use() && p.id().value() == id) return &p;
  }
  return nullptr;
}

}  // namespace microhv
