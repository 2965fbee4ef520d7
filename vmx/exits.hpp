// VM-exit handling (portable, unit-tested): a bounds-checked dispatch table
// indexed by the basic exit reason, and handlers that work on the guest's
// registers through three small interfaces -- the VMCS, the CPU (native
// CPUID, MSR and XSETBV with fault recovery) and the Hyper-V core -- so host
// tests drive them with fakes. Every handler returns where RIP goes:
//   kAdvance: the instruction was emulated; RIP += exit instruction length
//   kRetry:   RIP unchanged (an exception was queued, or nothing to skip)
//   kStop:    the guest cannot continue; the back end dumps state and halts
// Nothing advances RIP by default, and an exit without a handler stops.
#pragma once

#include <stdint.h>

#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "synic/msr.hpp"
#include "vmx/controls.hpp"
#include "vmx/injection.hpp"
#include "vmx/vmcs.hpp"

namespace microhv::vmx {

// Guest general-purpose registers in the x86 encoding order (the index used
// by exit qualifications). The exit stub (vmx/entry.S) saves them in exactly
// this layout; rsp is a copy of the VMCS field, synchronised by the back end.
struct GuestRegs {
  uint64_t rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi;
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t& gpr(unsigned index) { return (&rax)[index & 15]; }
};
static_assert(sizeof(GuestRegs) == 16 * 8);

class VmcsAccess {
 public:
  virtual uint64_t read(Field f) = 0;
  virtual void write(Field f, uint64_t value) = 0;

 protected:
  ~VmcsAccess() = default;
};

class CpuServices {
 public:
  virtual CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) = 0;
  // False when the instruction faulted (#GP): the caller injects #GP.
  virtual bool rdmsr(uint32_t msr, uint64_t* value) = 0;
  virtual bool wrmsr(uint32_t msr, uint64_t value) = 0;
  virtual bool xsetbv(uint32_t index, uint64_t value) = 0;
  virtual void wbinvd() = 0;

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

 protected:
  ~HvCore() = default;
};

inline constexpr uint32_t kSyntheticMsrFirst = 0x40000000;
inline constexpr uint32_t kSyntheticMsrLast = 0x400000FF;

struct ExitContext {
  uint32_t reason;  // basic exit reason
  uint64_t qualification;
  GuestRegs& regs;
  VmcsAccess& vmcs;
  CpuServices& cpu;
  HvCore& core;
  PendingEvents& events;
  const VmxCapabilities& caps;  // CR fixed bits for CR-access emulation
  // microhv's own memory (not present in EPT) and the hypercall overlay page
  // (read+execute), for clear reporting of guest accesses to them.
  uint64_t hidden_base = 0, hidden_size = 0;
  uint64_t overlay_gpa = ~0ull;
  // Set by handlers that want a one-line reason printed on kStop.
  const char* stop_reason = nullptr;
};

enum class ExitAction : uint8_t { kAdvance, kRetry, kStop };

using ExitHandler = ExitAction (*)(ExitContext&);

// Handler for `reason`, or nullptr when there is none (or reason is out of
// range). Never indexes out of the table.
ExitHandler exit_handler(uint32_t reason);
// Runs the handler, or returns kStop (with stop_reason set) when none.
ExitAction dispatch_exit(ExitContext& ctx);

// Pieces exposed for tests.
CpuidRegs adjust_native_cpuid(uint32_t leaf, CpuidRegs native);
bool xsetbv_valid(uint32_t index, uint64_t value, uint64_t supported_xcr0);
CpuMode guest_cpu_mode(uint64_t cr0, uint64_t rflags, uint64_t efer, uint32_t cs_access);

inline constexpr uint32_t kCpuid1EcxVmx = 1u << 5;
inline constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;

}  // namespace microhv::vmx
