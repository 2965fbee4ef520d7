// VM-exit handling (portable, unit-tested): a bounds-checked dispatch table
// indexed by the basic exit reason, and handlers that work on the guest's
// registers through three small interfaces -- the VMCS, the CPU (native
// CPUID, MSR and XSETBV with fault recovery) and the Hyper-V core -- so host
// tests drive them with fakes. Every handler returns where RIP goes:
//   kAdvance: the instruction was emulated; RIP += exit instruction length
//   kRetry:   RIP unchanged (an exception was queued, a hypercall is
//             continued, or nothing to skip)
//   kStop:    the guest cannot continue; the back end dumps state and halts
// Nothing advances RIP by default, and an exit without a handler stops.
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"
#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/base/log.hpp"
#include "kernel/base/optional.hpp"
#include "kernel/platform/guest_memory.hpp"
#include "kernel/platform/overlays.hpp"
#include "synic/services/testdev.hpp"
#include "vmx/controls.hpp"
#include "vmx/guest_ept.hpp"
#include "vmx/injection.hpp"
#include "vmx/smp.hpp"
#include "vmx/vmcs_access.hpp"
#include "vmx/vp_cpu_state.hpp"

namespace microhv::vmx {

// Guest general-purpose registers in the x86 encoding order (the index used
// by exit qualifications). The exit stub (vmx/hw/entry.S) saves them in exactly
// this layout; rsp is a copy of the VMCS field, synchronised by the back end.
struct GuestRegs {
  uint64_t rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi;
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t& gpr(unsigned index) { return (&rax)[index & 15]; }
};
static_assert(sizeof(GuestRegs) == 16 * 8);

class CpuServices {
 public:
  virtual CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) = 0;
  // The real MSR, fault-safe: false when the instruction faulted (#GP); the
  // caller decides (the guest's #GP, or "not there"). Only the MSR policy's
  // emulation (vmx/exit_msr.cpp) calls these for the guest.
  virtual bool rdmsr(uint32_t msr, uint64_t* value) = 0;
  virtual bool wrmsr(uint32_t msr, uint64_t value) = 0;
  // The real TSC (the guest's is this plus its VMCS TSC offset).
  virtual uint64_t rdtsc() = 0;
  // Dword `lane` (0-3) of the guest's XMM register `reg` (0-15): microhv
  // never uses the vector registers, so at a VM exit they still hold the
  // guest's values. False when the host cannot execute SSE.
  virtual bool read_xmm(unsigned reg, unsigned lane, uint32_t* value) = 0;
  virtual bool xsetbv(uint32_t index, uint64_t value) = 0;
  virtual void wbinvd() = 0;
  // Port I/O on the real port (`size` 1, 2 or 4 bytes).
  virtual uint32_t io_in(uint16_t port, uint8_t size) = 0;
  virtual void io_out(uint16_t port, uint8_t size, uint32_t value) = 0;
  // Lets the guest run the current instruction natively once: `port` stops
  // exiting in this CPU's I/O bitmap and the monitor trap flag brings the
  // VM back right after the instruction. False when the CPU has no MTF.
  virtual bool step_io_natively(uint16_t port) = 0;
  // At a monitor-trap-flag exit: undoes step_io_natively. False when no
  // step was armed (an unexpected MTF exit).
  virtual bool end_io_step() = 0;
  // INIT: DR0-DR3 = 0, DR6 = FFFF0FF0 (the debug registers are not switched
  // between guest and host; DR7 is in the VMCS).
  virtual void reset_debug_registers() = 0;
  // The guest's local APIC on this CPU, in xAPIC mode: an aligned 32-bit
  // register access at `offset` in its page. Writes the guest makes to the
  // xAPIC page (EPT maps it read-only) and to the x2APIC ICR (MSR 0x830)
  // come here once the exit handlers decided they reach the APIC: the back
  // end passes them on, except INIT IPIs to VPs, which it emulates
  // (decide_icr in vmx/smp.hpp). Reads are not intercepted; apic_read is
  // for the read half of read-modify-write instructions and for microhv's
  // own APIC set-up (vmx/apic_base.cpp).
  virtual void apic_write(uint32_t offset, uint32_t value) = 0;
  virtual uint32_t apic_read(uint32_t offset) = 0;
  virtual void x2apic_icr_write(uint64_t value) = 0;

