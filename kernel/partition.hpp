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
#include "kernel/ports.hpp"
#include "kernel/synic_state.hpp"
#include "kernel/time_state.hpp"

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
  VpTimers timers;
  uint64_t vp_assist_page = 0;  // HV_X64_MSR_VP_ASSIST_PAGE, stored only
  // The guest's TSC is the host's plus this (TSC offsetting; 0 while
  // microhv does not offset). Set through set_guest_tsc_offset
  // (hypercall/time_msr.hpp) so the reference TSC page follows.
  int64_t guest_tsc_offset = 0;

 private:
  friend class Partition;
  Partition* partition_ = nullptr;
  VpIndex index_{0};
};

// What a partition may use, as CPUID 0x40000003/0x40000004 report it: the
// one source of truth for both the CPUID bits and the MSRs that exist.
struct PartitionFeatures {
  uint32_t msr_access;  // CPUID 0x40000003.EAX bits (tlfs::cpuid::kAccess*)
  uint32_t privileges;  // CPUID 0x40000003.EBX bits (kPostMessages ...)
  uint32_t misc = 0;    // CPUID 0x40000003.EDX bits (kFeature*)
  // CPUID 0x40000004.EAX bits: relaxed timing, and the recommendations
  // whose hypercalls the partition accepts (tlfs::cpuid::kHintRemoteTlbFlush,
  // kHintClusterIpi, kHintExProcessorMasks); a call whose hint is clear is
  // unknown to it.
  uint32_t hints = 0;
};

// Everything microhv implements, granted to an ordinary guest partition.
// The platform takes away what the machine cannot back (restrict_features):
// synthetic timers need a host timer, the TSC page and the frequency MSRs a
// measured TSC rate, the invariant TSC a TSC that is the same on every CPU.
// Relaxed timing (hint bit 5) costs nothing: microhv makes no timing
// promise a guest could check (exits, the serial log and a crash report all
// take unbounded time), so a guest should not treat lateness as a failure.
// `static`: an ODR-used inline variable would be a GLOB_DAT relocation GNU-EFI does
// not apply (scripts/check-relocs.sh).
static constexpr PartitionFeatures kFullFeatures{
    tlfs::cpuid::kAccessPartitionRefCounter | tlfs::cpuid::kAccessSynicRegs |
        tlfs::cpuid::kAccessHypercallMsrs | tlfs::cpuid::kAccessVpIndex |
        tlfs::cpuid::kAccessSynicTimers | tlfs::cpuid::kAccessPartitionReferenceTsc |
        tlfs::cpuid::kAccessFrequencyMsrs | tlfs::cpuid::kAccessTscInvariant,
    tlfs::cpuid::kPostMessages | tlfs::cpuid::kSignalEvents | tlfs::cpuid::kCreatePort |
        tlfs::cpuid::kConnectPort,
    tlfs::cpuid::kFeatureFrequencyMsrs | tlfs::cpuid::kFeatureGuestCrashMsrs |
        tlfs::cpuid::kFeatureStimerDirectMode,
    tlfs::cpuid::kHintRelaxedTiming | tlfs::cpuid::kHintRemoteTlbFlush |
        tlfs::cpuid::kHintClusterIpi | tlfs::cpuid::kHintExProcessorMasks};

// What the platform can back.
struct PlatformTimeSupport {
  bool host_timer = false;     // a per-CPU timer for synthetic timers (VMX-preemption timer)
  bool invariant_tsc = false;  // CPUID.80000007:EDX[8] and one TSC on every CPU
};
// `wanted` minus what `base` and `support` cannot back.
PartitionFeatures restrict_features(PartitionFeatures wanted, const TimeBase& base,
                                    const PlatformTimeSupport& support);

// How much of the shared port tables a partition may hold at once: the
// TLFS takes ports from the receiver's memory pool and connections from the
// sender's, and an exhausted pool is INSUFFICIENT_MEMORY (HvCallCreatePort,
// HvCallConnectPort). A deleted port still holding accepted messages counts
// until they are delivered. Quotas are reserved when a partition is
// created, so no partition can use up another's share.
struct PartitionQuota {
  uint32_t ports;
  uint32_t connections;
};

