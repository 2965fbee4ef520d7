#include "vmx/exits.hpp"

#include "kernel/log.hpp"

namespace microhv::vmx {
namespace {

constexpr uint64_t kCr0Ts = 1ull << 3;
constexpr uint64_t kCr0Nw = 1ull << 29;
constexpr uint64_t kCr0Cd = 1ull << 30;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kCr4Pcide = 1ull << 17;
constexpr uint64_t kCr4Osxsave = 1ull << 18;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kRflagsVm = 1ull << 17;
constexpr uint32_t kAccessL = 1u << 13;

uint64_t low32(uint64_t v) { return v & 0xFFFFFFFFull; }

ExitAction inject_gp(ExitContext& c) {
  c.events.queue_exception(vector::kGp, true, 0);
  return ExitAction::kRetry;
}
ExitAction inject_ud(ExitContext& c) {
  c.events.queue_exception(vector::kUd, false, 0);
  return ExitAction::kRetry;
}
ExitAction stop(ExitContext& c, const char* why) {
  c.stop_reason = why;
  return ExitAction::kStop;
}

uint32_t guest_cpl(ExitContext& c) {
  return static_cast<uint32_t>(c.vmcs.read(Field::kGuestSsAccess) >> 5) & 3;
}

// ---- CPUID (reason 10): native values, adjusted; Hyper-V leaves from the core.
ExitAction on_cpuid(ExitContext& c) {
  const uint32_t leaf = static_cast<uint32_t>(c.regs.rax);
  const uint32_t sub = static_cast<uint32_t>(c.regs.rcx);
  CpuidRegs r{};
  if (leaf >= kHvCpuidFirst && leaf <= kHvCpuidLast) {
    if (!c.core.cpuid(leaf, &r)) r = CpuidRegs{};
  } else {
    r = adjust_native_cpuid(leaf, c.cpu.cpuid(leaf, sub));
  }
  c.regs.rax = r.eax;
  c.regs.rbx = r.ebx;
  c.regs.rcx = r.ecx;
  c.regs.rdx = r.edx;
  return ExitAction::kAdvance;
}

bool synthetic(uint32_t msr) { return msr >= kSyntheticMsrFirst && msr <= kSyntheticMsrLast; }

// ---- RDMSR / WRMSR (31, 32). Only MSRs outside the bitmap's ranges (among
// them the synthetic ones) exit: synthetic -> core, others -> the real MSR.
ExitAction on_rdmsr(ExitContext& c) {
  const uint32_t msr = static_cast<uint32_t>(c.regs.rcx);
  uint64_t value = 0;
  if (synthetic(msr)) {
    if (c.core.read_msr(msr, &value) != MsrResult::kOk) return inject_gp(c);
  } else if (!c.cpu.rdmsr(msr, &value)) {
    return inject_gp(c);
  }
  c.regs.rax = low32(value);
  c.regs.rdx = value >> 32;
  return ExitAction::kAdvance;
}

ExitAction on_wrmsr(ExitContext& c) {
  const uint32_t msr = static_cast<uint32_t>(c.regs.rcx);
  const uint64_t value = (c.regs.rdx << 32) | low32(c.regs.rax);
  if (synthetic(msr)) {
    if (c.core.write_msr(msr, value) != MsrResult::kOk) return inject_gp(c);
  } else if (!c.cpu.wrmsr(msr, value)) {
    return inject_gp(c);
  }
  return ExitAction::kAdvance;
}

// ---- VMCALL (18): the hypercall ABI belongs to the core.
ExitAction on_vmcall(ExitContext& c) {
  HypercallRegs in{};
  in.mode = guest_cpu_mode(c.vmcs.read(Field::kGuestCr0), c.vmcs.read(Field::kGuestRflags),
                           c.vmcs.read(Field::kGuestEfer), static_cast<uint32_t>(c.vmcs.read(Field::kGuestCsAccess)));
  in.cpl = static_cast<uint8_t>(guest_cpl(c));
  in.rax = c.regs.rax;
  in.rbx = c.regs.rbx;
  in.rcx = c.regs.rcx;
  in.rdx = c.regs.rdx;
  in.rsi = c.regs.rsi;
  in.rdi = c.regs.rdi;
  in.r8 = c.regs.r8;
  const HypercallOutcome out = c.core.hypercall(in);
  if (out.inject_ud) return inject_ud(c);
  store_hypercall_result(in, out.result, &c.regs.rax, &c.regs.rdx);
  return ExitAction::kAdvance;
}

// ---- XSETBV (55): validated, then executed for the guest.
ExitAction on_xsetbv(ExitContext& c) {
  if ((c.vmcs.read(Field::kCr4ReadShadow) & kCr4Osxsave) == 0) return inject_ud(c);
  if (guest_cpl(c) != 0) return inject_gp(c);
  const uint32_t index = static_cast<uint32_t>(c.regs.rcx);
  const uint64_t value = (c.regs.rdx << 32) | low32(c.regs.rax);
  const CpuidRegs d = c.cpu.cpuid(0xD, 0);
  const uint64_t supported = (static_cast<uint64_t>(d.edx) << 32) | d.eax;
  if (!xsetbv_valid(index, value, supported) || !c.cpu.xsetbv(index, value)) return inject_gp(c);
  return ExitAction::kAdvance;
}

// ---- Control registers (28). Only CR0/CR4 writes that touch bits microhv
// owns (the VMX fixed bits) exit; the guest sees its own values through the
// read shadows.
ExitAction write_cr0(ExitContext& c, uint64_t value) {
  if ((value >> 32) != 0) return inject_gp(c);
  if ((value & kCr0Pg) != 0 && (value & kCr0Pe) == 0) return inject_gp(c);
  if ((value & kCr0Nw) != 0 && (value & kCr0Cd) == 0) return inject_gp(c);
  if ((value & ~c.caps.cr0_fixed1 & 0xFFFFFFFFull) != 0) return inject_gp(c);
  const uint64_t old = c.vmcs.read(Field::kGuestCr0);
  uint64_t efer = c.vmcs.read(Field::kGuestEfer);
  uint64_t entry = c.vmcs.read(Field::kEntryControls);
  if ((old & kCr0Pg) == 0 && (value & kCr0Pg) != 0 && (efer & kEferLme) != 0) {
    if ((c.vmcs.read(Field::kCr4ReadShadow) & kCr4Pae) == 0) return inject_gp(c);
    efer |= kEferLma;
    entry |= entry_ctl::kIa32eModeGuest;
  } else if ((old & kCr0Pg) != 0 && (value & kCr0Pg) == 0 && (efer & kEferLma) != 0) {
    if ((c.vmcs.read(Field::kGuestCsAccess) & kAccessL) != 0) return inject_gp(c);
    efer &= ~kEferLma;
    entry &= ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest);
  }
  c.vmcs.write(Field::kGuestCr0, guest_cr0(c.caps, value, true));
  c.vmcs.write(Field::kCr0ReadShadow, value);
  c.vmcs.write(Field::kGuestEfer, efer);
  c.vmcs.write(Field::kEntryControls, entry);
  return ExitAction::kAdvance;
}

ExitAction write_cr4(ExitContext& c, uint64_t value) {
  // VMX is hidden from the guest (CPUID.1:ECX.VMX = 0), so CR4.VMXE is a
  // reserved bit for it.
  if ((value & kCr4Vmxe) != 0 || (value & ~c.caps.cr4_fixed1) != 0) return inject_gp(c);
  const bool lma = (c.vmcs.read(Field::kGuestEfer) & kEferLma) != 0;
  if (lma && (value & kCr4Pae) == 0) return inject_gp(c);
  if ((value & kCr4Pcide) != 0 && (c.vmcs.read(Field::kCr4ReadShadow) & kCr4Pcide) == 0 &&
      (!lma || (c.vmcs.read(Field::kGuestCr3) & 0xFFF) != 0)) {
    return inject_gp(c);
  }
  c.vmcs.write(Field::kGuestCr4, value | c.caps.cr4_fixed0);
  c.vmcs.write(Field::kCr4ReadShadow, value);
  return ExitAction::kAdvance;
}

uint64_t visible_cr0(ExitContext& c) {
  const uint64_t mask = c.vmcs.read(Field::kCr0Mask);
  return (c.vmcs.read(Field::kGuestCr0) & ~mask) | (c.vmcs.read(Field::kCr0ReadShadow) & mask);
}

ExitAction on_cr_access(ExitContext& c) {
  const unsigned cr = c.qualification & 0xF;
  const unsigned type = (c.qualification >> 4) & 3;
  const unsigned reg = (c.qualification >> 8) & 0xF;
  switch (type) {
    case 0:  // MOV to CR
      if (cr == 0) return write_cr0(c, c.regs.gpr(reg));
      if (cr == 4) return write_cr4(c, c.regs.gpr(reg));
      return stop(c, "MOV to a control register microhv does not intercept");
    case 2:  // CLTS
      return write_cr0(c, visible_cr0(c) & ~kCr0Ts);
    case 3: {  // LMSW: loads PE, MP, EM, TS; cannot clear PE
      const uint64_t src = (c.qualification >> 16) & 0xF;
      const uint64_t old = visible_cr0(c);
      return write_cr0(c, (old & ~0xEull) | src | (old & kCr0Pe));
    }
    default:
      return stop(c, "MOV from a control register microhv does not intercept");
  }
}

// ---- INVD (13): would drop dirty lines, microhv's included; write back
// and invalidate instead (the firmware only uses INVD with cache-as-RAM,
// long before microhv runs).
ExitAction on_invd(ExitContext& c) {
  c.cpu.wbinvd();
  return ExitAction::kAdvance;
}

// ---- VMX and SMX instructions: VT-x is not offered to the guest.
ExitAction on_vmx_instruction(ExitContext& c) { return inject_ud(c); }

// ---- EPT violation (48): the guest touched microhv's memory or wrote to
// the hypercall overlay. It gets #GP(0) at the faulting instruction and
// never sees the data.
ExitAction on_ept_violation(ExitContext& c) {
  const uint64_t gpa = c.vmcs.read(Field::kGuestPhysicalAddress);
  const uint64_t rip = c.vmcs.read(Field::kGuestRip);
  const char* what = (c.qualification & 2) ? "write" : (c.qualification & 4) ? "instruction fetch" : "read";
  const bool hidden = c.hidden_size != 0 && gpa >= c.hidden_base && gpa - c.hidden_base < c.hidden_size;
  const bool overlay = (gpa & ~0xFFFull) == c.overlay_gpa;
  if (!hidden && !overlay) {
    log::error("EPT violation: guest %s of GPA 0x%llx at RIP 0x%llx (qualification 0x%llx) outside microhv's "
               "memory\n",
               what, static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(rip),
               static_cast<unsigned long long>(c.qualification));
    return stop(c, "EPT violation outside microhv's memory");
  }
  log::info("EPT: guest %s of GPA 0x%llx at RIP 0x%llx denied (%s); injecting #GP(0)\n", what,
             static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(rip),
             hidden ? "microhv memory" : "hypercall page is read+execute");
  return inject_gp(c);
}

ExitAction on_triple_fault(ExitContext& c) { return stop(c, "guest triple fault"); }

// ---- INIT (3): reset to the INIT state (SDM Vol. 3A 10.1, Table 10-1) and
// wait for SIPI. SIPI (4): start real mode at vector * 4096.
void write_segment(ExitContext& c, Field sel, uint16_t selector, uint64_t base, uint32_t limit, uint32_t access) {
  const uint32_t i = (encoding(sel) - encoding(Field::kGuestEsSel)) / 2;  // ES..TR order
  c.vmcs.write(sel, selector);
  c.vmcs.write(static_cast<Field>(encoding(Field::kGuestEsBase) + 2 * i), base);
  c.vmcs.write(static_cast<Field>(encoding(Field::kGuestEsLimit) + 2 * i), limit);
  c.vmcs.write(static_cast<Field>(encoding(Field::kGuestEsAccess) + 2 * i), access);
}

ExitAction on_init(ExitContext& c) {
  constexpr uint64_t kInitCr0 = 0x60000010;  // CD | NW | ET
  const uint32_t signature = c.cpu.cpuid(1, 0).eax;
  c.regs = GuestRegs{};
  c.regs.rdx = signature;
  c.vmcs.write(Field::kCr0ReadShadow, kInitCr0);
  c.vmcs.write(Field::kGuestCr0, guest_cr0(c.caps, kInitCr0, true));
  c.vmcs.write(Field::kCr4ReadShadow, 0);
  c.vmcs.write(Field::kGuestCr4, c.caps.cr4_fixed0);
  c.vmcs.write(Field::kGuestCr3, 0);
  c.vmcs.write(Field::kGuestEfer, 0);
  c.vmcs.write(Field::kEntryControls,
               c.vmcs.read(Field::kEntryControls) & ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest));
  write_segment(c, Field::kGuestCsSel, 0xF000, 0xFFFF0000, 0xFFFF, 0x9B);
  constexpr Field kDataSegments[] = {Field::kGuestEsSel, Field::kGuestSsSel, Field::kGuestDsSel, Field::kGuestFsSel,
                                     Field::kGuestGsSel};
  for (Field f : kDataSegments) write_segment(c, f, 0, 0, 0xFFFF, 0x93);
  write_segment(c, Field::kGuestLdtrSel, 0, 0, 0xFFFF, 0x82);
  write_segment(c, Field::kGuestTrSel, 0, 0, 0xFFFF, 0x8B);
  c.vmcs.write(Field::kGuestGdtrBase, 0);
  c.vmcs.write(Field::kGuestGdtrLimit, 0xFFFF);
  c.vmcs.write(Field::kGuestIdtrBase, 0);
  c.vmcs.write(Field::kGuestIdtrLimit, 0xFFFF);
  c.vmcs.write(Field::kGuestRip, 0xFFF0);
  c.vmcs.write(Field::kGuestRsp, 0);
  c.vmcs.write(Field::kGuestRflags, 2);
  c.vmcs.write(Field::kGuestDr7, 0x400);
  c.vmcs.write(Field::kGuestInterruptibility, 0);
  c.vmcs.write(Field::kGuestPendingDebug, 0);
  c.vmcs.write(Field::kGuestActivityState, activity::kWaitForSipi);
  c.events = PendingEvents{};
  return ExitAction::kRetry;
}

