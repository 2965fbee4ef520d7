// Decoding the few instructions that store to memory-mapped registers
// (portable, unit-tested in tests/unit/vmx_apic_emulation.cpp): what an
// xAPIC register write looks like in firmware and OS code (edk2
// MmioWrite32, Linux native_apic_mem_write): MOV r/m, r (88/89), MOV r/m,
// imm (C6/C7 /0), XCHG r/m, r (86/87, Linux's 11AP erratum path) and MOV
// moffs, AL/eAX (A2/A3). The memory operand itself is not evaluated -- the
// EPT violation reports its guest-physical address -- only the instruction
// length and the value written.
#pragma once

#include <stdint.h>

namespace microhv::vmx {

enum class CodeSize : uint8_t { k16, k32, k64 };  // CS.D / CS.L: default operand and address size

struct StoreDecode {
  bool ok = false;
  uint8_t length = 0;  // bytes, prefixes included
  uint8_t width = 0;   // bytes written: 1, 2, 4 or 8
  uint8_t opcode = 0;
  bool immediate = false;
  uint64_t imm = 0;        // the immediate, sign-extended to `width` (when `immediate`)
  uint8_t reg = 0;         // source register in x86 encoding order (0 = rAX) (when !immediate)
  bool high_byte = false;  // AH/CH/DH/BH (8-bit source 4..7 without REX)
};

StoreDecode decode_store(const uint8_t* bytes, uint32_t available, CodeSize mode);

// The value a decoded store writes, given the guest's registers in x86
// encoding order (gpr[0] = rAX ... gpr[15] = r15).
uint64_t store_value(const StoreDecode& d, const uint64_t* gpr);

}  // namespace microhv::vmx
