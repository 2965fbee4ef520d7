// The MSR policy: what a guest RDMSR/WRMSR of each MSR does, in one table
// (vmx/msr_policy.cpp), default deny. Each row names an MSR or a range, the
// decision for reads and for writes, how an emulated one is emulated, why,
// and the SDM section (TLFS for the synthetic range). The MSR bitmap is
// generated from the table: only what a row passes through runs without a
// VM exit; everything else exits and is decided here. An MSR no row names
// raises #GP, as on KVM without ignore_msrs. Portable, unit-tested
// (tests/unit/vmx_msr_policy.cpp).
#pragma once

#include <stdint.h>

namespace microhv::vmx {

// Reads: straight to the hardware (no exit), emulated, or #GP.
enum class MsrRead : uint8_t { kPass, kEmulate, kGp };
// Writes: straight to the hardware (no exit), emulated (validated, then
// stored in microhv's copy or the VMCS), accepted without effect, or #GP.
enum class MsrWrite : uint8_t { kPass, kEmulate, kIgnore, kGp };

// How an emulated MSR is emulated (vmx/exit_msr.cpp has one case each).
enum class MsrEmulation : uint8_t {
  kNone,
  kSynthetic,           // the TLFS core (hypercall/msr.cpp)
  kVmcsField,           // the guest's value lives in a VMCS guest-state field
  kTsc,                 // writes move this VP's VMCS TSC offset
  kTscAdjust,           // IA32_TSC_ADJUST, kept with the TSC offset
  kTscDeadline,         // translated between the guest's and the real TSC
  kApicBase,            // IA32_APIC_BASE: mode transitions, base fixed
  kX2apicIcr,           // x2APIC ICR: INIT IPIs to VPs are emulated
  kFeatureControl,      // locked, VMX off
  kMtrrCap,             // IA32_MTRRCAP, SMRR hidden
  kMtrrDefType,         // per-VP copy; the real MTRRs never change
  kMtrrFixed,           // per-VP copy
  kMtrrVariable,        // per-VP copy
  kMiscEnable,          // per-VP copy, PMU/BTS/PEBS reported unavailable
  kMiscFeatureEnables,  // CPUID faulting and ring-3 MWAIT not offered
  kPlatformInfo,        // the real value without "CPUID faulting supported"
  kDebugctl,            // filtered, into the VMCS guest field
  kXss,                 // only the supervisor states CPUID offers (none)
};

struct MsrRule {
  uint32_t first, last;  // inclusive
  MsrRead read;
  MsrWrite write;
  MsrEmulation how;
  const char* name;
  const char* why;
  const char* ref;  // SDM (or TLFS) section
};

// The rule for `msr`, or nullptr: no row, #GP both ways.
const MsrRule* find_msr_rule(uint32_t msr);

// The whole table, for the bitmap and the tests.
struct MsrRules {
  const MsrRule* rows;
  uint32_t count;
};
MsrRules msr_rules();

// The 4 KiB MSR bitmap (SDM Vol. 3C 25.6.9): read bitmap for 0-0x1FFF at
// byte 0, for 0xC0000000-0xC0001FFF at 0x400, write bitmaps at 0x800 and
// 0xC00; a set bit makes the access exit. Every bit is set except the
// directions a row passes through.
inline constexpr uint32_t kMsrBitmapSize = 4096;
void build_msr_bitmap(uint8_t* bitmap);
// Whether the bitmap lets `msr` run without an exit in that direction
// (false for MSRs outside the two ranges: they always exit).
bool msr_bitmap_passes(const uint8_t* bitmap, uint32_t msr, bool write);

}  // namespace microhv::vmx
