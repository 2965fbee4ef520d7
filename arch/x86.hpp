// Architectural register bits: CR0, CR4, EFER, RFLAGS (Intel SDM Vol. 3A
// 2.5 "Control Registers", 2.2.1 "Extended Feature Enable Register", 2.3
// "System Flags in RFLAGS"), the CPUID.1 feature bits microhv reads or
// changes (SDM Vol. 2A, CPUID, Table 3-10), and segment access rights in the
// VMCS format (SDM Vol. 3C 25.4.1, Table 25-2). The one home of these
// numbers; facts only, portable.
#pragma once

#include <stdint.h>

namespace microhv::arch {

namespace cr0 {
inline constexpr uint64_t kPe = 1ull << 0;  // protection enable
inline constexpr uint64_t kMp = 1ull << 1;
inline constexpr uint64_t kEm = 1ull << 2;
inline constexpr uint64_t kTs = 1ull << 3;   // task switched (CLTS clears it)
inline constexpr uint64_t kEt = 1ull << 4;   // extension type (hardwired to 1)
inline constexpr uint64_t kNe = 1ull << 5;   // numeric error
inline constexpr uint64_t kWp = 1ull << 16;  // write protect
inline constexpr uint64_t kNw = 1ull << 29;
inline constexpr uint64_t kCd = 1ull << 30;
inline constexpr uint64_t kPg = 1ull << 31;
// LMSW loads bits 3:0 (PE, MP, EM, TS) and cannot clear PE (SDM Vol. 2A LMSW).
inline constexpr uint64_t kLmswBits = kPe | kMp | kEm | kTs;
}  // namespace cr0

namespace cr4 {
inline constexpr uint64_t kPse = 1ull << 4;
inline constexpr uint64_t kPae = 1ull << 5;
inline constexpr uint64_t kOsfxsr = 1ull << 9;
inline constexpr uint64_t kVmxe = 1ull << 13;
inline constexpr uint64_t kPcide = 1ull << 17;
inline constexpr uint64_t kOsxsave = 1ull << 18;
inline constexpr uint64_t kPke = 1ull << 22;
inline constexpr uint64_t kCet = 1ull << 23;  // control-flow enforcement
}  // namespace cr4

namespace efer {
inline constexpr uint64_t kSce = 1ull << 0;   // SYSCALL enable
inline constexpr uint64_t kLme = 1ull << 8;   // long mode enable
inline constexpr uint64_t kLma = 1ull << 10;  // long mode active
inline constexpr uint64_t kNxe = 1ull << 11;  // execute-disable enable
}  // namespace efer

namespace rflags {
inline constexpr uint64_t kCf = 1ull << 0;
inline constexpr uint64_t kFixed1 = 1ull << 1;  // always 1
inline constexpr uint64_t kPf = 1ull << 2;
inline constexpr uint64_t kAf = 1ull << 4;
inline constexpr uint64_t kZf = 1ull << 6;
inline constexpr uint64_t kSf = 1ull << 7;
inline constexpr uint64_t kIf = 1ull << 9;
inline constexpr uint64_t kDf = 1ull << 10;
inline constexpr uint64_t kOf = 1ull << 11;
inline constexpr uint64_t kArith = kCf | kPf | kAf | kZf | kSf | kOf;  // the status flags
inline constexpr uint64_t kVm = 1ull << 17;                            // virtual-8086 mode
}  // namespace rflags

// CPUID.1:ECX.
namespace cpuid1_ecx {
inline constexpr uint32_t kDtes64 = 1u << 2;
inline constexpr uint32_t kMonitor = 1u << 3;  // MONITOR/MWAIT (leaf 5 describes them)
inline constexpr uint32_t kDsCpl = 1u << 4;
inline constexpr uint32_t kVmx = 1u << 5;
inline constexpr uint32_t kSmx = 1u << 6;
inline constexpr uint32_t kPdcm = 1u << 15;  // IA32_PERF_CAPABILITIES
inline constexpr uint32_t kX2apic = 1u << 21;
inline constexpr uint32_t kTscDeadline = 1u << 24;
inline constexpr uint32_t kXsave = 1u << 26;
inline constexpr uint32_t kOsxsave = 1u << 27;     // mirrors CR4.OSXSAVE
inline constexpr uint32_t kHypervisor = 1u << 31;  // set when running as a guest
}  // namespace cpuid1_ecx

// CPUID.1:EDX.
namespace cpuid1_edx {
inline constexpr uint32_t kMsr = 1u << 5;
inline constexpr uint32_t kApic = 1u << 9;  // mirrors IA32_APIC_BASE.EN (SDM 10.4.3)
inline constexpr uint32_t kMtrr = 1u << 12;
inline constexpr uint32_t kDs = 1u << 21;
}  // namespace cpuid1_edx

// CPUID.6 (thermal and power management).
namespace cpuid6_eax {
inline constexpr uint32_t kHwFeedback = 1u << 19;  // IA32_HW_FEEDBACK_PTR
inline constexpr uint32_t kThreadDirector = 1u << 23;
}  // namespace cpuid6_eax

// CPUID.(EAX=7,ECX=0).
namespace cpuid7_ebx {
inline constexpr uint32_t kSgx = 1u << 2;
inline constexpr uint32_t kTscAdjust = 1u << 1;
inline constexpr uint32_t kRdtMonitoring = 1u << 12;
inline constexpr uint32_t kMpx = 1u << 14;
inline constexpr uint32_t kRdtAllocation = 1u << 15;
inline constexpr uint32_t kProcessorTrace = 1u << 25;
}  // namespace cpuid7_ebx
namespace cpuid7_ecx {
inline constexpr uint32_t kOspke = 1u << 4;  // mirrors CR4.PKE
inline constexpr uint32_t kCetShadowStack = 1u << 7;
inline constexpr uint32_t kTme = 1u << 13;
inline constexpr uint32_t kKeyLocker = 1u << 23;
inline constexpr uint32_t kBusLockDetect = 1u << 24;
inline constexpr uint32_t kSgxLc = 1u << 30;
inline constexpr uint32_t kPks = 1u << 31;
}  // namespace cpuid7_ecx
namespace cpuid7_edx {
inline constexpr uint32_t kPconfig = 1u << 18;
inline constexpr uint32_t kArchLbr = 1u << 19;
inline constexpr uint32_t kCetIbt = 1u << 20;
inline constexpr uint32_t kCoreCapabilities = 1u << 30;
}  // namespace cpuid7_edx

// CPUID.80000001:EDX.
namespace cpuid_ext1_edx {
inline constexpr uint32_t kPage1G = 1u << 26;
}

// Segment access rights as VMX reports them (bits 15:8 of the descriptor's
// second dword shifted down, plus bit 16 "unusable").
namespace access {
inline constexpr uint32_t kAccessed = 1u << 0;
inline constexpr uint32_t kTypeMask = 0xFu;
inline constexpr uint32_t kTypeBusyTss64 = 0xB;
inline constexpr uint32_t kCodeOrData = 1u << 4;  // S
inline constexpr uint32_t kPresent = 1u << 7;
inline constexpr uint32_t kLong = 1u << 13;       // L: 64-bit code segment
inline constexpr uint32_t kDefault32 = 1u << 14;  // D/B
inline constexpr uint32_t kGranularity = 1u << 15;
inline constexpr uint32_t kUnusable = 1u << 16;
constexpr uint32_t dpl(uint32_t access_rights) {
  return (access_rights >> 5) & 3;
}
}  // namespace access

}  // namespace microhv::arch
