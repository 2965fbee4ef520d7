// Decoding the instruction that wrote to the xAPIC page (portable,
// unit-tested in tests/unit/vmx_apic_decode.cpp): every x86 form that
// stores to memory through a ModRM operand, a moffs or a string
// destination, in 16-, 32- and 64-bit code, with legacy, REX and VEX
// prefixes -- MOV, MOVNTI, MOVBE, XCHG, the read-modify-write forms
// (ADD/OR/ADC/SBB/AND/SUB/XOR with reg, imm8, imm32; INC, DEC, NOT, NEG;
// the shifts and rotates; BTS/BTR/BTC; XADD; CMPXCHG), SETcc, STOS and
// MOVS, and the SSE/AVX stores of XMM registers (MOVD, MOVSS, PEXTRD,
// EXTRACTPS and the wider ones). The memory operand itself is not
// evaluated -- the EPT violation reports its guest-physical address --
// only what the instruction does, its operand width and its length. What
// is not listed (x87 and MMX stores, EVEX, PUSH/POP/CALL to memory,
// CMPXCHG8B/16B, FXSAVE, ...) does not decode.
#pragma once

#include <stdint.h>

namespace microhv::vmx {

enum class CodeSize : uint8_t { k16, k32, k64 };  // CS.D / CS.L: default operand and address size

enum class MemOp : uint8_t {
  kMov,     // dest = src
  kAlu,     // dest = dest <sub> src, flags: sub = AluOp
  kIncDec,  // sub 0: INC, 1: DEC (CF kept)
  kNot,
  kNeg,
  kShift,        // sub = ShiftOp, count from src (1, CL or imm8)
  kBitTest,      // sub 1: BTS, 2: BTR, 3: BTC; bit offset from src (reg or imm8)
  kXchg,         // reg <-> dest
  kXadd,         // dest = dest + reg, reg = old dest
  kCmpxchg,      // accumulator compared with dest
  kMovbe,        // dest = byte-swapped reg
  kSetcc,        // dest byte = condition `sub`
  kStos,         // dest = accumulator; RDI steps
  kMovs,         // dest = [seg:RSI]; RSI and RDI step
  kVectorStore,  // dest = XMM `reg`, dword `lane` (wider stores: `width` > 4)
};

enum class AluOp : uint8_t { kAdd, kOr, kAdc, kSbb, kAnd, kSub, kXor };
enum class ShiftOp : uint8_t { kRol, kRor, kRcl, kRcr, kShl, kShr, kSal, kSar };
enum class SrcKind : uint8_t { kNone, kReg, kImm, kOne, kCl };

inline constexpr int8_t kNoSegment = -1;  // else ES 0, CS 1, SS 2, DS 3, FS 4, GS 5

struct MemWrite {
  bool ok = false;
  uint8_t length = 0;  // bytes, prefixes included
  uint8_t width = 0;   // bytes written: 1, 2, 4, 8, 16 or 32
  MemOp op = MemOp::kMov;
  uint8_t sub = 0;
  SrcKind src = SrcKind::kNone;
  uint8_t reg = 0;           // GPR (x86 order, 0 = rAX) or XMM register
  bool high_byte = false;    // AH/CH/DH/BH (8-bit register 4..7 without REX)
  uint64_t imm = 0;          // the immediate, sign-extended to `width`
  uint8_t lane = 0;          // kVectorStore: dword of the XMM register
  bool rep = false;          // F3/F2 before STOS/MOVS
  uint8_t address_size = 8;  // 2, 4 or 8 bytes (string registers)
  int8_t segment = kNoSegment;
};

MemWrite decode_mem_write(const uint8_t* bytes, uint32_t available, CodeSize mode);

}  // namespace microhv::vmx