 protected:
  ~CpuServices() = default;
};

// The TLFS core as the exit handlers see it.
class HvCore {
 public:
  // Leaves 0x40000000..0x400000FF; false = not a leaf microhv defines (zeros).
  virtual bool cpuid(uint32_t leaf, CpuidRegs* out) = 0;
  virtual MsrResult read_msr(uint32_t msr, uint64_t* value) = 0;
  virtual MsrResult write_msr(uint32_t msr, uint64_t value) = 0;
  virtual HypercallOutcome hypercall(const HypercallRegs& regs) = 0;
  // A 32-bit OUT to the test device port (synic/services/testdev.hpp), when enabled.
  virtual void testdev_write(uint32_t value) = 0;

 protected:
  ~HvCore() = default;
};

// The guest's EPT as the EPT exit handlers reach it. The back end
// (vmx/hw/ept.cpp) answers under its EPT lock and invalidates every CPU
// when a change needs it; host tests answer from a GuestEpt on fake memory.
class EptFaults {
 public:
  // What the violation at `gpa` means (GuestEpt::classify). kMapOnDemand is
  // resolved here: the chunk is mapped and the answer is kRetry, or kStop
  // when it could not be.
  virtual EptFaultInfo on_violation(Gpa gpa, uint64_t qualification) = 0;
  // The raw entries a walk of `gpa` reads, root first (for the
  // misconfiguration report); returns how many.
  virtual unsigned walk(Gpa gpa, uint64_t entries[4]) = 0;

 protected:
  ~EptFaults() = default;
};

struct ExitContext {
  uint32_t reason;  // basic exit reason
  uint64_t qualification;
  GuestRegs& regs;
  VmcsAccess& vmcs;
  CpuServices& cpu;
  HvCore& core;
  PendingEvents& events;
  const VmxCapabilities& caps;  // CR fixed bits for CR-access emulation
  // The guest's EPT (EPT violations and misconfigurations); nullptr: every
  // EPT exit stops the guest. Guest accesses it denies are logged at most
  // a few times (denied_log).
  EptFaults* ept = nullptr;
  log::RateLimit* denied_log = nullptr;
  // This VP's inbox (vmx/smp.hpp): an NMI exit asks it whether the NMI was
  // a kick from another CPU or a genuine NMI. nullptr: every NMI is genuine.
  RemoteQueue* remote = nullptr;
  // The VP is the bootstrap processor (IA32_APIC_BASE.BSP): INIT restarts it
  // at the reset vector instead of waiting for SIPI.
  bool bsp = false;
  // microhv.cfg `testdev = on`: 32-bit OUT to TestDevice::kIoPort goes to the core.
  bool testdev = false;
  // The xAPIC page (guest-physical, ~0 = none) that EPT maps read-only, and
  // the guest memory to fetch the writing instruction from.
  Optional<Gpa> apic_page{};
  GuestMemory* memory = nullptr;
  // This VP's processor state outside the VMCS (APIC mode, MTRRs, TSC
  // adjustment...): the MSR and APIC exits read and change it.
  VpCpuState* cpu_state = nullptr;
  // Guest accesses the policy refuses (MSRs, APIC page forms), logged at
  // most a few times.
  log::RateLimit* refused_log = nullptr;
  // Set by handlers that want a one-line reason printed on kStop.
  const char* stop_reason = nullptr;
  // A VMREAD or VMWRITE failed during this exit (vmx/exit_handlers.hpp).
  bool vmcs_failed = false;
  // The handler saw EPT allow what just faulted: this CPU invalidates its
  // EPT-derived translations before it enters again (INVEPT).
  bool invalidate_ept = false;
  // Set by handlers, read by the back end for its log.
  bool kicked = false;        // the exit was a kick NMI
  bool init_or_sipi = false;  // the exit was INIT or SIPI
};