ExitAction on_sipi(ExitContext& c) {
  const uint64_t v = c.qualification & 0xFF;
  write_segment(c, Field::kGuestCsSel, static_cast<uint16_t>(v << 8), v << 12, 0xFFFF, 0x9B);
  c.vmcs.write(Field::kGuestRip, 0);
  c.vmcs.write(Field::kGuestActivityState, activity::kActive);
  return ExitAction::kRetry;
}

// ---- Interrupt/NMI window (7, 8): the injection logic runs before every
// entry anyway; nothing to emulate.
ExitAction on_window(ExitContext&) { return ExitAction::kRetry; }

ExitAction on_entry_failure(ExitContext& c) { return stop(c, "VM entry failed"); }

struct TableEntry {
  uint32_t reason;
  ExitHandler handler;
};

constexpr TableEntry kHandlers[] = {
    {exit_reason::kTripleFault, on_triple_fault},
    {exit_reason::kInit, on_init},
    {exit_reason::kSipi, on_sipi},
    {exit_reason::kInterruptWindow, on_window},
    {exit_reason::kNmiWindow, on_window},
    {exit_reason::kCpuid, on_cpuid},
    {exit_reason::kGetsec, on_vmx_instruction},
    {exit_reason::kInvd, on_invd},
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
    {exit_reason::kInvept, on_vmx_instruction},
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

}  // namespace

