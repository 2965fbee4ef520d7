#include "vmx/exits.hpp"

#include "arch/apic.hpp"
#include "arch/x86.hpp"
#include "kernel/base/log.hpp"
#include "vmx/decode.hpp"
#include "vmx/guest_walk.hpp"
#include "vmx/init_sipi.hpp"

namespace microhv::vmx {
namespace {

namespace cr0 = arch::cr0;
namespace cr4 = arch::cr4;
namespace efer = arch::efer;
namespace access = arch::access;

uint64_t low32(uint64_t v) {
  return v & 0xFFFFFFFFull;
}

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

// CR4 as the guest sees it: its own bits where microhv does not own them
// (the real CR4), the read shadow where it does (the guest/host mask).
// Bits outside the mask never exit when the guest changes them, so the
// shadow alone is stale for them (e.g. CR4.OSXSAVE, PAE, PCIDE).
uint64_t visible_cr4(ExitContext& c) {
  const uint64_t mask = c.vmcs.read(Field::kCr4Mask);
  return (c.vmcs.read(Field::kGuestCr4) & ~mask) | (c.vmcs.read(Field::kCr4ReadShadow) & mask);
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

// ---- RDMSR / WRMSR (31, 32). Only MSRs outside the bitmap's ranges (among
// them the synthetic ones) exit: synthetic -> core, others -> the real MSR.
ExitAction on_rdmsr(ExitContext& c) {
  const uint32_t msr = static_cast<uint32_t>(c.regs.rcx);
  uint64_t value = 0;
  if (tlfs::msr::is_synthetic(msr)) {
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
  if (tlfs::msr::is_synthetic(msr)) {
    if (c.core.write_msr(msr, value) != MsrResult::kOk) return inject_gp(c);
  } else if (msr == arch::apic::kX2apicIcrMsr) {
    // Only exits for this (the MSR bitmap): INIT IPIs to VPs are emulated.
    c.cpu.x2apic_icr_write(value);
  } else if (!c.cpu.wrmsr(msr, value)) {
    return inject_gp(c);
  }
  return ExitAction::kAdvance;
}

// ---- VMCALL (18): the hypercall ABI belongs to the core.
ExitAction on_vmcall(ExitContext& c) {
  HypercallRegs in{};
  in.mode = guest_cpu_mode(c.vmcs.read(Field::kGuestCr0), c.vmcs.read(Field::kGuestRflags),
                           c.vmcs.read(Field::kGuestEfer),
                           static_cast<uint32_t>(c.vmcs.read(Field::kGuestCsAccess)));
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
  if ((visible_cr4(c) & cr4::kOsxsave) == 0) return inject_ud(c);
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
  if ((value & cr0::kPg) != 0 && (value & cr0::kPe) == 0) return inject_gp(c);
  if ((value & cr0::kNw) != 0 && (value & cr0::kCd) == 0) return inject_gp(c);
  if ((value & ~c.caps.cr0_fixed1 & 0xFFFFFFFFull) != 0) return inject_gp(c);
  const uint64_t old = c.vmcs.read(Field::kGuestCr0);
  uint64_t efer = c.vmcs.read(Field::kGuestEfer);
  uint64_t entry = c.vmcs.read(Field::kEntryControls);
  if ((old & cr0::kPg) == 0 && (value & cr0::kPg) != 0 && (efer & efer::kLme) != 0) {
    if ((visible_cr4(c) & cr4::kPae) == 0) return inject_gp(c);
    efer |= efer::kLma;
    entry |= entry_ctl::kIa32eModeGuest;
  } else if ((old & cr0::kPg) != 0 && (value & cr0::kPg) == 0 && (efer & efer::kLma) != 0) {
    if ((c.vmcs.read(Field::kGuestCsAccess) & access::kLong) != 0) return inject_gp(c);
    efer &= ~efer::kLma;
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
  if ((value & cr4::kVmxe) != 0 || (value & ~c.caps.cr4_fixed1) != 0) return inject_gp(c);
  const bool lma = (c.vmcs.read(Field::kGuestEfer) & efer::kLma) != 0;
  if (lma && (value & cr4::kPae) == 0) return inject_gp(c);
  if ((value & cr4::kPcide) != 0 && (visible_cr4(c) & cr4::kPcide) == 0 &&
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
      return write_cr0(c, visible_cr0(c) & ~cr0::kTs);
    case 3: {  // LMSW: loads PE, MP, EM, TS; cannot clear PE
      const uint64_t src = (c.qualification >> 16) & 0xF;
      const uint64_t old = visible_cr0(c);
      return write_cr0(c, (old & ~cr0::kLmswBits) | src | (old & cr0::kPe));
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
ExitAction on_vmx_instruction(ExitContext& c) {
  return inject_ud(c);
}

// ---- Writes to the local APIC page. EPT maps the xAPIC page read-only, so
// a guest store to it exits here before it happens: the instruction is
// fetched through the guest's page tables and decoded (vmx/decode.hpp),
// and the value goes to the back end, which writes the real register (or
// emulates an INIT IPI to a VP). RIP moves past the store, which also ends
// an STI/MOV-SS shadow. VM exits for EPT violations report no instruction
// length, hence the decoding.
ExitAction emulate_apic_write(ExitContext& c, uint32_t offset) {
  const uint64_t efer = c.vmcs.read(Field::kGuestEfer);
  const uint32_t cs_access = static_cast<uint32_t>(c.vmcs.read(Field::kGuestCsAccess));
  const CodeSize size = ((efer & efer::kLma) != 0 && (cs_access & access::kLong) != 0)
                            ? CodeSize::k64
                        : (cs_access & access::kDefault32) != 0 ? CodeSize::k32
                                                                : CodeSize::k16;
  const uint64_t rip = c.vmcs.read(Field::kGuestRip);
  uint64_t linear = c.vmcs.read(Field::kGuestCsBase) + rip;
  if (size != CodeSize::k64) linear &= 0xFFFFFFFFull;
  const GuestPaging paging{c.vmcs.read(Field::kGuestCr0), c.vmcs.read(Field::kGuestCr3),
                           c.vmcs.read(Field::kGuestCr4), efer};
  uint8_t bytes[15] = {};
  const uint32_t got =
      c.memory != nullptr ? fetch_guest_bytes(*c.memory, paging, linear, bytes, sizeof(bytes)) : 0;
  const StoreDecode d = decode_store(bytes, got, size);
  if (!d.ok || d.width != 4 || (offset & 3) != 0) {
    log::error(
        "local APIC page: write to offset 0x%x at RIP 0x%llx by an instruction microhv cannot "
        "emulate (%u "
        "bytes fetched: %02x %02x %02x %02x %02x %02x)\n",
        offset, static_cast<unsigned long long>(rip), got, bytes[0], bytes[1], bytes[2], bytes[3],
        bytes[4], bytes[5]);
    return stop(c, "unsupported write to the local APIC page");
  }
  uint64_t gpr[16];
  for (unsigned r = 0; r < 16; ++r) gpr[r] = c.regs.gpr(r);
  const uint32_t value = static_cast<uint32_t>(store_value(d, gpr));
  // XCHG also loads the old register value into the source register.
  const bool is_xchg = d.opcode == 0x87;
  if (is_xchg) {
    const uint32_t old = c.cpu.apic_read(offset);
    c.regs.gpr(d.reg) = old;  // a 32-bit register write clears bits 63:32
  }
  c.cpu.apic_write(offset, value);
  c.vmcs.write(Field::kGuestRip, rip + d.length);
  const uint64_t intr = c.vmcs.read(Field::kGuestInterruptibility);
  if ((intr & (interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs)) != 0) {
    c.vmcs.write(Field::kGuestInterruptibility,
                 intr & ~static_cast<uint64_t>(interruptibility::kBlockingBySti |
                                               interruptibility::kBlockingByMovSs));
  }
  return ExitAction::kRetry;
}

// ---- EPT violation (48): the guest touched microhv's memory or wrote to
// the hypercall overlay. It gets #GP(0) at the faulting instruction and
// never sees the data.
ExitAction on_ept_violation(ExitContext& c) {
  const uint64_t gpa = c.vmcs.read(Field::kGuestPhysicalAddress);
  if (c.apic_page != ~0ull && (gpa & ~0xFFFull) == c.apic_page && (c.qualification & 2) != 0) {
    return emulate_apic_write(c, static_cast<uint32_t>(gpa & 0xFFF));
  }
  const uint64_t rip = c.vmcs.read(Field::kGuestRip);
  const char* what = (c.qualification & 2)   ? "write"
                     : (c.qualification & 4) ? "instruction fetch"
                                             : "read";
  const bool hidden =
      c.hidden_size != 0 && gpa >= c.hidden_base && gpa - c.hidden_base < c.hidden_size;
  const bool overlay = (gpa & ~0xFFFull) == c.overlay_gpa;
  if (!hidden && !overlay) {
    log::error(
        "EPT violation: guest %s of GPA 0x%llx at RIP 0x%llx (qualification 0x%llx) outside "
        "microhv's "
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

ExitAction on_triple_fault(ExitContext& c) {
  return stop(c, "guest triple fault");
}

// ---- INIT (3) and SIPI (4): see vmx/init_sipi.hpp. INIT leaves the guest
// in real mode (unrestricted guest), waiting for SIPI unless it is the BSP;
// the SIPI starts it at vector * 4096. Whatever was pending for the old
// context (exception, NMI, SINT vectors) is dropped with it.
void write_segment(VmcsAccess& vmcs, Field sel, const RealModeSegment& s) {
  const uint32_t i = (encoding(sel) - encoding(Field::kGuestEsSel)) / 2;  // ES..TR order
  vmcs.write(sel, s.selector);
  vmcs.write(static_cast<Field>(encoding(Field::kGuestEsBase) + 2 * i), s.base);
  vmcs.write(static_cast<Field>(encoding(Field::kGuestEsLimit) + 2 * i), s.limit);
  vmcs.write(static_cast<Field>(encoding(Field::kGuestEsAccess) + 2 * i), s.access);
}

// The processor state after INIT (SDM Table 9-1), into the VMCS.
void write_init_state(VmcsAccess& vmcs, CpuServices& cpu, const VmxCapabilities& caps, bool bsp,
                      GuestRegs& regs, PendingEvents& events) {
  const ResetState s = init_state(vmcs.read(Field::kCr0ReadShadow), cpu.cpuid(1, 0).eax, bsp);
  regs = GuestRegs{};
  regs.rdx = s.rdx;
  regs.rsp = s.rsp;  // the back end writes regs.rsp into the VMCS
  vmcs.write(Field::kCr0ReadShadow, s.cr0);
  vmcs.write(Field::kGuestCr0, guest_cr0(caps, s.cr0, true));
  vmcs.write(Field::kCr4ReadShadow, s.cr4);
  vmcs.write(Field::kGuestCr4, s.cr4 | caps.cr4_fixed0);
  vmcs.write(Field::kGuestCr3, s.cr3);
  vmcs.write(Field::kGuestEfer, s.efer);
  vmcs.write(Field::kEntryControls,
             vmcs.read(Field::kEntryControls) & ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest));
  write_segment(vmcs, Field::kGuestCsSel, s.cs);
  constexpr Field kDataSegments[] = {Field::kGuestEsSel, Field::kGuestSsSel, Field::kGuestDsSel,
                                     Field::kGuestFsSel, Field::kGuestGsSel};
  for (Field f : kDataSegments) write_segment(vmcs, f, s.data);
  write_segment(vmcs, Field::kGuestLdtrSel, s.ldtr);
  write_segment(vmcs, Field::kGuestTrSel, s.tr);
  vmcs.write(Field::kGuestGdtrBase, s.gdtr_base);
  vmcs.write(Field::kGuestGdtrLimit, s.gdtr_limit);
  vmcs.write(Field::kGuestIdtrBase, s.idtr_base);
  vmcs.write(Field::kGuestIdtrLimit, s.idtr_limit);
  vmcs.write(Field::kGuestRip, s.rip);
  vmcs.write(Field::kGuestRsp, s.rsp);
  vmcs.write(Field::kGuestRflags, s.rflags);
  vmcs.write(Field::kGuestDr7, s.dr7);
  vmcs.write(Field::kGuestDebugctl, 0);
  vmcs.write(Field::kGuestSysenterCs, 0);
  vmcs.write(Field::kGuestSysenterEsp, 0);
  vmcs.write(Field::kGuestSysenterEip, 0);
  vmcs.write(Field::kGuestInterruptibility, 0);
  vmcs.write(Field::kGuestPendingDebug, 0);
  vmcs.write(Field::kGuestActivityState, s.activity);
  cpu.reset_debug_registers();
  events = PendingEvents{};
}

ExitAction on_init(ExitContext& c) {
  c.init_or_sipi = true;
  write_init_state(c.vmcs, c.cpu, c.caps, c.bsp, c.regs, c.events);
  return ExitAction::kRetry;
}

// A SIPI exits only in wait-for-SIPI, i.e. after an INIT (a physical one,
// or one microhv emulated for an INIT IPI the guest sent; see vmx/smp.hpp).
// The AP starts from the INIT state either way.
ExitAction on_sipi(ExitContext& c) {
  c.init_or_sipi = true;
  write_init_state(c.vmcs, c.cpu, c.caps, c.bsp, c.regs, c.events);
  write_segment(c.vmcs, Field::kGuestCsSel,
                sipi_code_segment(static_cast<uint8_t>(c.qualification & 0xFF)));
  c.vmcs.write(Field::kGuestRip, kSipiRip);
  c.vmcs.write(Field::kGuestActivityState, activity::kActive);
  // The processor starts fresh: whatever the exit recorded as blocked while
  // it waited for SIPI (Bochs reports SMI and NMI blocking there; SMI
  // blocking outside SMM fails VM entry) does not carry over.
  c.vmcs.write(Field::kGuestInterruptibility, 0);
  c.vmcs.write(Field::kGuestPendingDebug, 0);
  return ExitAction::kRetry;
}

// ---- Exception or NMI (0). The exception bitmap is 0, so only NMIs exit
// here (NMI exiting): either a kick from another CPU (vmx/smp.hpp), which
// only had to bring this CPU out of the guest -- the back end drains the
// VP's inbox before the next entry -- or a genuine NMI, which belongs to
// the guest and is injected back. NMI exits happen between instructions:
// RIP stays.
ExitAction on_exception_or_nmi(ExitContext& c) {
  const uint32_t info = static_cast<uint32_t>(c.vmcs.read(Field::kExitInterruptionInfo));
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

// ---- I/O instruction (30): only the test device port exits (I/O bitmap,
// `testdev = on`). Its 32-bit OUT goes to the core; every other access to
// it behaves as on real hardware.
ExitAction on_io(ExitContext& c) {
  const IoAccess a = decode_io(c.qualification);
  switch (route_io(a, c.testdev)) {
    case IoRoute::kTestDevice:
      c.core.testdev_write(static_cast<uint32_t>(c.regs.rax));
      return ExitAction::kAdvance;
    case IoRoute::kPassThrough:
      if (a.in) {
        const uint32_t v = c.cpu.io_in(a.port, a.size);
        if (a.size == 4) {
          c.regs.rax = v;  // a 32-bit register write clears bits 63:32
        } else {
          const uint64_t mask = a.size == 1 ? 0xFFull : 0xFFFFull;
          c.regs.rax = (c.regs.rax & ~mask) | (v & mask);
        }
      } else {
        c.cpu.io_out(a.port, a.size, static_cast<uint32_t>(c.regs.rax));
      }
      return ExitAction::kAdvance;
    case IoRoute::kStepNatively:
      if (!c.cpu.step_io_natively(a.port)) {
        return stop(c, "string I/O on an intercepted port needs the monitor trap flag");
      }
      return ExitAction::kRetry;
  }
  return stop(c, "I/O exit");
}

// ---- Monitor trap flag (37): the natively stepped string I/O is done.
ExitAction on_monitor_trap(ExitContext& c) {
  if (!c.cpu.end_io_step()) return stop(c, "monitor trap flag exit without a stepped instruction");
  return ExitAction::kRetry;
}

// ---- Interrupt/NMI window (7, 8): the injection logic runs before every
// entry anyway; nothing to emulate.
ExitAction on_window(ExitContext&) {
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
    r.ecx |= arch::cpuid1_ecx::kHypervisor;
    r.ecx &= ~arch::cpuid1_ecx::kVmx;
  }
  return r;
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

void apply_init_state(VmcsAccess& vmcs, CpuServices& cpu, const VmxCapabilities& caps, bool bsp,
                      GuestRegs& regs, PendingEvents& events) {
  write_init_state(vmcs, cpu, caps, bsp, regs, events);
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
