#include "vmx/apic_base.hpp"

#include "arch/apic.hpp"
#include "arch/msr.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vmx {
namespace {

namespace apic = arch::apic;
namespace base_bits = arch::apic::base;

uint64_t mode_bits(ApicMode m) {
  switch (m) {
    case ApicMode::kDisabled:
      return 0;
    case ApicMode::kXapic:
      return base_bits::kEnable;
    case ApicMode::kX2apic:
      return base_bits::kEnable | base_bits::kX2apic;
  }
  return 0;
}

uint64_t real_value(const ApicState& s, ApicMode m) {
  return s.base.value() | (s.bsp ? base_bits::kBsp : 0) | mode_bits(m);
}

enum class RealWrite : uint8_t { kDone, kIgnored, kFaulted };

// Writes the real IA32_APIC_BASE and reads it back: did the CPU take it?
RealWrite set_real_mode(CpuServices& cpu, const ApicState& s, ApicMode m) {
  if (!cpu.wrmsr(arch::msr::kApicBase, real_value(s, m))) return RealWrite::kFaulted;
  uint64_t now = 0;
  const bool taken = cpu.rdmsr(arch::msr::kApicBase, &now) &&
                     (now & (base_bits::kEnable | base_bits::kX2apic)) == mode_bits(m);
  return taken ? RealWrite::kDone : RealWrite::kIgnored;
}

void log_ignored_enable(ApicState& s) {
  if (!s.ignored_logged) {  // once per VP: a guest can repeat it
    s.ignored_logged = true;
    log::error(
        "local APIC: the CPU ignored enabling its APIC again (Bochs 2.7 ignores IA32_APIC_BASE "
        "writes while the APIC is disabled): the VP keeps the disabled APIC the hardware shows\n");
  }
}

// The LVT entries this APIC has: timer, LINT0, LINT1 and error always;
// performance counters from max LVT 4, thermal from 5 (SDM 10.5.1).
void mask_lvts(CpuServices& cpu) {
  const uint32_t max_lvt = (cpu.apic_read(apic::kVersion) >> 16) & 0xFF;
  cpu.apic_write(apic::kLvtTimer, apic::kLvtMasked);
  cpu.apic_write(apic::kLvtError, apic::kLvtMasked);
  if (max_lvt >= 4) cpu.apic_write(apic::kLvtPerf, apic::kLvtMasked);
  if (max_lvt >= 5) cpu.apic_write(apic::kLvtThermal, apic::kLvtMasked);
  cpu.apic_write(apic::kTimerInitialCount, 0);  // stops the timer
}

// A disabled APIC as interrupts see it: the INTR and NMI pins reach the
// core directly, nothing else is delivered.
void as_disabled(CpuServices& cpu) {
  mask_lvts(cpu);
  cpu.apic_write(apic::kTpr, 0);
  cpu.apic_write(apic::kLvtLint0, apic::kLvtExtInt);
  cpu.apic_write(apic::kLvtLint1, apic::kLvtNmi);
  cpu.apic_write(apic::kSvr, apic::kSvrEnable | apic::kSvrAfterReset);
}

// The state after power-up (SDM 10.4.7.1): LVTs masked, TPR, timer, LDR 0,
// DFR all ones, nothing in service, software-disabled. IRR cannot be
// cleared by software: what is pending stays pending.
void as_after_reset(CpuServices& cpu) {
  mask_lvts(cpu);
  cpu.apic_write(apic::kLvtLint0, apic::kLvtMasked);
  cpu.apic_write(apic::kLvtLint1, apic::kLvtMasked);
  cpu.apic_write(apic::kTpr, 0);
  cpu.apic_write(apic::kTimerDivide, 0);
  cpu.apic_write(apic::kLdr, 0);
  cpu.apic_write(apic::kDfr, 0xFFFFFFFFu);
  cpu.apic_write(apic::kEsr, 0);
  // Each EOI retires the highest in-service vector.
  uint32_t in_service = 0;
  for (uint32_t i = 0; i < 8; ++i) {
    in_service += static_cast<uint32_t>(__builtin_popcount(cpu.apic_read(apic::kIsr0 + 0x10 * i)));
  }
  for (uint32_t i = 0; i < in_service; ++i) cpu.apic_write(apic::kEoi, 0);
  cpu.apic_write(apic::kSvr, apic::kSvrAfterReset);
}

}  // namespace

uint64_t apic_base_value(const ApicState& s) {
  return real_value(s, s.mode);
}

ApicBaseWrite decide_apic_base_write(const ApicState& s, const CpuFacts& f, uint64_t value) {
  ApicBaseWrite w;
  const uint64_t above_maxphyaddr = f.phys_addr_bits >= 64 ? 0 : ~0ull << f.phys_addr_bits;
  uint64_t reserved = base_bits::kReservedLow | above_maxphyaddr;
  if (!f.x2apic) reserved |= base_bits::kX2apic;
  auto gp = [&w](const char* why) {
    w.gp = true;
    w.why = why;
    return w;
  };
  if ((value & reserved) != 0) return gp("reserved bit set");
  const bool en = (value & base_bits::kEnable) != 0, extd = (value & base_bits::kX2apic) != 0;
  if (!en && extd) return gp("EN = 0 with EXTD = 1 is the invalid state");
  w.to = !en ? ApicMode::kDisabled : extd ? ApicMode::kX2apic : ApicMode::kXapic;
  if ((value & base_bits::kPageMask & ~above_maxphyaddr) != s.base.value()) {
    return gp("relocating the APIC is refused");
  }
  if (s.mode == ApicMode::kX2apic && w.to == ApicMode::kXapic) {
    return gp("x2APIC -> xAPIC must pass through disabled");
  }
  if (s.mode == ApicMode::kDisabled && w.to == ApicMode::kX2apic) {
    return gp("disabled -> x2APIC must pass through xAPIC");
  }
  return w;
}

bool apply_apic_transition(CpuServices& cpu, ApicState& s, ApicMode to) {
  if (to == s.mode) return true;
  switch (to) {
    case ApicMode::kX2apic:  // from xAPIC (with the real APIC in xAPIC mode)
      if (set_real_mode(cpu, s, ApicMode::kX2apic) != RealWrite::kDone) return false;
      break;
    case ApicMode::kDisabled:
      s.disabled_emulated = true;
      if (s.mode == ApicMode::kX2apic) {
        // The real APIC must leave x2APIC mode through disabled; it comes
        // back in xAPIC mode at once, unless the CPU ignores that (Bochs 2.7).
        if (set_real_mode(cpu, s, ApicMode::kDisabled) != RealWrite::kDone) return false;
        s.disabled_emulated = set_real_mode(cpu, s, ApicMode::kXapic) == RealWrite::kDone;
        if (!s.disabled_emulated) log_ignored_enable(s);
      }
      if (s.disabled_emulated) as_disabled(cpu);
      break;
    case ApicMode::kXapic:  // from disabled
      if (!s.disabled_emulated) {
        const RealWrite r = set_real_mode(cpu, s, ApicMode::kXapic);
        if (r == RealWrite::kFaulted) return false;
        if (r == RealWrite::kIgnored) {
          log_ignored_enable(s);  // no fault on the hardware either: the write just did nothing
          return true;
        }
      }
      s.disabled_emulated = false;
      as_after_reset(cpu);
      break;
  }
  s.mode = to;
  return true;
}

}  // namespace microhv::vmx
