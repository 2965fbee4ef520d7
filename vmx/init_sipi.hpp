// INIT and SIPI for CPUs that are already virtualized (portable,
// unit-tested in tests/unit/vmx_init_sipi.cpp). In VMX non-root operation an
// INIT signal always causes a VM exit instead of resetting the processor,
// and a SIPI causes one while the guest waits for it; microhv then does to
// the guest what the hardware would have done to a bare CPU, so an OS above
// microhv can start and restart its APs with INIT-SIPI-SIPI.
//
// INIT: the register state of SDM Vol. 3A 9.1.1 (Table 9-1, "following
// INIT"): real mode at F000:FFF0 (CS base FFFF0000), CR0 = 60000010 except
// that CD and NW keep their values, CR3 = CR4 = EFER = 0, EDX = the
// processor signature, other GPRs 0, GDTR/IDTR base 0 limit FFFF, DR7 400.
// An AP then waits for SIPI (activity state wait-for-SIPI); the BSP (the
// IA32_APIC_BASE.BSP flag) restarts at the reset vector right away.
// SIPI with vector V: real mode at V * 4096 (CS selector V << 8, base
// V << 12, IP 0), running. Both rely on unrestricted guest (CR0.PE = 0).
#pragma once

#include <stdint.h>

#include "arch/x86.hpp"

namespace microhv::vmx {

struct RealModeSegment {
  uint16_t selector;
  uint64_t base;
  uint32_t limit;
  uint32_t access;  // VMCS access-rights format
};

struct ResetState {
  uint64_t cr0;  // as the guest sees it; the VMCS gets it with the VMX fixed bits
  uint64_t cr3, cr4, efer;
  uint64_t rflags, rip, rsp, rdx, dr7;
  RealModeSegment cs, data, ldtr, tr;  // `data`: ES, SS, DS, FS, GS alike
  uint64_t gdtr_base, idtr_base;
  uint32_t gdtr_limit, idtr_limit;
  uint32_t activity;  // VMCS guest activity state
};

inline constexpr uint64_t kCr0AfterInit = arch::cr0::kEt;  // plus the old CD/NW
inline constexpr uint64_t kCr0CdNw = arch::cr0::kCd | arch::cr0::kNw;
inline constexpr uint64_t kDr6AfterInit = 0xFFFF0FF0;
inline constexpr uint64_t kDr7AfterInit = 0x400;

// `old_cr0`: the guest's CR0 (as it sees it) when the INIT arrived.
// `signature`: CPUID.1:EAX. `bsp`: IA32_APIC_BASE bit 8.
ResetState init_state(uint64_t old_cr0, uint32_t signature, bool bsp);

// The code segment and IP a SIPI with `vector` starts the AP at.
constexpr RealModeSegment sipi_code_segment(uint8_t vector) {
  return RealModeSegment{static_cast<uint16_t>(vector << 8), static_cast<uint64_t>(vector) << 12,
                         0xFFFF, 0x9B};
}
inline constexpr uint64_t kSipiRip = 0;

}  // namespace microhv::vmx
