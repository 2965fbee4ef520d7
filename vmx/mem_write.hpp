// Executing a decoded memory-writing instruction (vmx/decode.hpp) for the
// guest: its registers, RFLAGS and the one destination it wrote to, with
// the destination's load and store supplied by the caller (the xAPIC page,
// vmx/exit_apic.cpp). Portable; the results and flags are unit-tested
// against the host CPU executing the same bytes
// (tests/unit/vmx_apic_emulation_native.cpp).
//
// REP STOS/MOVS run one iteration per call (the SDM defines them as
// interruptible after each element): RIP stays on the instruction until
// the count reaches 0, and the next element exits again if it is on the
// page.
#pragma once

#include <stdint.h>

#include "vmx/decode.hpp"

namespace microhv::vmx {

class MemWritePorts {
 public:
  // The destination's current value (`width` bytes) for the read half of a
  // read-modify-write, XCHG, XADD and CMPXCHG. False: the access cannot be
  // made (the instruction is not emulated).
  virtual bool load(unsigned width, uint64_t* value) = 0;
  // The store (the caller decides what reaches the device).
  virtual void store(unsigned width, uint64_t value) = 0;
  // MOVS: `width` bytes at segment `segment` (ES 0 .. GS 5), offset
  // `offset` (already masked to the address size).
  virtual bool load_source(int8_t segment, uint64_t offset, unsigned width, uint64_t* value) = 0;
  // Dword `lane` of XMM register `reg`.
  virtual bool read_xmm(unsigned reg, unsigned lane, uint32_t* value) = 0;

 protected:
  ~MemWritePorts() = default;
};

struct MemWriteState {
  uint64_t gpr[16];  // x86 encoding order
  uint64_t rflags;
};

enum class MemWriteResult : uint8_t {
  kDone,    // RIP moves past the instruction
  kRepeat,  // one REP iteration done, more to go: RIP stays
  kFailed,  // a load could not be made: nothing changed
};

MemWriteResult execute_mem_write(const MemWrite& d, MemWriteState& s, MemWritePorts& ports);

}  // namespace microhv::vmx