// Partitions microhv can hold, services included.
inline constexpr uint32_t kMaxPartitions = 4;

// An equal share of the tables for every partition slot.
constexpr PartitionQuota kDefaultQuota{kMaxPorts / kMaxPartitions,
                                       kMaxConnections / kMaxPartitions};

struct PartitionConfig {
  PartitionId id;
  uint32_t vp_count;
  PartitionFeatures features;
  PartitionQuota quota = kDefaultQuota;
  // The partition's parent (0: none). TLFS HvCallCreatePort/DeletePort/
  // ConnectPort/DisconnectPort: a partition acts on itself, or its parent on
  // it. Guests of microhv have none; the host tests use one.
  PartitionId parent{0};
  // The TSC and APIC-timer rates the partition's time enlightenments use.
  TimeBase time{};
};

class Partition {
 public:
  PartitionId id() const { return id_; }
  Partition* parent() const { return parent_; }
  const PartitionQuota& quota() const { return quota_; }
  bool in_use() const { return hv_ != nullptr; }
  // Atomic: the back end reads it on every VM entry without the lock (a
  // stopped partition's VPs park, vmx/smp.hpp).
  bool active() const { return __atomic_load_n(&active_, __ATOMIC_ACQUIRE); }
  void set_active(bool active) { __atomic_store_n(&active_, active, __ATOMIC_RELEASE); }
  const PartitionFeatures& features() const { return features_; }
  void set_features(const PartitionFeatures& f) { features_ = f; }
  bool has_privilege(uint32_t ebx_bit) const { return (features_.privileges & ebx_bit) != 0; }
  bool has_msr_access(uint32_t eax_bit) const { return (features_.msr_access & eax_bit) != 0; }
  bool has_hints(uint32_t hint_bits) const { return (features_.hints & hint_bits) == hint_bits; }

  uint32_t vp_count() const { return vp_count_; }
  // Bounds-checked: nullptr for an index that names no VP.
  Vp* vp(VpIndex index) { return index.value() < vp_count_ ? &vps_[index.value()] : nullptr; }
  const Vp* vp(VpIndex index) const {
    return index.value() < vp_count_ ? &vps_[index.value()] : nullptr;
  }
  // Brings VPs [vp_count, count) online (APs starting); never shrinks.
  bool set_vp_count(uint32_t count);

  MessageService* service() const { return service_; }
  Hypervisor& hypervisor() const { return *hv_; }
  GuestMemory& memory() const { return *memory_; }
  InterruptSink& interrupts() const { return *interrupts_; }
  ReferenceClock& clock() const { return *clock_; }
  // Reference time now (TLFS 12.4), from the host TSC of the calling CPU.
  uint64_t reference_time() const { return reference_time_at(clock_->read_tsc(), time.scale); }
  GuestPhysicalOverlays& overlays() const { return *overlays_; }
  GuestTlb& tlb() const { return *tlb_; }

  // Partition-wide synthetic MSRs (TLFS 3.13); what they mean is
  // hypercall/msr.cpp.
  uint64_t guest_os_id = 0;
  uint64_t hypercall_msr = 0;
  PartitionTime time;
  CrashState crash;

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
  void init(Hypervisor& hv, const PartitionConfig& config, Partition* parent,
            const Platform& platform, MessageService* service);

  Hypervisor* hv_ = nullptr;
  GuestMemory* memory_ = nullptr;
  InterruptSink* interrupts_ = nullptr;
  ReferenceClock* clock_ = nullptr;
  GuestPhysicalOverlays* overlays_ = nullptr;
  GuestTlb* tlb_ = nullptr;
  MessageService* service_ = nullptr;
  Partition* parent_ = nullptr;
  PartitionQuota quota_{0, 0};
  PartitionId id_{0};
  bool active_ = false;
  PartitionFeatures features_{};
  uint32_t vp_count_ = 0;
  Vp vps_[kMaxVps];
};

}  // namespace microhv
