// Exceptions and NMIs that hit microhv itself (the host IDT, vmx/hw/entry.S):
// the fault-safe MSR/XSETBV routines recover, NMIs are kicks or the guest's,
// anything else is a microhv bug and stops this CPU with a register dump.
#include "vmx/hw/host.hpp"

extern "C" {
extern char microhv_entry_check[], microhv_entry_vmresume[];
extern char microhv_rdmsr_insn[], microhv_rdmsr_fixup[];
extern char microhv_wrmsr_insn[], microhv_wrmsr_fixup[];
extern char microhv_xsetbv_insn[], microhv_xsetbv_fixup[];
struct HostExceptionFrame {
  microhv::vmx::GuestRegs regs;
  uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
void microhv_host_exception(HostExceptionFrame* frame);
}

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::vmx::hw;

extern "C" void microhv_host_exception(HostExceptionFrame* f) {
  // Recoverable: the *_safe routines' instruction faulted (#GP; #UD for
  // XSETBV without CR4.OSXSAVE).
  struct Fixup {
    const char* insn;
    const char* fixup;
  };
  const Fixup fixups[] = {{microhv_rdmsr_insn, microhv_rdmsr_fixup},
                          {microhv_wrmsr_insn, microhv_wrmsr_fixup},
                          {microhv_xsetbv_insn, microhv_xsetbv_fixup}};
  if (f->vector == vector::kGp || f->vector == vector::kUd) {
    for (const Fixup& x : fixups) {
      if (f->rip == reinterpret_cast<uint64_t>(x.insn)) {
        f->rip = reinterpret_cast<uint64_t>(x.fixup);
        return;
      }
    }
  }
  // An NMI while the host runs (NMI exiting only covers the guest): a kick
  // or a genuine NMI for the guest, both handled before the next entry
  // (vmx/smp.hpp, host_nmi). No logging here: the interrupted code may hold
  // the log lock.
  if (f->vector == vector::kNmi) {
    Vcpu* v = current_vcpu();
    if (v != nullptr && v->frame != nullptr) {
      f->rip = host_nmi(v->frame->remote, f->rip, reinterpret_cast<uint64_t>(microhv_entry_check),
                        reinterpret_cast<uint64_t>(microhv_entry_vmresume))
                   .rip;
    }
    return;
  }
  uint64_t cr2;
  asm volatile("mov %%cr2, %0" : "=r"(cr2));
  log::stop_holding();  // the fault may have hit under Hypervisor::lock
  log::error(
      "host exception: vector %llu error 0x%llx at RIP 0x%llx (CS 0x%llx RFLAGS 0x%llx RSP 0x%llx) "
      "CR2 0x%llx\n",
      (unsigned long long)f->vector, (unsigned long long)f->error, (unsigned long long)f->rip,
      (unsigned long long)f->cs, (unsigned long long)f->rflags, (unsigned long long)f->rsp,
      (unsigned long long)cr2);
  dump_registers(f->regs);
  log::error("host stopped after an exception in microhv itself\n");
  halt_forever();
}
