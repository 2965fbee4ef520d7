// Hyper-V Top Level Functional Specification (TLFS) constants and wire
// layouts. Shared by the hypervisor, the host tests and the guest programs,
// so it holds facts only: no behaviour.
#pragma once

#include <stdint.h>

namespace microhv::tlfs {

// ---- Hypercall status codes (TLFS "HV_STATUS").
enum class Status : uint16_t {
  kSuccess = 0x0000,
  kInvalidHypercallCode = 0x0002,
  kInvalidHypercallInput = 0x0003,
  kInvalidAlignment = 0x0004,
  kInvalidParameter = 0x0005,
  kAccessDenied = 0x0006,
  kInvalidPartitionState = 0x0007,
  kOperationDenied = 0x0008,
  kInsufficientMemory = 0x000B,
  kInvalidPartitionId = 0x000D,
  kInvalidVpIndex = 0x000E,
  kInvalidPortId = 0x0011,
  kInvalidConnectionId = 0x0012,
  kInsufficientBuffers = 0x0013,
  kInvalidSynicState = 0x0018,
  kNoResources = 0x001D,
  kTimeout = 0x0078,
};

const char* status_name(Status s);

// ---- Call codes. Port calls use the numbering of the current online TLFS
// (CreatePort 0x95, ConnectPort 0x96); Delete and Disconnect kept the v2.0
// numbers (0x58, 0x5B) there too.
enum class CallCode : uint16_t {
  kFlushVirtualAddressSpace = 0x0002,
  kFlushVirtualAddressList = 0x0003,  // rep
  kSendSyntheticClusterIpi = 0x000B,
  kFlushVirtualAddressSpaceEx = 0x0013,  // variable header
  kFlushVirtualAddressListEx = 0x0014,   // rep, variable header
  kSendSyntheticClusterIpiEx = 0x0015,   // variable header
  kDeletePort = 0x0058,
  kDisconnectPort = 0x005B,
  kPostMessage = 0x005C,
  kSignalEvent = 0x005D,
  kCreatePort = 0x0095,
  kConnectPort = 0x0096,
};

// ---- Hypercall input value (RCX) layout, TLFS "Hypercall Inputs".
namespace control {
inline constexpr uint64_t kCallCodeMask = 0xFFFFull;  // 15:0
inline constexpr uint64_t kFastBit = 1ull << 16;      // 16
inline constexpr unsigned kVarHeaderShift = 17;       // 26:17
inline constexpr uint64_t kVarHeaderMask = 0x3FFull << 17;
inline constexpr uint64_t kNestedBit = 1ull << 31;  // 31
inline constexpr unsigned kRepCountShift = 32;      // 43:32
inline constexpr uint64_t kRepCountMask = 0xFFFull << 32;
inline constexpr unsigned kRepStartShift = 48;  // 59:48
inline constexpr uint64_t kRepStartMask = 0xFFFull << 48;
// 30:27, 47:44 and 63:60 are reserved and must be zero.
inline constexpr uint64_t kReservedMask = (0xFull << 27) | (0xFull << 44) | (0xFull << 60);
inline constexpr uint32_t kMaxReps = 0xFFF;  // 12-bit rep count and rep start

constexpr uint32_t var_header_qwords(uint64_t c) {
  return static_cast<uint32_t>((c & kVarHeaderMask) >> kVarHeaderShift);
}
constexpr uint32_t rep_count(uint64_t c) {
  return static_cast<uint32_t>((c & kRepCountMask) >> kRepCountShift);
}
constexpr uint32_t rep_start(uint64_t c) {
  return static_cast<uint32_t>((c & kRepStartMask) >> kRepStartShift);
}
// The input value a continued rep call is re-executed with (TLFS "Hypercall
// Continuation": the hypervisor updates the rep start index in RCX).
constexpr uint64_t with_rep_start(uint64_t c, uint32_t start) {
  return (c & ~kRepStartMask) | (static_cast<uint64_t>(start & kMaxReps) << kRepStartShift);
}
}  // namespace control

// Result value (RAX): 15:0 status, 43:32 reps completed.
constexpr uint64_t make_result(Status s, uint32_t reps_completed = 0) {
  return static_cast<uint64_t>(s) | (static_cast<uint64_t>(reps_completed & 0xFFF) << 32);
}

// ---- Synthetic MSRs (TLFS appendix "Synthetic MSRs"). The hypervisor owns
// the whole range 0x40000000-0x400001FF (the crash MSRs sit at 0x40000100,
// TSC_INVARIANT_CONTROL at 0x40000118); an MSR in it that a partition may
// not use (or that does not exist) is #GP.
namespace msr {
inline constexpr uint32_t kFirst = 0x40000000;
inline constexpr uint32_t kLast = 0x400001FF;
constexpr bool is_synthetic(uint32_t m) {
  return m >= kFirst && m <= kLast;
}
inline constexpr uint32_t kGuestOsId = 0x40000000;
inline constexpr uint32_t kHypercall = 0x40000001;
inline constexpr uint32_t kVpIndex = 0x40000002;
inline constexpr uint32_t kVpAssistPage = 0x40000073;
inline constexpr uint32_t kTimeRefCount = 0x40000020;
inline constexpr uint32_t kReferenceTsc = 0x40000021;
inline constexpr uint32_t kTscFrequency = 0x40000022;
inline constexpr uint32_t kApicFrequency = 0x40000023;
inline constexpr uint32_t kStimer0Config = 0x400000B0;  // STIMERn_CONFIG = kStimer0Config + 2n
inline constexpr uint32_t kStimer0Count = 0x400000B1;   // STIMERn_COUNT = kStimer0Count + 2n
inline constexpr uint32_t kStimer3Count = 0x400000B7;
inline constexpr uint32_t kCrashP0 = 0x40000100;  // P0..P4: 0x40000100..0x40000104
inline constexpr uint32_t kCrashP4 = 0x40000104;
inline constexpr uint32_t kCrashCtl = 0x40000105;
inline constexpr uint32_t kTscInvariantControl = 0x40000118;
inline constexpr uint32_t kScontrol = 0x40000080;
inline constexpr uint32_t kSversion = 0x40000081;
inline constexpr uint32_t kSiefp = 0x40000082;
inline constexpr uint32_t kSimp = 0x40000083;
inline constexpr uint32_t kEom = 0x40000084;
inline constexpr uint32_t kSint0 = 0x40000090;
inline constexpr uint32_t kSint15 = 0x4000009F;
}  // namespace msr

// HV_X64_MSR_HYPERCALL (TLFS 3.13): 63:12 GPA page number of the hypercall
// page, 11:2 reserved, 1 locked (further writes are ignored), 0 enable.
namespace hypercall_msr {
inline constexpr uint64_t kEnable = 1ull << 0;
inline constexpr uint64_t kLocked = 1ull << 1;
inline constexpr uint64_t kReserved = 0xFFCull;
inline constexpr uint64_t kPageMask = ~0xFFFull;
}  // namespace hypercall_msr

// HV_X64_MSR_VP_ASSIST_PAGE: 63:12 GPA page number, 11:1 reserved, 0 enable.
namespace vp_assist_msr {
inline constexpr uint64_t kEnable = 1ull << 0;
inline constexpr uint64_t kReserved = 0xFFEull;
}  // namespace vp_assist_msr

// SCONTROL bit 0 enables the SynIC; SIMP and SIEFP hold a GPA page number
// in 63:12 and an enable bit 0 (TLFS 11.8).
namespace synic_msr {
inline constexpr uint64_t kScontrolEnable = 1ull << 0;
inline constexpr uint64_t kPageEnable = 1ull << 0;
inline constexpr uint64_t kPageMask = ~0xFFFull;
}  // namespace synic_msr

inline constexpr uint32_t kSintCount = 16;  // SINT0..SINT15 per VP

// HV_X64_MSR_REFERENCE_TSC (TLFS 12.7.1): 63:12 GPA page number, 11:1
// reserved, 0 enable. The page (HV_REFERENCE_TSC_PAGE) holds the sequence,
// scale and offset; reference time = ((tsc * scale) >> 64) + offset, in
// 100 ns units. Sequence 0 means "not valid now: read TIME_REF_COUNT".
namespace reference_tsc_msr {
inline constexpr uint64_t kEnable = 1ull << 0;
inline constexpr uint64_t kPageMask = ~0xFFFull;
}  // namespace reference_tsc_msr
struct ReferenceTscPage {
  uint32_t sequence;
  uint32_t reserved1;
  uint64_t scale;
  int64_t offset;
};
static_assert(sizeof(ReferenceTscPage) == 24);
inline constexpr uint32_t kTscSequenceInvalid = 0;
inline constexpr uint64_t kReferenceHz = 10'000'000;  // reference time counts 100 ns units

// Synthetic timers (TLFS 12.3): four per VP. STIMERn_CONFIG bits.
inline constexpr uint32_t kStimerCount = 4;
namespace stimer_config {
inline constexpr uint64_t kEnable = 1ull << 0;
inline constexpr uint64_t kPeriodic = 1ull << 1;
inline constexpr uint64_t kLazy = 1ull << 2;
inline constexpr uint64_t kAutoEnable = 1ull << 3;
inline constexpr unsigned kVectorShift = 4;  // 11:4 direct-mode APIC vector
inline constexpr uint64_t kVectorMask = 0xFFull << 4;
inline constexpr uint64_t kDirectMode = 1ull << 12;
inline constexpr unsigned kSintShift = 16;  // 19:16 SINTx (message mode)
inline constexpr uint64_t kSintMask = 0xFull << 16;
inline constexpr uint64_t kDefined =
    kEnable | kPeriodic | kLazy | kAutoEnable | kVectorMask | kDirectMode | kSintMask;
}  // namespace stimer_config
// The timer-expired message (HV_TIMER_MESSAGE_PAYLOAD), type 0x80000010.
inline constexpr uint32_t kMessageTypeTimerExpired = 0x80000010u;
struct TimerMessagePayload {
  uint32_t timer_index;
  uint32_t reserved;
  uint64_t expiration_time;  // reference time the timer was due
  uint64_t delivery_time;    // reference time the message was written
};
static_assert(sizeof(TimerMessagePayload) == 24);

// Guest crash MSRs (TLFS "Guest crash enlightenment"): P0-P4 hold the
// guest's parameters; CRASH_CTL reads the capabilities and a write with
// kNotify reports the crash. With kCrashMessage too, P3 is the GPA and P4
// the size of a text message.
namespace crash_ctl {
inline constexpr uint64_t kNotify = 1ull << 63;
inline constexpr uint64_t kCrashMessage = 1ull << 62;
inline constexpr uint64_t kDefined = kNotify | kCrashMessage;
}  // namespace crash_ctl
inline constexpr uint32_t kCrashParameterCount = 5;
inline constexpr uint64_t kCrashMessageMax = 4096;  // one page of text

// HV_X64_MSR_TSC_INVARIANT_CONTROL bit 0: expose the invariant TSC.
inline constexpr uint64_t kTscInvariantExpose = 1ull << 0;

namespace sint_bits {
inline constexpr uint64_t kVectorMask = 0xFF;
inline constexpr uint64_t kMasked = 1ull << 16;
inline constexpr uint64_t kAutoEoi = 1ull << 17;
inline constexpr uint64_t kPolling = 1ull << 18;
inline constexpr uint64_t kWritable = kVectorMask | kMasked | kAutoEoi | kPolling;
inline constexpr uint64_t kReset = kMasked;  // 0x10000
}  // namespace sint_bits

inline constexpr uint64_t kSversionValue = 1;

// ---- SIM and SIEF pages (TLFS 11.9, 11.10).
inline constexpr uint32_t kMessageSize = 256;
inline constexpr uint32_t kMaxPayload = 240;
inline constexpr uint32_t kMessageTypeNone = 0;
inline constexpr uint32_t kMessageTypeHypervisorBit = 0x80000000u;
inline constexpr uint8_t kMessageFlagPending = 0x01;
inline constexpr uint32_t kFlagsPerSint = 2048;  // 256 bytes of flags per SINT

struct Message {  // HV_MESSAGE
  uint32_t message_type;
  uint8_t payload_size;
  uint8_t message_flags;  // bit 0: MessagePending
  uint16_t reserved;
  uint64_t origin;  // sender port id (TLFS: HV_PORT_ID in the low 32 bits)
  uint8_t payload[kMaxPayload];
};
static_assert(sizeof(Message) == kMessageSize);
inline constexpr uint32_t kMessageFlagsOffset = 5;

// ---- Hypercall input blocks.
struct PostMessageInput {  // HvCallPostMessage 0x5C
  uint32_t connection_id;
  uint32_t rsvdz;
  uint32_t message_type;
  uint32_t payload_size;
  uint8_t payload[kMaxPayload];
};
static_assert(sizeof(PostMessageInput) == 256);

struct SignalEventInput {  // HvCallSignalEvent 0x5D
  uint32_t connection_id;
  uint16_t flag_number;
  uint16_t rsvdz;
};
static_assert(sizeof(SignalEventInput) == 8);

enum class PortType : uint32_t { kMessage = 1, kEvent = 2, kMonitor = 3 };

struct PortInfo {  // HV_PORT_INFO
  uint32_t port_type;
  uint32_t padding;
  uint32_t target_sint;  // message and event ports
  uint32_t target_vp;
  uint16_t base_flag_number;  // event ports only
  uint16_t flag_count;
  uint32_t rsvdz;
};
static_assert(sizeof(PortInfo) == 24);

struct CreatePortInput {  // HvCallCreatePort 0x95
  uint64_t port_partition;
  uint32_t port_id;
  uint8_t port_vtl;
  uint8_t min_connection_vtl;
  uint16_t rsvdz0;
  uint64_t connection_partition;
  PortInfo port_info;
  uint64_t proximity_domain_info;
};
static_assert(sizeof(CreatePortInput) == 56);

struct ConnectionInfo {  // HV_CONNECTION_INFO
  uint32_t port_type;
  uint32_t padding;
  uint64_t rsvdz[3];
};
static_assert(sizeof(ConnectionInfo) == 32);

struct ConnectPortInput {  // HvCallConnectPort 0x96
  uint64_t connection_partition;
  uint32_t connection_id;
  uint8_t connection_vtl;
  uint8_t rsvdz0;
  uint16_t rsvdz1;
  uint64_t port_partition;
  uint32_t port_id;
  uint32_t rsvdz2;
  ConnectionInfo connection_info;
  uint64_t proximity_domain_info;
};
static_assert(sizeof(ConnectPortInput) == 72);

struct DeletePortInput {  // HvCallDeletePort 0x58
  uint64_t port_partition;
  uint32_t port_id;
  uint32_t rsvdz;
};
static_assert(sizeof(DeletePortInput) == 16);

struct DisconnectPortInput {  // HvCallDisconnectPort 0x5B
  uint64_t connection_partition;
  uint32_t connection_id;
  uint32_t rsvdz;
};
static_assert(sizeof(DisconnectPortInput) == 16);

inline constexpr uint32_t kConnectionIdMask = 0x00FFFFFF;  // 31:24 reserved
// The one definition of both: the core compares typed ids with .value().
inline constexpr uint64_t kPartitionSelf = ~0ull;       // HV_PARTITION_ID_SELF
inline constexpr uint32_t kAnyVp = 0xFFFFFFFFu;         // HV_ANY_VP
inline constexpr uint32_t kMessageBuffersPerPort = 16;  // TLFS: 16 guest message buffers

// ---- CPUID (TLFS "Feature and Interface Discovery").
namespace cpuid {
inline constexpr uint32_t kVendorLeaf = 0x40000000;
inline constexpr uint32_t kInterfaceLeaf = 0x40000001;
inline constexpr uint32_t kVersionLeaf = 0x40000002;
inline constexpr uint32_t kFeaturesLeaf = 0x40000003;
inline constexpr uint32_t kHintsLeaf = 0x40000004;
inline constexpr uint32_t kLimitsLeaf = 0x40000005;
inline constexpr uint32_t kHvInterfaceSignature = 0x31237648;  // "Hv#1"
// 0x40000003.EAX: partition privilege mask, low half (MSR access).
inline constexpr uint32_t kAccessVpRuntime = 1u << 0;
inline constexpr uint32_t kAccessPartitionRefCounter = 1u << 1;
inline constexpr uint32_t kAccessSynicRegs = 1u << 2;
inline constexpr uint32_t kAccessSynicTimers = 1u << 3;
inline constexpr uint32_t kAccessHypercallMsrs = 1u << 5;
inline constexpr uint32_t kAccessVpIndex = 1u << 6;
inline constexpr uint32_t kAccessPartitionReferenceTsc = 1u << 9;
inline constexpr uint32_t kAccessFrequencyMsrs = 1u << 11;
inline constexpr uint32_t kAccessTscInvariant = 1u << 15;
// 0x40000003.EBX: privilege mask, high half (hypercalls).
inline constexpr uint32_t kPostMessages = 1u << 4;
inline constexpr uint32_t kSignalEvents = 1u << 5;
inline constexpr uint32_t kCreatePort = 1u << 6;
inline constexpr uint32_t kConnectPort = 1u << 7;
inline constexpr uint32_t kCpuManagement = 1u << 12;  // never set: marks the root partition
// 0x40000003.EDX: miscellaneous features.
inline constexpr uint32_t kFeatureFrequencyMsrs = 1u << 8;
inline constexpr uint32_t kFeatureGuestCrashMsrs = 1u << 10;
inline constexpr uint32_t kFeatureStimerDirectMode = 1u << 19;
// 0x40000004.EAX hints.
inline constexpr uint32_t kHintRemoteTlbFlush = 1u << 2;  // HvCallFlushVirtualAddress*
inline constexpr uint32_t kHintRelaxedTiming = 1u << 5;
inline constexpr uint32_t kHintDeprecateAutoEoi = 1u << 9;
inline constexpr uint32_t kHintClusterIpi = 1u << 10;        // HvCallSendSyntheticClusterIpi
inline constexpr uint32_t kHintExProcessorMasks = 1u << 11;  // the *Ex forms (HV_VP_SET)
inline constexpr uint32_t kHintNested = 1u << 12;
}  // namespace cpuid

}  // namespace microhv::tlfs
