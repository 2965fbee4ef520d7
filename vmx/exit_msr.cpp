// RDMSR / WRMSR exits (reasons 31, 32): every MSR the bitmap does not pass
// through, decided by the MSR policy (vmx/msr_policy.hpp). A refused access
// is #GP with RIP unchanged and a rate-limited log line; an emulated one
// never touches the real MSR unless its row says so, and every real access
// is fault-safe: a fault becomes the guest's #GP.
#include "arch/apic.hpp"
#include "arch/msr.hpp"
#include "arch/x86.hpp"
#include "kernel/base/log.hpp"
#include "vmx/apic_base.hpp"
#include "vmx/exit_handlers.hpp"
#include "vmx/msr_emulation.hpp"
#include "vmx/msr_policy.hpp"
#include "vmx/mtrr.hpp"

namespace microhv::vmx {
namespace {

namespace msr = arch::msr;

enum class Done : uint8_t { kOk, kGp, kVmcsFailed };

// Synthetic MSRs are the core's business (a #GP there is TLFS behaviour);
// everything else the policy refused is worth a line, a few times.
void log_refused(ExitContext& c, bool write, uint32_t m, uint64_t value, const MsrRule* rule) {
  if (rule != nullptr && rule->how == MsrEmulation::kSynthetic) return;
  if (c.refused_log != nullptr && !c.refused_log->allow()) return;
  const char* what = rule != nullptr ? rule->name : "not in the MSR policy, vmx/msr_policy.cpp";
  if (write) {
    log::info("msr: guest WRMSR 0x%x = 0x%llx (%s): #GP (refusals are logged a few times only)\n",
              m, static_cast<unsigned long long>(value), what);
  } else {
    log::info("msr: guest RDMSR 0x%x (%s): #GP (refusals are logged a few times only)\n", m, what);
  }
}

// The VMCS guest-state field holding an MSR's guest value.
bool vmcs_field_of(uint32_t m, Field* f) {
  switch (m) {
    case msr::kSysenterCs:
      *f = Field::kGuestSysenterCs;
      return true;
    case msr::kSysenterEsp:
      *f = Field::kGuestSysenterEsp;
      return true;
    case msr::kSysenterEip:
      *f = Field::kGuestSysenterEip;
      return true;
    case msr::kDebugctl:
      *f = Field::kGuestDebugctl;
      return true;
    case msr::kPat:
      *f = Field::kGuestPat;
      return true;
    case msr::kEfer:
      *f = Field::kGuestEfer;
      return true;
    case msr::kFsBase:
      *f = Field::kGuestFsBase;
      return true;
    case msr::kGsBase:
      *f = Field::kGuestGsBase;
      return true;
    default:
      return false;
  }
}

// A guest value that lives in the VMCS: checked as WRMSR checks it, then
// written there. Replaying the WRMSR in VMX root would change microhv's
// own register and lose the guest's value at the next entry.
Done write_vmcs_msr(ExitContext& c, uint32_t m, uint64_t v) {
  Field f{};
  if (!vmcs_field_of(m, &f)) return Done::kGp;
  uint64_t cr4 = 0, cr0 = 0, old = 0;
  if (!visible_cr4(c, &cr4) || !visible_cr0(c, &cr0) || !read(c, f, &old)) return Done::kVmcsFailed;
  const bool la57 = (cr4 & (1ull << 12)) != 0;
  switch (m) {
    case msr::kSysenterCs:
      v &= 0xFFFFFFFFull;
      break;
    case msr::kSysenterEsp:
    case msr::kSysenterEip:
    case msr::kFsBase:
    case msr::kGsBase:
      if (!is_canonical(v, la57)) return Done::kGp;
      break;
    case msr::kPat:
      if (!pat_valid(v)) return Done::kGp;
      break;
    case msr::kDebugctl:
      if (!filter_debugctl(c.cpu_state->facts, v, &v)) return Done::kGp;
      break;
    case msr::kEfer: {
      // SCE, LME, NXE writable; LMA follows CR0.PG (read-only here); LME
      // cannot change while paging is on (SDM Vol. 3A 9.8.5).
      namespace e = arch::efer;
      constexpr uint64_t kSce = 1ull << 0, kNxe = 1ull << 11;
      if ((v & ~(kSce | e::kLme | e::kLma | kNxe)) != 0) return Done::kGp;
      if ((cr0 & arch::cr0::kPg) != 0 && ((v ^ old) & e::kLme) != 0) return Done::kGp;
      v = (v & ~e::kLma) | (old & e::kLma);
      break;
    }
    default:
      return Done::kGp;
  }
  write(c, f, v);
  return Done::kOk;
}

Done read_emulated(ExitContext& c, const MsrRule& r, uint32_t m, uint64_t* v) {
  VpCpuState& s = *c.cpu_state;
  switch (r.how) {
    case MsrEmulation::kSynthetic:
      return c.core.read_msr(m, v) == MsrResult::kOk ? Done::kOk : Done::kGp;
    case MsrEmulation::kVmcsField:
    case MsrEmulation::kDebugctl: {
      Field f{};
      if (!vmcs_field_of(m, &f)) return Done::kGp;
      return read(c, f, v) ? Done::kOk : Done::kVmcsFailed;
    }
    case MsrEmulation::kTsc:
      *v = c.cpu.rdtsc() + s.tsc_offset;
      return Done::kOk;
    case MsrEmulation::kTscAdjust:
      if (!s.facts.tsc_adjust) return Done::kGp;
      *v = s.tsc_adjust;
      return Done::kOk;
    case MsrEmulation::kTscDeadline: {
      uint64_t real = 0;
      if (!s.facts.tsc_deadline || !c.cpu.rdmsr(m, &real)) return Done::kGp;
      *v = tsc_deadline_to_guest(real, s.tsc_offset);
      return Done::kOk;
    }
    case MsrEmulation::kApicBase:
      *v = apic_base_value(s.apic);
      return Done::kOk;
    case MsrEmulation::kFeatureControl:
      *v = msr::feature_control::kLock;
      return Done::kOk;
    case MsrEmulation::kMtrrCap:
    case MsrEmulation::kMtrrDefType:
    case MsrEmulation::kMtrrFixed:
    case MsrEmulation::kMtrrVariable:
      return mtrr_read(s.mtrr, s.facts, m, v) ? Done::kOk : Done::kGp;
    case MsrEmulation::kMiscEnable:
      if (!s.facts.misc_enable) return Done::kGp;
      *v = s.misc_enable;
      return Done::kOk;
    case MsrEmulation::kMiscFeatureEnables:
      *v = 0;
      return Done::kOk;
    case MsrEmulation::kPlatformInfo:
      if (!s.facts.platform_info) return Done::kGp;
      *v = s.platform_info;
      return Done::kOk;
    case MsrEmulation::kNone:
    case MsrEmulation::kX2apicIcr:
    case MsrEmulation::kXss:
      // Rows whose reads pass through: should this exit happen anyway, the
      // real MSR answers (fault-safe).
      return c.cpu.rdmsr(m, v) ? Done::kOk : Done::kGp;
  }
  return Done::kGp;
}

Done write_emulated(ExitContext& c, const MsrRule& r, uint32_t m, uint64_t v) {
  VpCpuState& s = *c.cpu_state;
  switch (r.how) {
    case MsrEmulation::kSynthetic:
      return c.core.write_msr(m, v) == MsrResult::kOk ? Done::kOk : Done::kGp;
    case MsrEmulation::kVmcsField:
    case MsrEmulation::kDebugctl:
      return write_vmcs_msr(c, m, v);
    case MsrEmulation::kTsc:
      if (!s.facts.tsc_offsetting) return Done::kOk;  // no offset to move: ignored
      write_guest_tsc(s, c.cpu.rdtsc(), v);
      write(c, Field::kTscOffset, s.tsc_offset);
      return Done::kOk;
    case MsrEmulation::kTscAdjust:
      if (!s.facts.tsc_adjust) return Done::kGp;
      if (!s.facts.tsc_offsetting) return Done::kOk;
      write_guest_tsc_adjust(s, v);
      write(c, Field::kTscOffset, s.tsc_offset);
      return Done::kOk;
    case MsrEmulation::kTscDeadline:
      if (!s.facts.tsc_deadline) return Done::kGp;
      return c.cpu.wrmsr(m, tsc_deadline_to_real(v, s.tsc_offset)) ? Done::kOk : Done::kGp;
    case MsrEmulation::kApicBase: {
      const ApicBaseWrite w = decide_apic_base_write(s.apic, s.facts, v);
      if (w.gp) return Done::kGp;
      return apply_apic_transition(c.cpu, s.apic, w.to) ? Done::kOk : Done::kGp;
    }
    case MsrEmulation::kX2apicIcr:
      if (s.apic.mode != ApicMode::kX2apic ||
          (static_cast<uint32_t>(v) & arch::apic::icr::kX2apicReserved) != 0) {
        return Done::kGp;
      }
      c.cpu.x2apic_icr_write(v);
      return Done::kOk;
    case MsrEmulation::kMtrrCap:
    case MsrEmulation::kMtrrDefType:
    case MsrEmulation::kMtrrFixed:
    case MsrEmulation::kMtrrVariable:
      return mtrr_write(s.mtrr, s.facts, m, v) ? Done::kOk : Done::kGp;
    case MsrEmulation::kMiscEnable: {
      if (!s.facts.misc_enable) return Done::kGp;
      namespace me = msr::misc_enable;
      // MONITOR FSM stays 0: setting it would offer MONITOR/MWAIT, which
      // the guest does not get (vmx/guest_cpuid.cpp).
      constexpr uint64_t kReadOnly =
          me::kPerfMonAvailable | me::kBtsUnavailable | me::kPebsUnavailable | me::kMonitorFsm;
      s.misc_enable = (v & ~kReadOnly) | (s.misc_enable & kReadOnly);
      return Done::kOk;
    }
    case MsrEmulation::kMiscFeatureEnables:
      return v == 0 ? Done::kOk : Done::kGp;
    case MsrEmulation::kXss:
      if (!s.facts.xss || v != 0) return Done::kGp;
      return c.cpu.wrmsr(m, 0) ? Done::kOk : Done::kGp;
    case MsrEmulation::kFeatureControl:
    case MsrEmulation::kPlatformInfo:
      return Done::kGp;
    case MsrEmulation::kNone:
      // A row whose writes pass through, exiting anyway: the real MSR.
      return c.cpu.wrmsr(m, v) ? Done::kOk : Done::kGp;
  }
  return Done::kGp;
}

ExitAction finish(ExitContext& c, Done d, bool write, uint32_t m, uint64_t value,
                  const MsrRule* rule) {
  if (d == Done::kVmcsFailed) return vmcs_failed(c);
  if (d == Done::kGp) {
    log_refused(c, write, m, value, rule);
    return inject_gp(c);
  }
  return ExitAction::kAdvance;
}

}  // namespace

ExitAction on_rdmsr(ExitContext& c) {
  if (c.cpu_state == nullptr) return stop(c, "MSR exit without the VP's CPU state");
  const uint32_t m = static_cast<uint32_t>(c.regs.rcx);
  const MsrRule* rule = find_msr_rule(m);
  uint64_t value = 0;
  Done d = Done::kGp;
  if (rule != nullptr && rule->read != MsrRead::kGp) d = read_emulated(c, *rule, m, &value);
  const ExitAction a = finish(c, d, false, m, 0, rule);
  if (a == ExitAction::kAdvance) {
    c.regs.rax = low32(value);
    c.regs.rdx = value >> 32;
  }
  return a;
}

ExitAction on_wrmsr(ExitContext& c) {
  if (c.cpu_state == nullptr) return stop(c, "MSR exit without the VP's CPU state");
  const uint32_t m = static_cast<uint32_t>(c.regs.rcx);
  const uint64_t value = (c.regs.rdx << 32) | low32(c.regs.rax);
  const MsrRule* rule = find_msr_rule(m);
  Done d = Done::kGp;
  if (rule != nullptr) {
    switch (rule->write) {
      case MsrWrite::kGp:
        break;
      case MsrWrite::kIgnore:
        d = Done::kOk;
        break;
      case MsrWrite::kPass:
      case MsrWrite::kEmulate:
        d = write_emulated(c, *rule, m, value);
        break;
    }
  }
  return finish(c, d, true, m, value, rule);
}

}  // namespace microhv::vmx
