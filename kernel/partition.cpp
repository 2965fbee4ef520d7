#include "kernel/partition.hpp"

namespace microhv {

void Partition::init(Hypervisor& hv, const PartitionConfig& config, Partition* parent,
                     const Platform& platform, MessageService* service) {
  hv_ = &hv;
  parent_ = parent;
  quota_ = config.quota;
  memory_ = platform.memory;
  interrupts_ = platform.interrupts;
  clock_ = platform.clock;
  overlays_ = platform.overlays;
  tlb_ = platform.tlb;
  service_ = service;
  id_ = config.id;
  features_ = config.features;
  active_ = true;
  time = PartitionTime{};
  time.base = config.time;
  // Reference time starts at 0 now (TLFS 12.4: since the partition started).
  if (clock_ != nullptr) time.scale = reference_scale(config.time.tsc_hz, clock_->read_tsc());
  crash = CrashState{};
  vp_count_ = 0;
  set_vp_count(config.vp_count);
}

bool Partition::set_vp_count(uint32_t count) {
  if (count > kMaxVps || count < vp_count_) return false;
  for (uint32_t i = vp_count_; i < count; ++i) {
    vps_[i].partition_ = this;
    vps_[i].index_ = VpIndex(i);
    vps_[i].synic = SynicState();
    vps_[i].timers = VpTimers{};
    vps_[i].guest_tsc_offset = 0;
    vps_[i].vp_assist_page = 0;
  }
  vp_count_ = count;
  return true;
}

}  // namespace microhv

namespace microhv {

PartitionFeatures restrict_features(PartitionFeatures f, const TimeBase& base,
                                    const PlatformTimeSupport& support) {
  namespace c = tlfs::cpuid;
  if (!support.host_timer) {
    f.msr_access &= ~c::kAccessSynicTimers;
    f.misc &= ~c::kFeatureStimerDirectMode;
  }
  if (tsc_scale_for(base.tsc_hz) == 0) {
    // TIME_REF_COUNT, the page and the timers all count with this scale.
    f.msr_access &= ~(c::kAccessPartitionReferenceTsc | c::kAccessPartitionRefCounter |
                      c::kAccessSynicTimers | c::kAccessTscInvariant);
    f.misc &= ~c::kFeatureStimerDirectMode;
  }
  if (base.tsc_hz == 0 || base.apic_hz == 0) {
    f.msr_access &= ~c::kAccessFrequencyMsrs;
    f.misc &= ~c::kFeatureFrequencyMsrs;
  }
  if (!support.invariant_tsc) f.msr_access &= ~c::kAccessTscInvariant;
  return f;
}

}  // namespace microhv
