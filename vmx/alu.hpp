// The integer operations of the read-modify-write instructions microhv
// executes for the guest on its APIC page, with the status flags exactly as
// the SDM's pseudo-code defines them (Vol. 2, each instruction's "Flags
// Affected"). Flags the SDM leaves undefined keep their old value, except
// AF after logical operations and shifts, which is cleared. Portable;
// checked against the host CPU executing the same instructions
// (tests/unit/vmx_apic_emulation_native.cpp).
#pragma once

#include <stdint.h>

#include "vmx/decode.hpp"

namespace microhv::vmx {

struct AluResult {
  uint64_t value;   // masked to the operand width
  uint64_t rflags;  // the whole RFLAGS after the operation
};

// `width` in bytes (1, 2, 4, 8); operands are masked to it.
AluResult alu_binary(AluOp op, unsigned width, uint64_t dest, uint64_t src, uint64_t rflags);
AluResult alu_inc_dec(bool dec, unsigned width, uint64_t dest, uint64_t rflags);
AluResult alu_neg(unsigned width, uint64_t dest, uint64_t rflags);
// CMP dest, src: the flags of dest - src (value = the difference).
AluResult alu_compare(unsigned width, uint64_t dest, uint64_t src, uint64_t rflags);
// Shifts and rotates by `count` (masked to 5 bits, 6 for 64-bit operands).
AluResult alu_shift(ShiftOp op, unsigned width, uint64_t dest, uint8_t count, uint64_t rflags);
// BTS (1), BTR (2), BTC (3): CF = the bit, which is then set, cleared or
// complemented; `bit` is taken modulo the operand width.
AluResult alu_bit(uint8_t op, unsigned width, uint64_t dest, uint64_t bit, uint64_t rflags);
// The condition `cc` (the low nibble of Jcc/SETcc) on `rflags`.
bool condition_holds(uint8_t cc, uint64_t rflags);

inline uint64_t width_mask(unsigned width) {
  return width >= 8 ? ~0ull : (1ull << (8 * width)) - 1;
}

}  // namespace microhv::vmx
