// Entry point of the hypercall ABI (TLFS "Hypercall Interface"). The VT-x
// back end calls handle_hypercall() on a VMCALL exit with the guest's
// registers and processor mode; it never interprets the call itself.
#pragma once

#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"

namespace microhv {

class Vp;

// Processor mode at the VMCALL, as far as the ABI cares.
enum class CpuMode : uint8_t {
  kReal,         // CR0.PE = 0
  kVirtual8086,  // RFLAGS.VM = 1
  kProtected,    // 16- or 32-bit protected or compatibility mode
  kLong64,       // 64-bit code segment (CS.L = 1, EFER.LMA = 1)
};

struct HypercallRegs {
  CpuMode mode;
  uint8_t cpl;
  // 64-bit convention: RCX control, RDX input GPA / fast input 0, R8 output
  // GPA / fast input 1. 32-bit convention: EDX:EAX control, EBX:ECX input,
  // EDI:ESI output (only the low 32 bits of each register are used).
  uint64_t rax, rbx, rcx, rdx, rsi, rdi, r8;
};

enum class HypercallEnd : uint8_t {
  // The call is done: `value` is the result value, for RAX (64-bit) or
  // EDX:EAX (32-bit); RIP moves past the VMCALL.
  kResult,
  // A rep call is not done yet (TLFS "Hypercall Continuation"): `value` is
  // the hypercall input value with the rep start index advanced, for RCX
  // (64-bit) or EDX:EAX (32-bit). RIP stays at the VMCALL, so the guest
  // takes its pending interrupts and then executes the call again; an STI or
  // MOV SS shadow that covered the VMCALL ends, as it would have after it.
  kContinue,
  // #UD: the VMCALL is not a hypercall from this mode (TLFS: CPL > 0 or real
  // or virtual-8086 mode). The back end injects #UD and leaves RIP alone.
  kUndefinedOpcode,
};

struct HypercallOutcome {
  HypercallEnd end;
  uint64_t value;
};

HypercallOutcome handle_hypercall(Vp& caller, const HypercallRegs& regs);

// Writes a kResult value into the registers of the convention in use.
void store_hypercall_result(const HypercallRegs& in, uint64_t result, uint64_t* rax, uint64_t* rdx);
// Writes a kContinue input value: RCX (64-bit) or EDX:EAX (32-bit).
void store_hypercall_control(const HypercallRegs& in, uint64_t control, uint64_t* rcx,
                             uint64_t* rax, uint64_t* rdx);

}  // namespace microhv
