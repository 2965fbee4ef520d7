// What microhv virtualizes of one VP's processor outside the VMCS: the local
// APIC's mode and base (IA32_APIC_BASE), the MTRRs, the TSC adjustment, the
// emulated feature MSRs, and the facts about the real processor those are
// checked against. One per VP (the back end keeps it in its Vcpu), touched
// only by that VP's CPU. Portable: filled by capture_vp_cpu_state
// (vmx/msr_emulation.hpp) at launch, then changed only by the MSR exits.
#pragma once

#include <stdint.h>

#include "kernel/base/types.hpp"

namespace microhv::vmx {

// The SDM's states of a local APIC (Vol. 3A 11.12.5.1); EN = 0 with
// EXTD = 1 is invalid and never entered.
enum class ApicMode : uint8_t { kDisabled, kXapic, kX2apic };

struct ApicState {
  ApicMode mode = ApicMode::kXapic;
  Gpa base{0};       // page of the xAPIC registers; never changes after launch
  bool bsp = false;  // IA32_APIC_BASE.BSP (read-only for the guest)
  // The guest's APIC is disabled but the real one stays enabled in xAPIC
  // mode (microhv emulates "disabled"): see vmx/apic_base.hpp.
  bool disabled_emulated = false;
  bool ignored_logged = false;  // the CPU ignored an enable (Bochs 2.7); said once
};

inline constexpr uint32_t kMaxVariableMtrrs = 16;  // 0x200..0x21F

struct MtrrState {
  uint64_t cap = 0;  // as the guest reads it (SMRR cleared, VCNT capped)
  uint64_t def_type = 0;
  uint64_t fixed[11] = {};  // 64K_00000, 16K_80000, 16K_A0000, 4K_C0000 .. 4K_F8000
  uint64_t var[2 * kMaxVariableMtrrs] = {};  // PHYSBASE0, PHYSMASK0, PHYSBASE1, ...
};

// The real processor, as CPUID and its MSRs described it at launch.
struct CpuFacts {
  uint8_t phys_addr_bits = 36;   // MAXPHYADDR (CPUID.80000008:EAX[7:0])
  bool x2apic = false;           // CPUID.1:ECX[21]
  bool tsc_deadline = false;     // CPUID.1:ECX[24]
  bool tsc_adjust = false;       // CPUID.7.0:EBX[1]
  bool mtrr = false;             // CPUID.1:EDX[12]
  bool bus_lock_detect = false;  // CPUID.7.0:ECX[24]
  bool misc_enable = false;      // IA32_MISC_ENABLE read without fault
  bool platform_info = false;    // MSR_PLATFORM_INFO read without fault
  bool xss = false;              // CPUID.(0DH,1):EAX[3] (XSAVES, hence IA32_XSS)
  // The "use TSC offsetting" control is on (vmx/controls.cpp): IA32_TSC and
  // IA32_TSC_ADJUST writes move the offset. Without it they are ignored.
  bool tsc_offsetting = false;
};

struct VpCpuState {
  CpuFacts facts;
  ApicState apic;
  MtrrState mtrr;
  uint64_t tsc_offset = 0;  // what the VMCS TSC offset holds (guest TSC = real + offset)
  uint64_t tsc_adjust = 0;  // the guest's IA32_TSC_ADJUST
  uint64_t misc_enable = 0;
  uint64_t platform_info = 0;  // as the guest reads it
};

}  // namespace microhv::vmx
