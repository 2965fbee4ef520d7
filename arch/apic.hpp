// The local APIC as microhv touches it (Intel SDM Vol. 3A chapter 10):
// IA32_APIC_BASE bits, the xAPIC register offsets, the interrupt command
// register (ICR) fields and the x2APIC MSRs. The one home of these numbers;
// facts only, portable.
#pragma once

#include <stdint.h>

namespace microhv::arch::apic {

// IA32_APIC_BASE (MSR 0x1B, SDM 10.4.4).
namespace base {
inline constexpr uint64_t kBsp = 1ull << 8;
inline constexpr uint64_t kX2apic = 1ull << 10;  // x2APIC mode (with kEnable)
inline constexpr uint64_t kEnable = 1ull << 11;  // globally enabled
inline constexpr uint64_t kPageMask = ~0xFFFull;
}  // namespace base

// xAPIC register offsets in the APIC page (SDM Table 10-1).
inline constexpr uint32_t kIcrLow = 0x300;
inline constexpr uint32_t kIcrHigh = 0x310;
inline constexpr uint32_t kXapicDestShift = 24;  // ICR high bits 31:24

// The APIC timer (SDM 10.5.4): LVT timer, initial and current count, divide
// configuration (0xB: divide by 1).
inline constexpr uint32_t kLvtTimer = 0x320;
inline constexpr uint32_t kTimerInitialCount = 0x380;
inline constexpr uint32_t kTimerCurrentCount = 0x390;
inline constexpr uint32_t kTimerDivide = 0x3E0;
inline constexpr uint32_t kTimerDivideBy1 = 0xB;
inline constexpr uint32_t kLvtMasked = 1u << 16;

// x2APIC registers are MSRs 0x800 + offset / 16 (SDM 10.12.1.2).
constexpr uint32_t x2apic_msr(uint32_t xapic_offset) {
  return 0x800 + xapic_offset / 16;
}
inline constexpr uint32_t kX2apicIcrMsr = 0x830;      // 64-bit ICR: destination in 63:32
inline constexpr uint32_t kX2apicSelfIpiMsr = 0x83F;  // write the vector: fixed, edge, self

// ICR fields (SDM 10.6.1, Figure 10-12).
namespace icr {
inline constexpr uint32_t kVectorMask = 0xFF;
inline constexpr uint32_t kDeliveryModeMask = 7u << 8;
inline constexpr uint32_t kFixed = 0u << 8;
inline constexpr uint32_t kNmi = 4u << 8;
inline constexpr uint32_t kInit = 5u << 8;
inline constexpr uint32_t kStartup = 6u << 8;
inline constexpr uint32_t kLogical = 1u << 11;
inline constexpr uint32_t kDeliveryPending = 1u << 12;  // xAPIC only
inline constexpr uint32_t kAssert = 1u << 14;
inline constexpr uint32_t kLevelTriggered = 1u << 15;
inline constexpr uint32_t kShorthandMask = 3u << 18;
inline constexpr uint32_t kShorthandSelf = 1u << 18;
inline constexpr uint32_t kShorthandAll = 2u << 18;  // including self
inline constexpr uint32_t kShorthandAllButSelf = 3u << 18;
inline constexpr uint32_t kXapicBroadcast = 0xFF;
inline constexpr uint32_t kX2apicBroadcast = 0xFFFFFFFF;
}  // namespace icr

}  // namespace microhv::arch::apic
