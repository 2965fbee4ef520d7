// The local APIC as microhv touches it (Intel SDM Vol. 3A chapter 10):
// IA32_APIC_BASE bits, the xAPIC register offsets, the interrupt command
// register (ICR) fields and the x2APIC MSRs. The one home of these numbers;
// facts only, portable.
#pragma once

#include <stdint.h>

namespace microhv::arch::apic {

// IA32_APIC_BASE (MSR 0x1B, SDM 10.4.4; Vol. 3A 11.4.4 in later editions).
// Bits 7:0 and 9 are reserved, as are the address bits at and above
// MAXPHYADDR.
namespace base {
inline constexpr uint64_t kBsp = 1ull << 8;
inline constexpr uint64_t kX2apic = 1ull << 10;  // x2APIC mode (with kEnable)
inline constexpr uint64_t kEnable = 1ull << 11;  // globally enabled
inline constexpr uint64_t kPageMask = ~0xFFFull;
inline constexpr uint64_t kReservedLow = 0x2FF;
inline constexpr uint64_t kDefault = 0xFEE00000;  // after RESET
}  // namespace base

// xAPIC register offsets in the APIC page (SDM Table 10-1). Every register
// sits at a 16-byte aligned offset and is accessed with aligned 32-bit loads
// and stores (SDM 10.4.1 / Vol. 3A 11.4.1).
inline constexpr uint32_t kId = 0x20;
inline constexpr uint32_t kVersion = 0x30;
inline constexpr uint32_t kTpr = 0x80;
inline constexpr uint32_t kEoi = 0xB0;
inline constexpr uint32_t kLdr = 0xD0;
inline constexpr uint32_t kDfr = 0xE0;
inline constexpr uint32_t kSvr = 0xF0;
inline constexpr uint32_t kIsr0 = 0x100;  // 8 registers, 0x10 apart
inline constexpr uint32_t kEsr = 0x280;
inline constexpr uint32_t kLvtCmci = 0x2F0;
inline constexpr uint32_t kIcrLow = 0x300;
inline constexpr uint32_t kIcrHigh = 0x310;
inline constexpr uint32_t kLvtTimer = 0x320;
inline constexpr uint32_t kLvtThermal = 0x330;
inline constexpr uint32_t kLvtPerf = 0x340;
inline constexpr uint32_t kLvtLint0 = 0x350;
inline constexpr uint32_t kLvtLint1 = 0x360;
inline constexpr uint32_t kLvtError = 0x370;
inline constexpr uint32_t kTimerInitialCount = 0x380;
inline constexpr uint32_t kTimerDivide = 0x3E0;
inline constexpr uint32_t kXapicDestShift = 24;  // ICR high bits 31:24
inline constexpr uint32_t kRegisterAlign = 16;

// LVT and SVR fields (SDM 10.5.1, 10.9).
inline constexpr uint32_t kLvtMasked = 1u << 16;
inline constexpr uint32_t kLvtExtInt = 7u << 8;
inline constexpr uint32_t kLvtNmi = 4u << 8;
inline constexpr uint32_t kSvrEnable = 1u << 8;
inline constexpr uint32_t kSvrAfterReset = 0xFF;  // software-disabled, spurious vector FF

// The APIC timer (SDM 10.5.4): the current count beside the registers above;
// divide configuration 0xB divides by 1.
inline constexpr uint32_t kTimerCurrentCount = 0x390;
inline constexpr uint32_t kTimerDivideBy1 = 0xB;

// x2APIC registers are MSRs 0x800 + offset / 16 (SDM 10.12.1.2).
inline constexpr uint32_t kX2apicFirstMsr = 0x800;
inline constexpr uint32_t kX2apicLastMsr = 0x8FF;
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
// x2APIC ICR bits 31:0 that are reserved and fault when set (SDM 10.12.9:
// bits 13, 17:16 and 31:20; bit 12, delivery status in xAPIC mode, is
// ignored rather than checked, as KVM does).
inline constexpr uint32_t kX2apicReserved = 0xFFF32000u;
}  // namespace icr

}  // namespace microhv::arch::apic
