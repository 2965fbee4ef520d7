#include "vmx/decode.hpp"

namespace microhv::vmx {

StoreDecode decode_store(const uint8_t* b, uint32_t n, CodeSize mode) {
  StoreDecode d;
  uint32_t i = 0;
  bool opsize = false, addrsize = false;
  uint8_t rex = 0;
  // Legacy prefixes (any order), then REX (64-bit mode, immediately before
  // the opcode).
  for (; i < n && i < 15; ++i) {
    const uint8_t p = b[i];
    if (p == 0x66) {
      opsize = true;
    } else if (p == 0x67) {
      addrsize = true;
    } else if (p == 0xF0 || p == 0xF2 || p == 0xF3 || p == 0x2E || p == 0x36 || p == 0x3E ||
               p == 0x26 || p == 0x64 || p == 0x65) {
      // lock, rep, segment overrides: no effect on length or value
    } else {
      break;
    }
  }
  if (mode == CodeSize::k64 && i < n && (b[i] & 0xF0) == 0x40) rex = b[i++];
  if (i >= n) return d;
  const uint8_t op = b[i++];
  const bool rex_w = (rex & 8) != 0;
  d.opcode = op;

  uint8_t width;
  if (op == 0x88 || op == 0x86 || op == 0xC6 || op == 0xA2) {
    width = 1;
  } else if (op == 0x89 || op == 0x87 || op == 0xC7 || op == 0xA3) {
    width = rex_w ? 8 : ((mode == CodeSize::k16) != opsize ? 2 : 4);
  } else {
    return d;
  }
  const unsigned addr_bits = mode == CodeSize::k64   ? (addrsize ? 32 : 64)
                             : mode == CodeSize::k32 ? (addrsize ? 16 : 32)
                                                     : (addrsize ? 32 : 16);

  if (op == 0xA2 || op == 0xA3) {  // MOV moffs, AL/eAX: the offset has the address size
    i += addr_bits / 8;
    if (i > n || i > 15) return d;  // SDM Vol. 2 2.3.11: at most 15 bytes
    d.ok = true;
    d.length = static_cast<uint8_t>(i);
    d.width = width;
    d.reg = 0;
    return d;
  }

  if (i >= n) return d;
  const uint8_t modrm = b[i++];
  const unsigned mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
  if (mod == 3) return d;                                // register destination: not a store
  if ((op == 0xC6 || op == 0xC7) && reg != 0) return d;  // only MOV /0
  if (addr_bits == 16) {
    if (mod == 0 && rm == 6)
      i += 2;
    else if (mod == 1)
      i += 1;
    else if (mod == 2)
      i += 2;
  } else {
    if (rm == 4) {  // SIB
      if (i >= n) return d;
      const uint8_t sib = b[i++];
      if (mod == 0 && (sib & 7) == 5) i += 4;
    }
    if (mod == 0 && rm == 5)
      i += 4;  // disp32 (RIP-relative in 64-bit mode)
    else if (mod == 1)
      i += 1;
    else if (mod == 2)
      i += 4;
  }
  if (op == 0xC6 || op == 0xC7) {
    const uint32_t imm_bytes = width == 1 ? 1 : (width == 2 ? 2 : 4);
    if (i + imm_bytes > n) return d;
    uint64_t v = 0;
    for (uint32_t k = 0; k < imm_bytes; ++k) v |= static_cast<uint64_t>(b[i + k]) << (8 * k);
    if (width == 8 && (v & 0x80000000ull) != 0) v |= 0xFFFFFFFF00000000ull;  // imm32 sign-extended
    i += imm_bytes;
    d.immediate = true;
    d.imm = v;
  } else {
    d.reg = static_cast<uint8_t>(reg | ((rex & 4) != 0 ? 8 : 0));
    d.high_byte = width == 1 && rex == 0 && reg >= 4;
    if (d.high_byte) d.reg = static_cast<uint8_t>(reg - 4);
  }
  if (i > n || i > 15) return d;
  d.ok = true;
  d.length = static_cast<uint8_t>(i);
  d.width = width;
  return d;
}

uint64_t store_value(const StoreDecode& d, const uint64_t* gpr) {
  uint64_t v = d.immediate ? d.imm : gpr[d.reg & 15];
  if (!d.immediate && d.high_byte) v >>= 8;
  if (d.width < 8) v &= (1ull << (8 * d.width)) - 1;
  return v;
}

}  // namespace microhv::vmx