enum class ExitAction : uint8_t { kAdvance, kRetry, kStop };

using ExitHandler = ExitAction (*)(ExitContext&);

// Handler for `reason`, or nullptr when there is none (or reason is out of
// range). Never indexes out of the table.
ExitHandler exit_handler(uint32_t reason);
// Runs the handler, or returns kStop (with stop_reason set) when none.
ExitAction dispatch_exit(ExitContext& ctx);

// What the back end reads for an exit before its handler runs, beyond the
// exit reason and the IDT-vectoring information (SDM Vol. 3C 28.2.1-28.2.4),
// so the common exits read only what they use. Reasons not listed in
// exits.cpp get everything (deny by default).
struct ExitNeeds {
  bool qualification = true;  // ExitContext::qualification is read
  bool rsp = true;            // GuestRegs::rsp is loaded (and written back when changed)
  // An instruction-caused exit whose handler leaves the activity state
  // alone: the guest was active when it exited (it was executing the
  // instruction) and stays active, so the entry needs no VMREAD of it.
  bool guest_active = false;
};
ExitNeeds exit_needs(uint32_t reason);

// The start of a VM exit: the exit reason, the IDT-vectoring information
// (with its error code and the instruction length only when it is valid:
// SDM Vol. 3C 28.2.4), then the qualification and the guest RSP when
// exit_needs(reason) asks for them. On a failed VM entry (bit 31) nothing
// more is read: the back end reports it.
struct ExitStart {
  uint32_t raw_reason = 0;
  uint32_t reason = 0;  // basic exit reason
  uint64_t qualification = 0;
  ExitNeeds needs{};
  uint64_t rsp_at_exit = 0;  // regs.rsp as loaded (needs.rsp)
};
// False when a VMREAD failed (reported by the VmcsAccess); `regs` and
// `events` may then be partly updated, and the VP cannot go on.
// Templates on the concrete VMCS accessor so the back end's calls are
// direct (defined below).
template <class Vmcs>
[[nodiscard]] bool begin_exit(Vmcs& vmcs, GuestRegs& regs, PendingEvents& events, ExitStart* out);
// After the handler: for kAdvance, RIP past the exiting instruction, which
// also ends an STI or MOV-SS shadow (SDM Vol. 3C 27.3.1.5 / 26.3.1.5) and
// clears blocking by SMI (never set outside SMM; Bochs 2.7 reports it after
// wait-for-SIPI); then the guest RSP written back when it was loaded and
// the handler changed it. False when a VMREAD or VMWRITE failed.
template <class Vmcs>
[[nodiscard]] bool finish_exit(Vmcs& vmcs, const GuestRegs& regs, const ExitStart& start,
                               ExitAction action);

// I/O instruction exit qualification (SDM Vol. 3C 28.2.1, Table 28-5).
struct IoAccess {
  uint16_t port;
  uint8_t size;  // 1, 2 or 4
  bool in;
  bool string;
  bool rep;
};
constexpr IoAccess decode_io(uint64_t q) {
  return IoAccess{static_cast<uint16_t>(q >> 16), static_cast<uint8_t>((q & 7) + 1), (q & 8) != 0,
                  (q & 16) != 0, (q & 32) != 0};
}

// Where an I/O exit goes. Only the test device port is ever intercepted
// (and only with `testdev = on`); everything but its 32-bit OUT behaves as
// on real hardware: IN/OUT run on the real port from the host, string
// instructions (which need the guest's memory) are stepped natively once.
enum class IoRoute : uint8_t { kTestDevice, kPassThrough, kStepNatively };
constexpr IoRoute route_io(const IoAccess& a, bool testdev) {
  if (a.string) return IoRoute::kStepNatively;
  if (testdev && !a.in && a.size == 4 && a.port == TestDevice::kIoPort) return IoRoute::kTestDevice;
  return IoRoute::kPassThrough;
}

