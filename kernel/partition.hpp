// Partitions and their virtual processors. A partition owns its VPs, its
// partition-wide synthetic MSRs and its privileges (TLFS "Partition
// Privilege Flags"); the features it advertises by CPUID and the MSRs it
// accepts both derive from `features`, one source of truth.
#pragma once

#include "kernel/base/types.hpp"
#include "kernel/message.hpp"
#include "kernel/platform/clock.hpp"
#include "kernel/platform/guest_memory.hpp"
#include "kernel/platform/interrupts.hpp"
#include "kernel/platform/overlays.hpp"
#include "kernel/platform/tlb.hpp"
#include "kernel/synic_state.hpp"

namespace microhv {

class Hypervisor;
class Partition;
struct Port;

// A partition implemented inside the hypervisor (the VMBus host): it has no
// VPs, and messages posted to its ports are handed to it instead of a SIM
// page. Called with Hypervisor::lock held; the returned status is the
// poster's. It may post replies through its own connections.
class MessageService {
 public:
  virtual tlfs::Status on_message(Port& port, const OutgoingMessage& message) = 0;

 protected:
  ~MessageService() = default;
};

inline constexpr uint32_t kMaxVps = 64;
static_assert(kMaxVps <= VpMask::kCapacity, "IPI and flush targets are a VpMask");

class Vp {
 public:
  Partition& partition() const { return *partition_; }
  VpIndex index() const { return index_; }
  SynicState synic;
  uint64_t vp_assist_page = 0;  // HV_X64_MSR_VP_ASSIST_PAGE, stored only

 private:
  friend class Partition;
  Partition* partition_ = nullptr;
  VpIndex index_{0};
};

struct PartitionFeatures {
  uint32_t msr_access;  // CPUID 0x40000003.EAX bits (tlfs::cpuid::kAccess*)
  uint32_t privileges;  // CPUID 0x40000003.EBX bits (kPostMessages ...)
  // CPUID 0x40000004.EAX recommendations whose hypercalls the partition
  // accepts (tlfs::cpuid::kHintRemoteTlbFlush, kHintClusterIpi,
  // kHintExProcessorMasks); a call whose hint is clear is unknown to it.
  uint32_t hints;
};

// Everything microhv implements, granted to an ordinary guest partition.
inline constexpr PartitionFeatures kFullFeatures{
    tlfs::cpuid::kAccessPartitionRefCounter | tlfs::cpuid::kAccessSynicRegs |
        tlfs::cpuid::kAccessHypercallMsrs | tlfs::cpuid::kAccessVpIndex,
    tlfs::cpuid::kPostMessages | tlfs::cpuid::kSignalEvents | tlfs::cpuid::kCreatePort |
        tlfs::cpuid::kConnectPort,
    tlfs::cpuid::kHintRemoteTlbFlush | tlfs::cpuid::kHintClusterIpi |
        tlfs::cpuid::kHintExProcessorMasks};

struct PartitionConfig {
  PartitionId id;
  uint32_t vp_count;
  PartitionFeatures features;
};

class Partition {
 public:
  PartitionId id() const { return id_; }
  bool in_use() const { return hv_ != nullptr; }
  bool active() const { return active_; }
  void set_active(bool active) { active_ = active; }
  const PartitionFeatures& features() const { return features_; }
  void set_features(const PartitionFeatures& f) { features_ = f; }
  bool has_privilege(uint32_t ebx_bit) const { return (features_.privileges & ebx_bit) != 0; }
  bool has_msr_access(uint32_t eax_bit) const { return (features_.msr_access & eax_bit) != 0; }
  bool has_hints(uint32_t hint_bits) const { return (features_.hints & hint_bits) == hint_bits; }

  uint32_t vp_count() const { return vp_count_; }
  // Bounds-checked: nullptr for an index that names no VP.
  Vp* vp(VpIndex index) { return index.value() < vp_count_ ? &vps_[index.value()] : nullptr; }
  // Brings VPs [vp_count, count) online (APs starting); never shrinks.
  bool set_vp_count(uint32_t count);

  MessageService* service() const { return service_; }
  Hypervisor& hypervisor() const { return *hv_; }
  GuestMemory& memory() const { return *memory_; }
  InterruptSink& interrupts() const { return *interrupts_; }
  ReferenceClock& clock() const { return *clock_; }
  GuestPhysicalOverlays& overlays() const { return *overlays_; }
  GuestTlb& tlb() const { return *tlb_; }

  // Partition-wide synthetic MSRs (TLFS 3.13); what they mean is
  // hypercall/msr.cpp.
  uint64_t guest_os_id = 0;
  uint64_t hypercall_msr = 0;

 private:
  friend class Hypervisor;
  // What a guest partition runs on: all five, or none for a service.
  struct Platform {
    GuestMemory* memory;
    InterruptSink* interrupts;
    ReferenceClock* clock;
    GuestPhysicalOverlays* overlays;
    GuestTlb* tlb;
  };
  void init(Hypervisor& hv, const PartitionConfig& config, const Platform& platform,
            MessageService* service);

  Hypervisor* hv_ = nullptr;
  GuestMemory* memory_ = nullptr;
  InterruptSink* interrupts_ = nullptr;
  ReferenceClock* clock_ = nullptr;
  GuestPhysicalOverlays* overlays_ = nullptr;
  GuestTlb* tlb_ = nullptr;
  MessageService* service_ = nullptr;
  PartitionId id_{0};
  bool active_ = false;
  PartitionFeatures features_{};
  uint32_t vp_count_ = 0;
  Vp vps_[kMaxVps];
};

}  // namespace microhv
