// What runs *as the guest* right after the take-over, still inside
// boot::take_over: self checks that prove from the guest side that microhv
// is underneath (CPUID, a VMCALL, the test device), and the EFI
// configuration table that tells later guests where microhv lives.
#pragma once

#include <efi.h>
#include <stdint.h>

#include "vmx/info_table.hpp"

namespace microhv::boot {

// CPUID.1:ECX.hypervisor of the calling CPU as 0 or 1.
uint32_t hypervisor_bit();

// Logs CPUID.1 (hypervisor bit set, VMX hidden), the vendor leaf and what a
// VMCALL with an unknown call code returns (INVALID_HYPERCALL_CODE).
void guest_self_check();

// microhv.cfg `testdev = on`: one command the test device accepts and
// undoes, and a byte read that must pass through to the real port.
void testdev_self_check();

// Publishes where microhv lives (vmx/info_table.hpp) as an EFI configuration
// table; the table itself is ordinary guest memory.
void publish_info_table(EFI_BOOT_SERVICES* bs, const vmx::InfoTable& table);

}  // namespace microhv::boot
