#include "boot/efi/vmx_detect.hpp"

#include <stdint.h>

#include "arch/cpu.hpp"
#include "arch/vmx_support.hpp"
#include "kernel/base/log.hpp"

namespace microhv::boot {
namespace {

// CPUID.0 returns the vendor string in EBX, EDX, ECX order ("GenuineIntel").
struct Vendor {
  char text[13];
};

Vendor cpu_vendor() {
  const arch::CpuidResult r = arch::cpuid(0);
  const uint32_t words[3] = {r.ebx, r.edx, r.ecx};
  Vendor v{};
  for (int i = 0; i < 12; ++i) v.text[i] = static_cast<char>(words[i / 4] >> (8 * (i % 4)));
  return v;
}

void report_not_reported(uint32_t cpuid1_ecx) {
  const Vendor vendor = cpu_vendor();
  const bool nested = (cpuid1_ecx & arch::cpuid1_ecx::kHypervisor) != 0;
  log::info(
      "VT-x not available: CPUID.1:ECX.VMX is 0 (%s CPU%s); enable VT-x in firmware setup, or "
      "run under QEMU/KVM with -cpu host,+vmx (kvm_intel nested=1), or Bochs\n",
      vendor.text, nested ? ", inside a virtual machine without nested VT-x" : "");
}

}  // namespace

bool detect_vmx() {
  const uint32_t ecx = arch::cpuid(1).ecx;
  // IA32_FEATURE_CONTROL exists only when CPUID reports VMX (or SMX); reading
  // it otherwise may #GP (SDM Vol. 4, Table 2-2).
  const uint64_t feature_control =
      (ecx & arch::cpuid1_ecx::kVmx) != 0 ? arch::rdmsr(arch::msr::kFeatureControl) : 0;

  switch (arch::classify_vmx(ecx, feature_control)) {
    case arch::VmxSupport::kNotReported:
      report_not_reported(ecx);
      return false;
    case arch::VmxSupport::kDisabledByFirmware:
      log::info(
          "VT-x not available: disabled by firmware (IA32_FEATURE_CONTROL=0x%llx is locked with "
          "VMX outside SMX clear); enable VT-x (Intel Virtualization Technology) in firmware "
          "setup and power-cycle\n",
          static_cast<unsigned long long>(feature_control));
      return false;
    case arch::VmxSupport::kEnabledByFirmware:
      log::info(
          "VT-x present: IA32_FEATURE_CONTROL=0x%llx, locked by firmware with VMX outside "
          "SMX enabled\n",
          static_cast<unsigned long long>(feature_control));
      return true;
    case arch::VmxSupport::kUnlocked:
      log::info(
          "VT-x present: IA32_FEATURE_CONTROL=0x%llx is unlocked; microhv can enable VMX "
          "outside SMX itself\n",
          static_cast<unsigned long long>(feature_control));
      return true;
  }
  return false;
}

}  // namespace microhv::boot