// The register state after INIT (vmx/init_sipi.hpp) written into the VMCS
// and `regs`; pending events are dropped. Used for INIT exits, SIPI exits
// and INITs microhv emulates for IPIs between VPs. False when a VMREAD or
// VMWRITE failed (reported; the VP cannot go on).
[[nodiscard]] bool apply_init_state(VmcsAccess& vmcs, CpuServices& cpu, const VmxCapabilities& caps,
                                    bool bsp, GuestRegs& regs, PendingEvents& events);

// The VMX-preemption timer value (SDM 26.5.1: it counts down by one each
// time bit `rate` of the TSC changes, IA32_VMX_MISC[4:0]) that makes the VM
// exit no earlier than TSC `deadline`: 0 (exit before the first guest
// instruction) when it has passed; saturated at 2^32 - 1 for deadlines
// further out (the exit then comes early and the timer is armed again).
constexpr uint32_t preemption_timer_value(uint64_t now_tsc, uint64_t deadline_tsc, uint8_t rate) {
  if (deadline_tsc <= now_tsc) return 0;
  const uint64_t ticks = (deadline_tsc - now_tsc) >> (rate & 31);
  return ticks >= 0xFFFFFFFFull ? 0xFFFFFFFFu : static_cast<uint32_t>(ticks + 1);
}

// Pieces exposed for tests.
bool xsetbv_valid(uint32_t index, uint64_t value, uint64_t supported_xcr0);
CpuMode guest_cpu_mode(uint64_t cr0, uint64_t rflags, uint64_t efer, uint32_t cs_access);

// ---- begin_exit / finish_exit

template <class Vmcs>
bool begin_exit(Vmcs& vmcs, GuestRegs& regs, PendingEvents& events, ExitStart* out) {
  uint64_t raw = 0, idt = 0;
  if (!vmcs.read(Field::kExitReason, &raw)) return false;
  out->raw_reason = static_cast<uint32_t>(raw);
  out->reason = exit_reason::basic(out->raw_reason);
  if ((out->raw_reason & exit_reason::kEntryFailureBit) != 0) return true;
  if (!vmcs.read(Field::kIdtVectoringInfo, &idt)) return false;
  if ((idt & intr_info::kValid) != 0) {
    uint64_t error = 0, length = 0;
    if (!vmcs.read(Field::kIdtVectoringErrorCode, &error) ||
        !vmcs.read(Field::kExitInstructionLength, &length)) {
      return false;
    }
    events.record_idt_vectoring(static_cast<uint32_t>(idt), static_cast<uint32_t>(error),
                                static_cast<uint32_t>(length));
  }
  out->needs = exit_needs(out->reason);
  if (out->needs.qualification && !vmcs.read(Field::kExitQualification, &out->qualification))
    return false;
  if (out->needs.rsp) {
    if (!vmcs.read(Field::kGuestRsp, &regs.rsp)) return false;
    out->rsp_at_exit = regs.rsp;
  }
  return true;
}

template <class Vmcs>
bool finish_exit(Vmcs& vmcs, const GuestRegs& regs, const ExitStart& start, ExitAction action) {
  if (action == ExitAction::kAdvance) {
    uint64_t rip = 0, length = 0, intr = 0;
    if (!vmcs.read(Field::kGuestRip, &rip) || !vmcs.read(Field::kExitInstructionLength, &length) ||
        !vmcs.write(Field::kGuestRip, rip + length) ||
        !vmcs.read(Field::kGuestInterruptibility, &intr)) {
      return false;
    }
    constexpr uint64_t kEnded = interruptibility::kBlockingBySti |
                                interruptibility::kBlockingByMovSs |
                                interruptibility::kBlockingBySmi;
    if ((intr & kEnded) != 0 && !vmcs.write(Field::kGuestInterruptibility, intr & ~kEnded))
      return false;
  }
  if (start.needs.rsp && regs.rsp != start.rsp_at_exit)
    return vmcs.write(Field::kGuestRsp, regs.rsp);
  return true;
}

}  // namespace microhv::vmx
