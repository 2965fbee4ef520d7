#include "kernel/partition.hpp"

namespace microhv {

void Partition::init(Hypervisor& hv, const PartitionConfig& config, const Platform& platform,
                     MessageService* service) {
  hv_ = &hv;
  memory_ = platform.memory;
  interrupts_ = platform.interrupts;
  clock_ = platform.clock;
  overlays_ = platform.overlays;
  tlb_ = platform.tlb;
  service_ = service;
  id_ = config.id;
  features_ = config.features;
  active_ = true;
  vp_count_ = 0;
  set_vp_count(config.vp_count);
}

bool Partition::set_vp_count(uint32_t count) {
  if (count > kMaxVps || count < vp_count_) return false;
  for (uint32_t i = vp_count_; i < count; ++i) {
    vps_[i].partition_ = this;
    vps_[i].index_ = VpIndex(i);
    vps_[i].synic = SynicState();
    vps_[i].vp_assist_page = 0;
  }
  vp_count_ = count;
  return true;
}

}  // namespace microhv
