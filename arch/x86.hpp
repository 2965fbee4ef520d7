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
inline constexpr uint64_t kVmxe = 1ull << 13;
inline constexpr uint64_t kPcide = 1ull << 17;
inline constexpr uint64_t kOsxsave = 1ull << 18;
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
inline constexpr uint64_t kZf = 1ull << 6;
inline constexpr uint64_t kIf = 1ull << 9;
inline constexpr uint64_t kVm = 1ull << 17;  // virtual-8086 mode
}  // namespace rflags

// CPUID.1:ECX.
namespace cpuid1_ecx {
inline constexpr uint32_t kVmx = 1u << 5;
inline constexpr uint32_t kXsave = 1u << 26;
inline constexpr uint32_t kHypervisor = 1u << 31;  // set when running as a guest
}  // namespace cpuid1_ecx

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