CpuidRegs adjust_native_cpuid(uint32_t leaf, CpuidRegs r) {
  if (leaf == 1) {
    r.ecx |= kCpuid1EcxHypervisor;
    r.ecx &= ~kCpuid1EcxVmx;
  }
  return r;
}

bool xsetbv_valid(uint32_t index, uint64_t v, uint64_t supported) {
  if (index != 0) return false;
  if ((v & 1) == 0) return false;                       // x87 must stay enabled
  if ((v & ~supported) != 0) return false;              // only what the CPU has
  if ((v & 4) != 0 && (v & 2) == 0) return false;       // AVX needs SSE
  if (((v >> 3) & 1) != ((v >> 4) & 1)) return false;   // MPX: BNDREG and BNDCSR together
  const uint64_t avx512 = (v >> 5) & 7;
  if (avx512 != 0 && (avx512 != 7 || (v & 4) == 0)) return false;  // all three, with AVX
  return true;
}

CpuMode guest_cpu_mode(uint64_t cr0, uint64_t rflags, uint64_t efer, uint32_t cs_access) {
  if ((cr0 & kCr0Pe) == 0) return CpuMode::kReal;
  if ((rflags & kRflagsVm) != 0) return CpuMode::kVirtual8086;
  if ((efer & kEferLma) != 0 && (cs_access & kAccessL) != 0) return CpuMode::kLong64;
  return CpuMode::kProtected;
}

ExitHandler exit_handler(uint32_t reason) {
  if (reason >= exit_reason::kCount) return nullptr;
  return kTable.h[reason];
}

ExitAction dispatch_exit(ExitContext& ctx) {
  const ExitHandler h = exit_handler(ctx.reason);
  if (h == nullptr) {
    ctx.stop_reason = "no handler for this exit reason";
    return ExitAction::kStop;
  }
  return h(ctx);
}

}  // namespace microhv::vmx
