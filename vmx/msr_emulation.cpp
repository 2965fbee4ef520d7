#include "vmx/msr_emulation.hpp"

#include "arch/apic.hpp"
#include "arch/msr.hpp"
#include "arch/x86.hpp"
#include "vmx/mtrr.hpp"

namespace microhv::vmx {
namespace {

namespace msr = arch::msr;

}  // namespace

void capture_vp_cpu_state(CpuServices& cpu, bool tsc_offsetting, VpCpuState* s) {
  *s = VpCpuState{};
  CpuFacts& f = s->facts;
  const CpuidRegs l1 = cpu.cpuid(1, 0);
  const CpuidRegs l0 = cpu.cpuid(0, 0);
  const CpuidRegs l7 = l0.eax >= 7 ? cpu.cpuid(7, 0) : CpuidRegs{};
  const CpuidRegs ld = l0.eax >= 0xD ? cpu.cpuid(0xD, 1) : CpuidRegs{};
  const CpuidRegs ext = cpu.cpuid(0x80000000, 0);
  f.phys_addr_bits =
      ext.eax >= 0x80000008 ? static_cast<uint8_t>(cpu.cpuid(0x80000008, 0).eax) : uint8_t{36};
  f.x2apic = (l1.ecx & arch::cpuid1_ecx::kX2apic) != 0;
  f.tsc_deadline = (l1.ecx & arch::cpuid1_ecx::kTscDeadline) != 0;
  f.mtrr = (l1.edx & arch::cpuid1_edx::kMtrr) != 0;
  f.tsc_adjust = (l7.ebx & arch::cpuid7_ebx::kTscAdjust) != 0;
  f.bus_lock_detect = (l7.ecx & arch::cpuid7_ecx::kBusLockDetect) != 0;
  f.xss = (ld.eax & (1u << 3)) != 0;
  f.tsc_offsetting = tsc_offsetting;

  uint64_t v = 0;
  if (cpu.rdmsr(msr::kApicBase, &v)) {
    namespace bits = arch::apic::base;
    const uint64_t addr_mask = f.phys_addr_bits >= 64 ? ~0ull : (1ull << f.phys_addr_bits) - 1;
    s->apic.base = Gpa(v & bits::kPageMask & addr_mask);
    s->apic.bsp = (v & bits::kBsp) != 0;
    s->apic.mode = (v & bits::kEnable) == 0   ? ApicMode::kDisabled
                   : (v & bits::kX2apic) != 0 ? ApicMode::kX2apic
                                              : ApicMode::kXapic;
  }
  capture_mtrrs(cpu, f, s->mtrr);
  f.misc_enable = cpu.rdmsr(msr::kMiscEnable, &v);
  if (f.misc_enable) {
    // The PMU is hidden: "performance monitoring available" reads 0 and
    // BTS/PEBS read unavailable; MONITOR/MWAIT are hidden (vmx/guest_cpuid):
    // "ENABLE MONITOR FSM" reads 0 (SDM Vol. 4 Table 2-2).
    s->misc_enable = (v & ~(msr::misc_enable::kPerfMonAvailable | msr::misc_enable::kMonitorFsm)) |
                     msr::misc_enable::kBtsUnavailable | msr::misc_enable::kPebsUnavailable;
  }
  f.platform_info = cpu.rdmsr(msr::kPlatformInfo, &v);
  if (f.platform_info) s->platform_info = v & ~(1ull << 31);  // no CPUID faulting
  if (f.tsc_adjust && cpu.rdmsr(msr::kTscAdjust, &v)) s->tsc_adjust = v;
}

void write_guest_tsc(VpCpuState& s, uint64_t real_tsc, uint64_t value) {
  const uint64_t offset = value - real_tsc;  // modulo 2^64, as the hardware adds it
  s.tsc_adjust += offset - s.tsc_offset;
  s.tsc_offset = offset;
}

void write_guest_tsc_adjust(VpCpuState& s, uint64_t value) {
  s.tsc_offset += value - s.tsc_adjust;
  s.tsc_adjust = value;
}

uint64_t tsc_deadline_to_real(uint64_t guest_deadline, uint64_t offset) {
  if (guest_deadline == 0) return 0;
  // The guest's TSC is real + offset (offset taken as signed); a deadline
  // below a positive offset lies before real TSC 0, long past.
  if (static_cast<int64_t>(offset) >= 0) {
    return guest_deadline <= offset ? 1 : guest_deadline - offset;
  }
  // The guest's TSC is behind the real one: a deadline beyond what 64 bits
  // reach in real time is never.
  const uint64_t behind = 0 - offset;
  return guest_deadline > ~0ull - behind ? ~0ull : guest_deadline + behind;
}

uint64_t tsc_deadline_to_guest(uint64_t real_deadline, uint64_t offset) {
  return real_deadline == 0 ? 0 : real_deadline + offset;
}

bool filter_debugctl(const CpuFacts& f, uint64_t value, uint64_t* out) {
  namespace bits = arch::msr::debugctl;
  uint64_t allowed = bits::kBtf;
  if (f.bus_lock_detect) allowed |= bits::kBusLockDetect;
  value &= ~bits::kLbr;
  if ((value & ~allowed) != 0) return false;
  *out = value;
  return true;
}

bool pat_valid(uint64_t pat) {
  for (unsigned i = 0; i < 8; ++i) {
    const uint64_t type = (pat >> (8 * i)) & 0xFF;
    if (type == 2 || type == 3 || type > 7) return false;
  }
  return true;
}

bool is_canonical(uint64_t address, bool la57) {
  const unsigned bits = la57 ? 57 : 48;
  const int64_t extended = static_cast<int64_t>(address << (64 - bits)) >> (64 - bits);
  return static_cast<uint64_t>(extended) == address;
}

}  // namespace microhv::vmx
