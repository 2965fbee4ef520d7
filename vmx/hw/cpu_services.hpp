// The CPU as the portable exit handlers use it (CpuServices): native CPUID,
// fault-safe MSR access and XSETBV, port I/O and the monitor-trap-flag step,
// the guest's local APIC (ICR writes go through the INIT emulation,
// vmx/hw/init_ipi.cpp). Stateless: per-CPU state is found through the GS
// base.
#pragma once

#include "vmx/exits.hpp"

namespace microhv::vmx::hw {

class HwCpu final : public CpuServices {
 public:
  CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) override;
  bool rdmsr(uint32_t msr, uint64_t* value) override;
  bool wrmsr(uint32_t msr, uint64_t value) override;
  uint64_t rdtsc() override;
  bool read_xmm(unsigned reg, unsigned lane, uint32_t* value) override;
  bool xsetbv(uint32_t index, uint64_t value) override;
  void wbinvd() override;
  uint32_t io_in(uint16_t port, uint8_t size) override;
  void io_out(uint16_t port, uint8_t size, uint32_t value) override;
  bool step_io_natively(uint16_t port) override;
  bool end_io_step() override;
  void reset_debug_registers() override;
  void apic_write(uint32_t offset, uint32_t value) override;
  uint32_t apic_read(uint32_t offset) override;
  void x2apic_icr_write(uint64_t value) override;
};

// A guest write to its ICR (xAPIC ICR low with ICR high as the guest set
// it, or the x2APIC ICR MSR): see decide_icr in vmx/smp.hpp.
struct Vcpu;
void guest_icr_write(Vcpu& self, uint32_t low, uint32_t dest, bool x2apic, uint64_t x2apic_value);

}  // namespace microhv::vmx::hw
