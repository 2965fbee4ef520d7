#include "vmx/hw/cpu_services.hpp"

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/x86.hpp"
#include "vmx/hw/host.hpp"
#include "vmx/init_sipi.hpp"

extern "C" {
// vmx/hw/entry.S: the instruction, or 1 when it faulted (#GP; #UD for XSETBV
// without CR4.OSXSAVE), recovered by microhv_host_exception.
int microhv_rdmsr_safe(uint32_t msr, uint64_t* value);
int microhv_wrmsr_safe(uint32_t msr, uint64_t value);
int microhv_xsetbv_safe(uint32_t index, uint64_t value);
}

namespace microhv::vmx::hw {
namespace {

namespace apic = arch::apic;

void set_io_intercept(uint64_t bitmap_a, uint16_t port, bool on) {
  auto* bits = reinterpret_cast<uint8_t*>(bitmap_a);
  if (on) {
    bits[port / 8] |= static_cast<uint8_t>(1u << (port % 8));
  } else {
    bits[port / 8] &= static_cast<uint8_t>(~(1u << (port % 8)));
  }
}

}  // namespace

CpuidRegs HwCpu::cpuid(uint32_t leaf, uint32_t subleaf) {
  const arch::CpuidResult r = arch::cpuid(leaf, subleaf);
  return CpuidRegs{r.eax, r.ebx, r.ecx, r.edx};
}

bool HwCpu::rdmsr(uint32_t msr, uint64_t* value) {
  return microhv_rdmsr_safe(msr, value) == 0;
}

bool HwCpu::wrmsr(uint32_t msr, uint64_t value) {
  return microhv_wrmsr_safe(msr, value) == 0;
}

uint64_t HwCpu::rdtsc() {
  return arch::rdtsc();
}

// The guest's XMM registers are still live: nothing in microhv (built with
// -mgeneral-regs-only) touches them. SSE needs CR4.OSFXSR and CR0.EM/TS
// clear in the host's own control registers (microhv's CR0/CR4 at the exit).
bool HwCpu::read_xmm(unsigned reg, unsigned lane, uint32_t* value) {
  if ((arch::read_cr4() & arch::cr4::kOsfxsr) == 0 ||
      (arch::read_cr0() & (arch::cr0::kEm | arch::cr0::kTs)) != 0 || reg > 15 || lane > 3) {
    return false;
  }
  uint32_t d[4];  // MOVDQU (SSE2) stores the register without touching another
#define MICROHV_XMM_CASE(n)                                        \
  case n:                                                          \
    asm volatile("movdqu %%xmm" #n ", %0" : "=m"(d) : : "memory"); \
    break;
  switch (reg) {
    MICROHV_XMM_CASE(0)
    MICROHV_XMM_CASE(1)
    MICROHV_XMM_CASE(2)
    MICROHV_XMM_CASE(3)
    MICROHV_XMM_CASE(4)
    MICROHV_XMM_CASE(5)
    MICROHV_XMM_CASE(6)
    MICROHV_XMM_CASE(7)
    MICROHV_XMM_CASE(8)
    MICROHV_XMM_CASE(9)
    MICROHV_XMM_CASE(10)
    MICROHV_XMM_CASE(11)
    MICROHV_XMM_CASE(12)
    MICROHV_XMM_CASE(13)
    MICROHV_XMM_CASE(14)
    MICROHV_XMM_CASE(15)
  }
#undef MICROHV_XMM_CASE
  *value = d[lane];
  return true;
}

bool HwCpu::xsetbv(uint32_t index, uint64_t value) {
  return microhv_xsetbv_safe(index, value) == 0;
}

void HwCpu::wbinvd() {
  asm volatile("wbinvd" : : : "memory");
}

void HwCpu::reset_debug_registers() {
  const uint64_t zero = 0, dr6 = kDr6AfterInit;
  asm volatile("mov %0, %%dr0; mov %0, %%dr1; mov %0, %%dr2; mov %0, %%dr3; mov %1, %%dr6"
               :
               : "r"(zero), "r"(dr6));
}

// ---- Port I/O: only the test device port ever exits (I/O bitmap); what is
// not its 32-bit OUT runs on the real port.

uint32_t HwCpu::io_in(uint16_t port, uint8_t size) {
  if (current_vcpu()->host->passthrough_logged.allow()) {
    log::info(
        "testdev: %u-byte IN from port 0x%x passed through (first; later ones are not logged)\n",
        size, port);
  }
  switch (size) {
    case 1:
      return arch::inb(port);
    case 2:
      return arch::inw(port);
    default:
      return arch::inl(port);
  }
}

void HwCpu::io_out(uint16_t port, uint8_t size, uint32_t value) {
  if (current_vcpu()->host->passthrough_logged.allow()) {
    log::info(
        "testdev: %u-byte OUT 0x%x to port 0x%x passed through (first; later ones are not "
        "logged)\n",
        size, value, port);
  }
  switch (size) {
    case 1:
      arch::outb(port, static_cast<uint8_t>(value));
      break;
    case 2:
      arch::outw(port, static_cast<uint16_t>(value));
      break;
    default:
      arch::outl(port, value);
      break;
  }
}

// The one intercepted port (the test device) stops exiting on this CPU (its
// own I/O bitmap A) for exactly one guest instruction: the monitor trap flag
// brings the VM back right after it.
bool HwCpu::step_io_natively(uint16_t) {
  Vcpu& v = *current_vcpu();
  if (!v.host->mtf) return false;
  set_io_intercept(v.launch->io_bitmap_a, TestDevice::kIoPort, false);
  v.io_step = true;
  v.entry.proc_controls |= proc::kMonitorTrapFlag;
  return v.vmcs.write(Field::kProcControls, v.entry.proc_controls);
}

bool HwCpu::end_io_step() {
  Vcpu& v = *current_vcpu();
  if (!v.io_step) return false;
  if (v.host->info.testdev) set_io_intercept(v.launch->io_bitmap_a, TestDevice::kIoPort, true);
  v.io_step = false;
  v.entry.proc_controls &= ~proc::kMonitorTrapFlag;
  return v.vmcs.write(Field::kProcControls, v.entry.proc_controls);
}

// ---- The guest's local APIC. Writes to the xAPIC page and to the x2APIC
// ICR exit; everything but an ICR write is passed on as written.

void HwCpu::apic_write(uint32_t offset, uint32_t value) {
  const uint64_t base = apic_base();
  if (offset == apic::kIcrLow) {
    const uint32_t dest = *xapic_reg(base, apic::kIcrHigh) >> apic::kXapicDestShift;
    guest_icr_write(*current_vcpu(), value, dest, false, 0);
    return;
  }
  *xapic_reg(base, offset) = value;
}

uint32_t HwCpu::apic_read(uint32_t offset) {
  return *xapic_reg(apic_base(), offset);
}

void HwCpu::x2apic_icr_write(uint64_t value) {
  guest_icr_write(*current_vcpu(), static_cast<uint32_t>(value), static_cast<uint32_t>(value >> 32),
                  true, value);
}

}  // namespace microhv::vmx::hw
