// Is VT-x usable? A pure decision from CPUID.1:ECX and IA32_FEATURE_CONTROL,
// kept free of inline asm so host tests can cover every case. Reading the
// values is the caller's job (boot/vmx_detect.cpp).
#pragma once

#include <stdint.h>

namespace microhv::arch {

// CPUID.1:ECX (SDM Vol. 2A, Table 3-10).
inline constexpr uint32_t kCpuid1EcxVmx = 1u << 5;
inline constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;  // set when running as a guest

// IA32_FEATURE_CONTROL (SDM Vol. 3C 23.7, "Enabling and Entering VMX Operation";
// Vol. 4 Table 2-2). Exists only when CPUID.1:ECX.VMX or SMX is 1.
inline constexpr uint32_t kMsrFeatureControl = 0x3A;
inline constexpr uint64_t kFeatureControlLock = 1ull << 0;
inline constexpr uint64_t kFeatureControlVmxInsideSmx = 1ull << 1;
inline constexpr uint64_t kFeatureControlVmxOutsideSmx = 1ull << 2;

enum class VmxSupport {
  kNotReported,         // CPUID.1:ECX.VMX = 0: no VT-x, or hidden by firmware/hypervisor
  kDisabledByFirmware,  // MSR locked with VMX-outside-SMX clear: VMXON would #GP
  kEnabledByFirmware,   // MSR locked with VMX-outside-SMX set
  kUnlocked,            // MSR unlocked: microhv may set the bits and lock it
};

// `feature_control` is ignored when `cpuid1_ecx` has no VMX bit.
constexpr VmxSupport classify_vmx(uint32_t cpuid1_ecx, uint64_t feature_control) {
  if ((cpuid1_ecx & kCpuid1EcxVmx) == 0) return VmxSupport::kNotReported;
  if ((feature_control & kFeatureControlLock) == 0) return VmxSupport::kUnlocked;
  if ((feature_control & kFeatureControlVmxOutsideSmx) == 0) {
    return VmxSupport::kDisabledByFirmware;
  }
  return VmxSupport::kEnabledByFirmware;
}

constexpr bool vmx_usable(VmxSupport s) {
  return s == VmxSupport::kEnabledByFirmware || s == VmxSupport::kUnlocked;
}

static_assert(classify_vmx(0, kFeatureControlLock | kFeatureControlVmxOutsideSmx) ==
              VmxSupport::kNotReported);
static_assert(classify_vmx(kCpuid1EcxVmx, 0) == VmxSupport::kUnlocked);
static_assert(classify_vmx(kCpuid1EcxVmx, kFeatureControlLock) == VmxSupport::kDisabledByFirmware);
static_assert(classify_vmx(kCpuid1EcxVmx, kFeatureControlLock | kFeatureControlVmxInsideSmx) ==
              VmxSupport::kDisabledByFirmware);
static_assert(classify_vmx(kCpuid1EcxVmx, kFeatureControlLock | kFeatureControlVmxOutsideSmx) ==
              VmxSupport::kEnabledByFirmware);

}  // namespace microhv::arch
