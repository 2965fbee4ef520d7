#include "boot/efi/guest_checks.hpp"

#include "arch/cpu.hpp"
#include "arch/x86.hpp"
#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/base/log.hpp"
#include "synic/services/testdev.hpp"

namespace microhv::boot {

uint32_t hypervisor_bit() {
  return (arch::cpuid(1).ecx & arch::cpuid1_ecx::kHypervisor) != 0 ? 1 : 0;
}

// After the launch, still inside take_over but now as the guest: prove
// from the guest side that microhv is underneath.
void guest_self_check() {
  const arch::CpuidResult v = arch::cpuid(tlfs::cpuid::kVendorLeaf);
  char vendor[13];
  const uint32_t words[3] = {v.ebx, v.ecx, v.edx};
  for (int i = 0; i < 12; ++i) vendor[i] = static_cast<char>(words[i / 4] >> (8 * (i % 4)));
  vendor[12] = '\0';
  const bool hv_bit = (arch::cpuid(1).ecx & arch::cpuid1_ecx::kHypervisor) != 0;
  const bool vmx_bit = (arch::cpuid(1).ecx & arch::cpuid1_ecx::kVmx) != 0;
  log::info(
      "guest: CPUID.1:ECX hypervisor=%d vmx=%d; CPUID 0x40000000: max leaf 0x%x vendor \"%s\"\n",
      hv_bit, vmx_bit, v.eax, vendor);
  // A hypercall with an unknown call code (0xFFFF) must come back as
  // HV_STATUS_INVALID_HYPERCALL_CODE (2) in RAX: the VMCALL exited to microhv.
  uint64_t rax;
  register uint64_t r8 asm("r8") = 0;
  asm volatile("vmcall" : "=a"(rax), "+r"(r8) : "c"(0xFFFFull), "d"(0ull) : "memory");
  log::info("guest: VMCALL with call code 0xffff returned 0x%llx\n",
            static_cast<unsigned long long>(rax));
}

void publish_info_table(EFI_BOOT_SERVICES* bs, const vmx::InfoTable& table) {
  void* p = nullptr;
  if (EFI_ERROR(bs->AllocatePool(EfiRuntimeServicesData, sizeof(vmx::InfoTable), &p))) return;
  auto* t = static_cast<vmx::InfoTable*>(p);
  *t = table;
  EFI_GUID guid;
  static_assert(sizeof(guid) == sizeof(vmx::kInfoTableGuid));
  __builtin_memcpy(&guid, &vmx::kInfoTableGuid, sizeof(guid));
  const EFI_STATUS s = bs->InstallConfigurationTable(&guid, t);
  if (EFI_ERROR(s))
    log::error("vmx: InstallConfigurationTable failed: 0x%llx\n", (unsigned long long)s);
}

// SINT route create + destroy for VP 0 SINT 0, then a 1-byte IN.
void testdev_self_check() {
  constexpr uint32_t kRouteCreate = static_cast<uint32_t>(TestDevice::Control::kSintRouteCreate)
                                    << 16;
  constexpr uint32_t kRouteDestroy = static_cast<uint32_t>(TestDevice::Control::kSintRouteDestroy)
                                     << 16;
  arch::outl(TestDevice::kIoPort, kRouteCreate);
  arch::outl(TestDevice::kIoPort, kRouteDestroy);
  const uint8_t b = arch::inb(TestDevice::kIoPort);
  log::info("guest: testdev: 32-bit OUTs to port 0x%x accepted; a 1-byte IN from it read 0x%x\n",
            TestDevice::kIoPort, b);
}

}  // namespace microhv::boot
