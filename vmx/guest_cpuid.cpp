#include "vmx/guest_cpuid.hpp"

#include "arch/x86.hpp"
#include "vmx/ept.hpp"

namespace microhv::vmx {
namespace {

namespace ecx1 = arch::cpuid1_ecx;
namespace edx1 = arch::cpuid1_edx;
namespace ebx7 = arch::cpuid7_ebx;
namespace ecx7 = arch::cpuid7_ecx;
namespace edx7 = arch::cpuid7_edx;

constexpr uint32_t kXcr0Mpx = (1u << 3) | (1u << 4);  // BNDREGS, BNDCSR

uint32_t mirror(uint32_t reg, uint32_t bit, bool on) {
  return on ? (reg | bit) : (reg & ~bit);
}

}  // namespace

CpuidRegs guest_cpuid(uint32_t leaf, uint32_t subleaf, CpuidRegs r, const GuestCpuidContext& vp) {
  switch (leaf) {
    case 1:
      // MONITOR/MWAIT hidden (they #UD, vmx/exits.cpp): the VMX-preemption
      // timer behind the synthetic timers stops in C-states deeper than C2
      // (SDM Vol. 3C 26.5.1), so a VP in a deep MWAIT would sleep through
      // its own timer. The guest idles with HLT, which the timer counts in.
      r.ecx &=
          ~(ecx1::kVmx | ecx1::kSmx | ecx1::kDtes64 | ecx1::kDsCpl | ecx1::kPdcm | ecx1::kMonitor);
      r.ecx |= ecx1::kHypervisor;
      r.ecx = mirror(r.ecx, ecx1::kOsxsave, (vp.cr4 & arch::cr4::kOsxsave) != 0);
      r.edx &= ~edx1::kDs;
      r.edx = mirror(r.edx, edx1::kApic, vp.apic_enabled);
      break;
    case 6:
      r.eax &= ~(arch::cpuid6_eax::kHwFeedback | arch::cpuid6_eax::kThreadDirector);
      break;
    case 7:
      if (subleaf == 0) {
        r.ebx &= ~(ebx7::kSgx | ebx7::kRdtMonitoring | ebx7::kMpx | ebx7::kRdtAllocation |
                   ebx7::kProcessorTrace);
        r.ecx &=
            ~(ecx7::kCetShadowStack | ecx7::kTme | ecx7::kKeyLocker | ecx7::kSgxLc | ecx7::kPks);
        r.ecx = mirror(r.ecx, ecx7::kOspke, (vp.cr4 & arch::cr4::kPke) != 0);
        r.edx &= ~(edx7::kPconfig | edx7::kArchLbr | edx7::kCetIbt | edx7::kCoreCapabilities);
      }
      break;
    case 0x5:   // MONITOR/MWAIT (hidden with CPUID.1:ECX.MONITOR)
    case 0xA:   // architectural performance monitoring
    case 0xF:   // RDT monitoring
    case 0x10:  // RDT allocation
    case 0x12:  // SGX
    case 0x14:  // Intel PT
    case 0x19:  // Key Locker
    case 0x1B:  // PCONFIG
      r = CpuidRegs{};
      break;
    case 0xD:
      if (subleaf == 0) {
        r.eax &= ~kXcr0Mpx;
      } else if (subleaf == 1) {
        r.ecx = 0;  // IA32_XSS bits 31:0: no supervisor state
        r.edx = 0;
      } else if (subleaf < 64) {
        // A component that is supervisor (ECX bit 0) or MPX is not offered.
        const bool supervisor = (r.ecx & 1) != 0;
        if (supervisor || subleaf == 3 || subleaf == 4) r = CpuidRegs{};
      }
      break;
    case 0x80000008:
      // The physical address width: never more than EPT maps (vmx/ept.hpp),
      // the same number microhv checks every GPA against.
      r.eax = (r.eax & ~0xFFu) | guest_address_bits(r.eax & 0xFF);
      break;
    default:
      break;
  }
  return r;
}

}  // namespace microhv::vmx
