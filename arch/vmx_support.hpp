// Is VT-x usable? A pure decision from CPUID.1:ECX and IA32_FEATURE_CONTROL,
// kept free of inline asm so host tests can cover every case. Reading the
// values is the caller's job (boot/efi/vmx_detect.cpp).
#pragma once

#include <stdint.h>

#include "arch/msr.hpp"
#include "arch/x86.hpp"

namespace microhv::arch {

// CPUID.1:ECX.VMX (arch/x86.hpp) and IA32_FEATURE_CONTROL (arch/msr.hpp; SDM
// Vol. 3C 24.7, "Enabling and Entering VMX Operation").
enum class VmxSupport {
  kNotReported,         // CPUID.1:ECX.VMX = 0: no VT-x, or hidden by firmware/hypervisor
  kDisabledByFirmware,  // MSR locked with VMX-outside-SMX clear: VMXON would #GP
  kEnabledByFirmware,   // MSR locked with VMX-outside-SMX set
  kUnlocked,            // MSR unlocked: microhv may set the bits and lock it
};

// `feature_control` is ignored when `cpuid1_ecx` has no VMX bit.
constexpr VmxSupport classify_vmx(uint32_t cpuid1_ecx, uint64_t feature_control) {
  if ((cpuid1_ecx & cpuid1_ecx::kVmx) == 0) return VmxSupport::kNotReported;
  if ((feature_control & msr::feature_control::kLock) == 0) return VmxSupport::kUnlocked;
  if ((feature_control & msr::feature_control::kVmxOutsideSmx) == 0) {
    return VmxSupport::kDisabledByFirmware;
  }
  return VmxSupport::kEnabledByFirmware;
}

constexpr bool vmx_usable(VmxSupport s) {
  return s == VmxSupport::kEnabledByFirmware || s == VmxSupport::kUnlocked;
}

static_assert(classify_vmx(0, msr::feature_control::kLock | msr::feature_control::kVmxOutsideSmx) ==
              VmxSupport::kNotReported);
static_assert(classify_vmx(cpuid1_ecx::kVmx, 0) == VmxSupport::kUnlocked);
static_assert(classify_vmx(cpuid1_ecx::kVmx, msr::feature_control::kLock) ==
              VmxSupport::kDisabledByFirmware);
static_assert(classify_vmx(cpuid1_ecx::kVmx,
                           msr::feature_control::kLock | msr::feature_control::kVmxInsideSmx) ==
              VmxSupport::kDisabledByFirmware);
static_assert(classify_vmx(cpuid1_ecx::kVmx,
                           msr::feature_control::kLock | msr::feature_control::kVmxOutsideSmx) ==
              VmxSupport::kEnabledByFirmware);

}  // namespace microhv::arch
