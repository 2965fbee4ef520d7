#include "vmx/exits.hpp"

#include "arch/apic.hpp"
#include "arch/x86.hpp"
#include "vmx/exit_handlers.hpp"
#include "vmx/guest_cpuid.hpp"

namespace microhv::vmx {
namespace {

namespace cr0 = arch::cr0;
namespace efer = arch::efer;
namespace access = arch::access;

// ---- CPUID (reason 10): native values as vmx/guest_cpuid.hpp shapes them;
// the Hyper-V leaves from the core.
ExitAction on_cpuid(ExitContext& c) {
  const uint32_t leaf = static_cast<uint32_t>(c.regs.rax);
  const uint32_t sub = static_cast<uint32_t>(c.regs.rcx);
  CpuidRegs r{};
  if (leaf >= kHvCpuidFirst && leaf <= kHvCpuidLast) {
    if (!c.core.cpuid(leaf, &r)) r = CpuidRegs{};
  } else {
    GuestCpuidContext vp{};
    if (!visible_cr4(c, &vp.cr4)) return vmcs_failed(c);
    vp.apic_enabled = c.cpu_state == nullptr || c.cpu_state->apic.mode != ApicMode::kDisabled;
    r = guest_cpuid(leaf, sub, c.cpu.cpuid(leaf, sub), vp);
  }
  c.regs.rax = r.eax;
  c.regs.rbx = r.ebx;
  c.regs.rcx = r.ecx;
  c.regs.rdx = r.edx;
  return ExitAction::kAdvance;
}

// ---- VMCALL (18): the hypercall ABI belongs to the core.
ExitAction on_vmcall(ExitContext& c) {
  uint64_t cr0 = 0, rflags = 0, efer = 0, cs_access = 0;
  uint32_t cpl = 0;
  if (!read(c, Field::kGuestCr0, &cr0) || !read(c, Field::kGuestRflags, &rflags) ||
      !read(c, Field::kGuestEfer, &efer) || !read(c, Field::kGuestCsAccess, &cs_access) ||
      !guest_cpl(c, &cpl)) {
    return vmcs_failed(c);
  }
  HypercallRegs in{};
  in.mode = guest_cpu_mode(cr0, rflags, efer, static_cast<uint32_t>(cs_access));
  in.cpl = static_cast<uint8_t>(cpl);
  in.rax = c.regs.rax;
  in.rbx = c.regs.rbx;
  in.rcx = c.regs.rcx;
  in.rdx = c.regs.rdx;
  in.rsi = c.regs.rsi;
  in.rdi = c.regs.rdi;
  in.r8 = c.regs.r8;
  const HypercallOutcome out = c.core.hypercall(in);
  switch (out.end) {
    case HypercallEnd::kUndefinedOpcode:
      return inject_ud(c);
    case HypercallEnd::kResult:
      store_hypercall_result(in, out.value, &c.regs.rax, &c.regs.rdx);
      return ExitAction::kAdvance;
    case HypercallEnd::kContinue:
      break;
  }
  // TLFS "Hypercall Continuation": the rep start advanced in RCX (EDX:EAX),
  // RIP still at the VMCALL. An STI or MOV-SS shadow covered this VMCALL
  // only; it ends here as it would after the instruction, so the guest's
  // pending interrupts are taken before the call runs again.
  store_hypercall_control(in, out.value, &c.regs.rcx, &c.regs.rax, &c.regs.rdx);
  uint64_t intr = 0;
  if (!read(c, Field::kGuestInterruptibility, &intr)) return vmcs_failed(c);
  constexpr uint64_t kShadows =
      interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs;
  if ((intr & kShadows) != 0) write(c, Field::kGuestInterruptibility, intr & ~kShadows);
  return ExitAction::kRetry;
}

// ---- XSETBV (55): validated, then executed for the guest.
ExitAction on_xsetbv(ExitContext& c) {
  uint64_t cr4 = 0;
  uint32_t cpl = 0;
  if (!visible_cr4(c, &cr4) || !guest_cpl(c, &cpl)) return vmcs_failed(c);
  if ((cr4 & arch::cr4::kOsxsave) == 0) return inject_ud(c);
  if (cpl != 0) return inject_gp(c);
  const uint32_t index = static_cast<uint32_t>(c.regs.rcx);
  const uint64_t value = (c.regs.rdx << 32) | low32(c.regs.rax);
  // What CPUID tells the guest it may enable (MPX is hidden).
  const CpuidRegs d = guest_cpuid(0xD, 0, c.cpu.cpuid(0xD, 0), GuestCpuidContext{true, cr4});
  const uint64_t supported = (static_cast<uint64_t>(d.edx) << 32) | d.eax;
  if (!xsetbv_valid(index, value, supported) || !c.cpu.xsetbv(index, value)) return inject_gp(c);
  return ExitAction::kAdvance;
}

// ---- INVD (13): would drop dirty lines, microhv's included; write back
// and invalidate instead (the firmware only uses INVD with cache-as-RAM,
// long before microhv runs).
ExitAction on_invd(ExitContext& c) {
  c.cpu.wbinvd();
  return ExitAction::kAdvance;
}

// ---- MONITOR (39), MWAIT (36): CPUID.1:ECX.MONITOR reads 0 in the guest
// (vmx/guest_cpuid.cpp), so a guest that asks idles with HLT, which the
// VMX-preemption timer behind the synthetic timers counts through (it does
// not in C-states deeper than C2, SDM Vol. 3C 26.5.1). Never executed for
// the guest. At CPL 0 both complete as NOPs rather than #UD: firmware decides
// its AP idle loop (MWAIT or HLT, edk2's PcdCpuApLoopMode) from CPUID once,
// before microhv started, and its relocated AP loop has no IDT for a #UD;
// an MWAIT that returns at once is one the SDM allows ("may exit for
// implementation-dependent reasons"), and KVM does the same. CPL > 0: #UD as
// on hardware without ring-3 MWAIT (SDM Vol. 2B MONITOR, MWAIT).
ExitAction on_monitor_mwait(ExitContext& c) {
  uint32_t cpl = 0;
  if (!guest_cpl(c, &cpl)) return vmcs_failed(c);
  if (cpl != 0) return inject_ud(c);
  return ExitAction::kAdvance;
}

// ---- VMX and SMX instructions: VT-x is not offered to the guest.
ExitAction on_vmx_instruction(ExitContext& c) {
  return inject_ud(c);
}

ExitAction on_triple_fault(ExitContext& c) {
  return stop(c, "guest triple fault");
}

// ---- Exception or NMI (0). The exception bitmap is 0, so only NMIs exit
// here (NMI exiting): either a kick from another CPU (vmx/smp.hpp), which
// only had to bring this CPU out of the guest -- the back end drains the
// VP's inbox before the next entry -- or a genuine NMI, which belongs to
// the guest and is injected back. NMI exits happen between instructions:
// RIP stays.
ExitAction on_exception_or_nmi(ExitContext& c) {
  uint64_t raw_info = 0;
  if (!read(c, Field::kExitInterruptionInfo, &raw_info)) return vmcs_failed(c);
  const uint32_t info = static_cast<uint32_t>(raw_info);
  const auto type = static_cast<EventType>((info & intr_info::kTypeMask) >> intr_info::kTypeShift);
  if ((info & intr_info::kValid) == 0 || type != EventType::kNmi) {
    return stop(c, "exception exit although the exception bitmap is 0");
  }
  if (c.remote != nullptr && c.remote->take_nmi() == NmiKind::kKick) {
    c.kicked = true;
  } else {
    c.events.queue_nmi();
  }
  return ExitAction::kRetry;
}

// ---- Interrupt/NMI window (7, 8): the injection logic runs before every
// entry anyway; nothing to emulate.
ExitAction on_window(ExitContext&) {
  return ExitAction::kRetry;
}

// ---- VMX-preemption timer (52): a synthetic timer of this VP is due. The
// back end fires it before the next entry (prepare_entry); RIP stays.
ExitAction on_preemption_timer(ExitContext&) {
  return ExitAction::kRetry;
}

ExitAction on_entry_failure(ExitContext& c) {
  return stop(c, "VM entry failed");
}

struct TableEntry {
  uint32_t reason;
  ExitHandler handler;
};

constexpr TableEntry kHandlers[] = {
    {exit_reason::kExceptionOrNmi, on_exception_or_nmi},
    {exit_reason::kTripleFault, on_triple_fault},
    {exit_reason::kIoInstruction, on_io},
    {exit_reason::kMonitorTrapFlag, on_monitor_trap},
    {exit_reason::kInit, on_init},
    {exit_reason::kSipi, on_sipi},
    {exit_reason::kInterruptWindow, on_window},
    {exit_reason::kNmiWindow, on_window},
    {exit_reason::kCpuid, on_cpuid},
    {exit_reason::kGetsec, on_vmx_instruction},
    {exit_reason::kInvd, on_invd},
    {exit_reason::kMwait, on_monitor_mwait},
    {exit_reason::kMonitor, on_monitor_mwait},
    {exit_reason::kVmcall, on_vmcall},
    {exit_reason::kVmclear, on_vmx_instruction},
    {exit_reason::kVmlaunch, on_vmx_instruction},
    {exit_reason::kVmptrld, on_vmx_instruction},
    {exit_reason::kVmptrst, on_vmx_instruction},
    {exit_reason::kVmread, on_vmx_instruction},
    {exit_reason::kVmresume, on_vmx_instruction},
    {exit_reason::kVmwrite, on_vmx_instruction},
    {exit_reason::kVmxoff, on_vmx_instruction},
    {exit_reason::kVmxon, on_vmx_instruction},
    {exit_reason::kCrAccess, on_cr_access},
    {exit_reason::kRdmsr, on_rdmsr},
    {exit_reason::kWrmsr, on_wrmsr},
    {exit_reason::kEntryFailGuestState, on_entry_failure},
    {exit_reason::kEntryFailMsrLoading, on_entry_failure},
    {exit_reason::kEntryFailMachineCheck, on_entry_failure},
    {exit_reason::kEptViolation, on_ept_violation},
    {exit_reason::kEptMisconfig, on_ept_misconfig},
    {exit_reason::kInvept, on_vmx_instruction},
    {exit_reason::kPreemptionTimer, on_preemption_timer},
    {exit_reason::kInvvpid, on_vmx_instruction},
    {exit_reason::kVmfunc, on_vmx_instruction},
    {exit_reason::kXsetbv, on_xsetbv},
};

struct Table {
  ExitHandler h[exit_reason::kCount];
  constexpr Table() : h() {
    for (const TableEntry& e : kHandlers) h[e.reason] = e.handler;
  }
};
constexpr Table kTable;

// Exits whose handlers use neither the qualification nor RSP. The
// instruction-caused ones among them leave the activity state alone.
struct NeedsEntry {
  uint32_t reason;
  bool guest_active;
};
constexpr NeedsEntry kLeanExits[] = {
    {exit_reason::kCpuid, true},           {exit_reason::kVmcall, true},
    {exit_reason::kRdmsr, true},           {exit_reason::kWrmsr, true},
    {exit_reason::kXsetbv, true},          {exit_reason::kInvd, true},
    {exit_reason::kExceptionOrNmi, false}, {exit_reason::kInterruptWindow, false},
    {exit_reason::kNmiWindow, false},      {exit_reason::kPreemptionTimer, false},
};

struct NeedsTable {
  ExitNeeds n[exit_reason::kCount];
  constexpr NeedsTable() : n() {
    for (const NeedsEntry& e : kLeanExits) n[e.reason] = ExitNeeds{false, false, e.guest_active};
  }
};
constexpr NeedsTable kNeeds;

}  // namespace

bool guest_cpl(ExitContext& c, uint32_t* cpl) {
  uint64_t ss_access = 0;
  if (!read(c, Field::kGuestSsAccess, &ss_access)) return false;
  *cpl = access::dpl(static_cast<uint32_t>(ss_access));
  return true;
}

bool xsetbv_valid(uint32_t index, uint64_t v, uint64_t supported) {
  if (index != 0) return false;
  if ((v & 1) == 0) return false;                      // x87 must stay enabled
  if ((v & ~supported) != 0) return false;             // only what the CPU has
  if ((v & 4) != 0 && (v & 2) == 0) return false;      // AVX needs SSE
  if (((v >> 3) & 1) != ((v >> 4) & 1)) return false;  // MPX: BNDREG and BNDCSR together
  const uint64_t avx512 = (v >> 5) & 7;
  if (avx512 != 0 && (avx512 != 7 || (v & 4) == 0)) return false;  // all three, with AVX
  return true;
}

CpuMode guest_cpu_mode(uint64_t cr0, uint64_t rflags, uint64_t efer, uint32_t cs_access) {
  if ((cr0 & cr0::kPe) == 0) return CpuMode::kReal;
  if ((rflags & arch::rflags::kVm) != 0) return CpuMode::kVirtual8086;
  if ((efer & efer::kLma) != 0 && (cs_access & access::kLong) != 0) return CpuMode::kLong64;
  return CpuMode::kProtected;
}

ExitNeeds exit_needs(uint32_t reason) {
  if (reason >= exit_reason::kCount) return ExitNeeds{};
  return kNeeds.n[reason];
}

ExitHandler exit_handler(uint32_t reason) {
  if (reason >= exit_reason::kCount) return nullptr;
  return kTable.h[reason];
}

ExitAction dispatch_exit(ExitContext& ctx) {
  const ExitHandler h = exit_handler(ctx.reason);
  if (h == nullptr) return stop(ctx, "no handler for this exit reason");
  const ExitAction action = h(ctx);
  // A VMWRITE the handler made failed: the guest state is not what the
  // handler meant it to be, so the guest cannot go on.
  if (ctx.vmcs_failed && action != ExitAction::kStop) return vmcs_failed(ctx);
  return action;
}

}  // namespace microhv::vmx
