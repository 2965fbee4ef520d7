#include "vmx/decode.hpp"

namespace microhv::vmx {
namespace {

struct Prefixes {
  bool opsize = false, addrsize = false, rep = false, repne = false;
  int8_t segment = kNoSegment;
  uint8_t rex = 0;
  // VEX: map (1 = 0F, 2 = 0F38, 3 = 0F3A), pp (0 none, 1 66, 2 F3, 3 F2), L, W.
  bool vex = false;
  uint8_t vex_map = 0, vex_pp = 0;
  bool vex_l = false, vex_w = false;
  bool rex_r() const { return (rex & 4) != 0; }
  bool rex_w() const { return (rex & 8) != 0; }
};

class Reader {
 public:
  Reader(const uint8_t* b, uint32_t n) : b_(b), n_(n > 15 ? 15 : n) {}
  bool more() const { return i_ < n_; }
  bool next(uint8_t* v) {
    if (i_ >= n_) return false;
    *v = b_[i_++];
    return true;
  }
  uint8_t peek(uint32_t ahead = 0) const { return i_ + ahead < n_ ? b_[i_ + ahead] : 0; }
  bool skip(uint32_t k) {
    if (i_ + k > n_) return false;
    i_ += k;
    return true;
  }
  bool imm(uint32_t bytes, uint64_t* v) {
    if (i_ + bytes > n_) return false;
    uint64_t x = 0;
    for (uint32_t k = 0; k < bytes; ++k) x |= static_cast<uint64_t>(b_[i_ + k]) << (8 * k);
    i_ += bytes;
    *v = x;
    return true;
  }
  uint32_t pos() const { return i_; }

 private:
  const uint8_t* b_;
  uint32_t n_, i_ = 0;
};

int8_t segment_of(uint8_t p) {
  switch (p) {
    case 0x26:
      return 0;
    case 0x2E:
      return 1;
    case 0x36:
      return 2;
    case 0x3E:
      return 3;
    case 0x64:
      return 4;
    case 0x65:
      return 5;
    default:
      return kNoSegment;
  }
}

// The ModRM memory operand's length after the ModRM byte (SIB and
// displacement). False for a register operand (mod = 3: not a store).
bool skip_memory_operand(Reader& r, uint8_t modrm, unsigned addr_bits) {
  const unsigned mod = modrm >> 6, rm = modrm & 7;
  if (mod == 3) return false;
  if (addr_bits == 16) {
    if (mod == 0 && rm == 6) return r.skip(2);
    return r.skip(mod == 1 ? 1 : mod == 2 ? 2 : 0);
  }
  if (rm == 4) {  // SIB
    uint8_t sib = 0;
    if (!r.next(&sib)) return false;
    if (mod == 0 && (sib & 7) == 5 && !r.skip(4)) return false;
  }
  if (mod == 0 && rm == 5) return r.skip(4);  // disp32 (RIP-relative in 64-bit mode)
  return r.skip(mod == 1 ? 1 : mod == 2 ? 4 : 0);
}

uint64_t sign_extend(uint64_t v, unsigned from_bytes, unsigned to_bytes) {
  const unsigned from = 8 * from_bytes, to = 8 * to_bytes;
  if (from < 64 && (v >> (from - 1) & 1) != 0) v |= ~0ull << from;
  return to >= 64 ? v : v & ((1ull << to) - 1);
}

struct Decoder {
  Reader& r;
  const Prefixes& p;
  CodeSize mode;
  unsigned addr_bits;
  MemWrite d;

  uint8_t operand_width(bool byte_op) const {
    if (byte_op) return 1;
    if (p.rex_w()) return 8;
    return (mode == CodeSize::k16) != p.opsize ? 2 : 4;
  }
  // ModRM with a memory operand; `reg` receives the reg field (REX.R added).
  bool modrm(uint8_t* reg_field, uint8_t* modrm_byte) {
    uint8_t m = 0;
    if (!r.next(&m) || !skip_memory_operand(r, m, addr_bits)) return false;
    *reg_field = static_cast<uint8_t>(((m >> 3) & 7) | (p.rex_r() ? 8 : 0));
    *modrm_byte = m;
    return true;
  }
  void source_reg(uint8_t reg_field, uint8_t width) {
    d.src = SrcKind::kReg;
    d.reg = reg_field;
    if (width == 1 && p.rex == 0 && reg_field >= 4 && reg_field < 8) {
      d.high_byte = true;
      d.reg = static_cast<uint8_t>(reg_field - 4);
    }
  }
  bool immediate(uint32_t bytes, uint8_t width) {
    uint64_t v = 0;
    if (!r.imm(bytes, &v)) return false;
    d.src = SrcKind::kImm;
    d.imm = sign_extend(v, bytes, width);
    return true;
  }
  bool done() {
    d.ok = true;
    d.length = static_cast<uint8_t>(r.pos());
    return true;
  }

  bool one_byte(uint8_t op) {
    uint8_t reg = 0, m = 0;
    if (op < 0x40 && (op & 7) <= 1 && (op >> 3) != 7) {  // ALU r/m, reg (CMP excluded)
      d.width = operand_width((op & 1) == 0);
      d.op = MemOp::kAlu;
      d.sub = static_cast<uint8_t>(op >> 3);
      if (!modrm(&reg, &m)) return false;
      source_reg(reg, d.width);
      return done();
    }
    switch (op) {
      case 0x80:
      case 0x81:
      case 0x83:
        d.width = operand_width(op == 0x80);
        if (!modrm(&reg, &m) || (reg & 7) == 7) return false;  // /7 is CMP
        d.op = MemOp::kAlu;
        d.sub = reg & 7;
        if (!immediate(op == 0x81 ? (d.width == 2 ? 2 : 4) : 1, d.width)) return false;
        return done();
      case 0x86:
      case 0x87:
      case 0x88:
      case 0x89:
        d.width = operand_width(op == 0x86 || op == 0x88);
        d.op = op <= 0x87 ? MemOp::kXchg : MemOp::kMov;
        if (!modrm(&reg, &m)) return false;
        source_reg(reg, d.width);
        return done();
      case 0xA2:
      case 0xA3:  // MOV moffs, AL/eAX: the offset has the address size
        d.width = operand_width(op == 0xA2);
        d.op = MemOp::kMov;
        d.src = SrcKind::kReg;
        d.reg = 0;
        if (!r.skip(addr_bits / 8)) return false;
        return done();
      case 0xA4:
      case 0xA5:
      case 0xAA:
      case 0xAB:
        d.width = operand_width((op & 1) == 0);
        d.op = op <= 0xA5 ? MemOp::kMovs : MemOp::kStos;
        d.rep = p.rep || p.repne;
        d.src = SrcKind::kReg;
        d.reg = 0;
        return done();
      case 0xC0:
      case 0xC1:
      case 0xD0:
      case 0xD1:
      case 0xD2:
      case 0xD3:
        d.width = operand_width((op & 1) == 0);
        d.op = MemOp::kShift;
        if (!modrm(&reg, &m)) return false;
        d.sub = reg & 7;
        if (op <= 0xC1) {
          if (!immediate(1, 1)) return false;
        } else {
          d.src = op <= 0xD1 ? SrcKind::kOne : SrcKind::kCl;
        }
        return done();
      case 0xC6:
      case 0xC7:
        d.width = operand_width(op == 0xC6);
        d.op = MemOp::kMov;
        if (!modrm(&reg, &m) || (reg & 7) != 0) return false;
        if (!immediate(d.width == 1 ? 1 : d.width == 2 ? 2 : 4, d.width)) return false;
        return done();
      case 0xF6:
      case 0xF7:
        d.width = operand_width(op == 0xF6);
        if (!modrm(&reg, &m)) return false;
        if ((reg & 7) == 2) {
          d.op = MemOp::kNot;
        } else if ((reg & 7) == 3) {
          d.op = MemOp::kNeg;
        } else {
          return false;  // TEST, MUL, DIV... do not write memory
        }
        return done();
      case 0xFE:
      case 0xFF:
        d.width = operand_width(op == 0xFE);
        if (!modrm(&reg, &m) || (reg & 7) > 1) return false;
        d.op = MemOp::kIncDec;
        d.sub = reg & 7;
        return done();
      default:
        return false;
    }
  }

  // SSE/AVX stores of an XMM register: width and dword lane; `pp` is the
  // mandatory prefix (0 none, 1 66, 2 F3, 3 F2).
  bool vector_store(uint8_t map, uint8_t op, uint8_t pp, bool w, bool l) {
    const uint8_t vec = l ? 32 : 16;
    uint8_t width = 0;
    bool has_imm = false;
    if (map == 1) {
      switch (op) {
        case 0x11:
          width = pp == 2 ? 4 : pp == 3 ? 8 : vec;
          break;  // MOVUPS/PD, MOVSS, MOVSD
        case 0x13:
        case 0x17:
          width = pp <= 1 ? 8 : 0;
          break;  // MOVLPS/PD, MOVHPS/PD
        case 0x29:
        case 0x2B:
          width = pp <= 1 ? vec : 0;
          break;  // MOVAPS/PD, MOVNTPS/PD
        case 0x7E:
          width = pp == 1 ? (w ? 8 : 4) : 0;
          break;  // MOVD/MOVQ r/m, xmm
        case 0x7F:
          width = pp == 1 || pp == 2 ? vec : 0;
          break;  // MOVDQA, MOVDQU
        case 0xD6:
          width = pp == 1 ? 8 : 0;
          break;  // MOVQ m64, xmm
        case 0xE7:
          width = pp == 1 ? vec : 0;
          break;  // MOVNTDQ
        default:
          break;
      }
    } else if (map == 3 && pp == 1 && op >= 0x14 && op <= 0x17) {
      // PEXTRB, PEXTRW, PEXTRD/Q, EXTRACTPS
      width = op == 0x14 ? 1 : op == 0x15 ? 2 : op == 0x16 && w ? 8 : 4;
      has_imm = true;
    }
    if (width == 0) return false;
    uint8_t reg = 0, m = 0;
    if (!modrm(&reg, &m)) return false;
    d.op = MemOp::kVectorStore;
    d.width = width;
    d.reg = reg;
    if (has_imm) {
      uint64_t imm = 0;
      if (!r.imm(1, &imm)) return false;
      d.imm = imm;
      if (width == 4) d.lane = static_cast<uint8_t>(imm & 3);
    }
    return done();
  }

  bool two_byte(uint8_t op) {
    uint8_t reg = 0, m = 0;
    if (op >= 0x90 && op <= 0x9F) {  // SETcc
      if (!modrm(&reg, &m)) return false;
      d.width = 1;
      d.op = MemOp::kSetcc;
      d.sub = op & 0xF;
      return done();
    }
    switch (op) {
      case 0xAB:
      case 0xB3:
      case 0xBB:  // BTS, BTR, BTC r/m, reg
        d.width = operand_width(false);
        d.op = MemOp::kBitTest;
        d.sub = op == 0xAB ? 1 : op == 0xB3 ? 2 : 3;
        if (!modrm(&reg, &m)) return false;
        source_reg(reg, d.width);
        return done();
      case 0xBA:  // BT group, imm8
        d.width = operand_width(false);
        if (!modrm(&reg, &m) || (reg & 7) < 5) return false;  // /4 is BT: no write
        d.op = MemOp::kBitTest;
        d.sub = static_cast<uint8_t>((reg & 7) - 4);
        if (!immediate(1, 1)) return false;
        return done();
      case 0xB0:
      case 0xB1:
      case 0xC0:
      case 0xC1:
        d.width = operand_width((op & 1) == 0);
        d.op = op <= 0xB1 ? MemOp::kCmpxchg : MemOp::kXadd;
        if (!modrm(&reg, &m)) return false;
        source_reg(reg, d.width);
        return done();
      case 0xC3:  // MOVNTI m32/m64, r
        d.width = p.rex_w() ? 8 : 4;
        d.op = MemOp::kMov;
        if (!modrm(&reg, &m)) return false;
        source_reg(reg, d.width);
        return done();
      default: {
        const uint8_t pp = p.repne ? 3 : p.rep ? 2 : p.opsize ? 1 : 0;
        return vector_store(1, op, pp, p.rex_w(), false);
      }
    }
  }

  bool three_byte(uint8_t map, uint8_t op) {
    if (map == 2 && op == 0xF1 && !p.repne && !p.rep) {  // MOVBE m, r
      uint8_t reg = 0, m = 0;
      d.width = operand_width(false);
      d.op = MemOp::kMovbe;
      if (!modrm(&reg, &m)) return false;
      source_reg(reg, d.width);
      return done();
    }
    if (map == 3) return vector_store(3, op, p.opsize ? 1 : 0, p.rex_w(), false);
    return false;
  }
};

}  // namespace

MemWrite decode_mem_write(const uint8_t* bytes, uint32_t available, CodeSize mode) {
  Reader r(bytes, available);
  Prefixes p;
  // Legacy prefixes (any order), then REX (64-bit mode, right before the opcode).
  for (;;) {
    const uint8_t b = r.peek();
    if (!r.more()) return MemWrite{};
    if (b == 0x66) {
      p.opsize = true;
    } else if (b == 0x67) {
      p.addrsize = true;
    } else if (b == 0xF3) {
      p.rep = true;
      p.repne = false;
    } else if (b == 0xF2) {
      p.repne = true;
      p.rep = false;
    } else if (b == 0xF0) {
      // LOCK: the emulation is one access, atomic towards this VP's own APIC
    } else if (segment_of(b) != kNoSegment) {
      p.segment = segment_of(b);
    } else {
      break;
    }
    r.skip(1);
  }
  if (mode == CodeSize::k64 && (r.peek() & 0xF0) == 0x40) {
    uint8_t rex = 0;
    r.next(&rex);
    p.rex = rex;
  }
  const unsigned addr_bits = mode == CodeSize::k64   ? (p.addrsize ? 32 : 64)
                             : mode == CodeSize::k32 ? (p.addrsize ? 16 : 32)
                                                     : (p.addrsize ? 32 : 16);
  uint8_t op = 0;
  if (!r.next(&op)) return MemWrite{};
  // VEX (C4/C5): always in 64-bit mode; elsewhere only when the next byte
  // has its top two bits set (otherwise LES/LDS).
  if ((op == 0xC4 || op == 0xC5) && p.rex == 0 &&
      (mode == CodeSize::k64 || (r.peek() & 0xC0) == 0xC0)) {
    uint8_t b1 = 0, b2 = 0;
    if (!r.next(&b1)) return MemWrite{};
    if (op == 0xC5) {
      p.rex = (b1 & 0x80) == 0 ? 4 : 0;  // R, inverted
      p.vex_map = 1;
      p.vex_l = (b1 & 4) != 0;
      p.vex_pp = b1 & 3;
    } else {
      if (!r.next(&b2)) return MemWrite{};
      p.rex = static_cast<uint8_t>(((b1 & 0x80) == 0 ? 4 : 0) | ((b2 & 0x80) != 0 ? 8 : 0));
      p.vex_map = b1 & 0x1F;
      p.vex_l = (b2 & 4) != 0;
      p.vex_pp = b2 & 3;
    }
    p.vex = true;
    if (!r.next(&op)) return MemWrite{};
    Decoder dec{r, p, mode, addr_bits, {}};
    if (!dec.vector_store(p.vex_map, op, p.vex_pp, p.rex_w(), p.vex_l)) return MemWrite{};
    dec.d.address_size = static_cast<uint8_t>(addr_bits / 8);
    return dec.d;
  }
  Decoder dec{r, p, mode, addr_bits, {}};
  bool ok = false;
  if (op != 0x0F) {
    ok = dec.one_byte(op);
  } else {
    uint8_t op2 = 0;
    if (!r.next(&op2)) return MemWrite{};
    if (op2 == 0x38 || op2 == 0x3A) {
      uint8_t op3 = 0;
      if (!r.next(&op3)) return MemWrite{};
      ok = dec.three_byte(op2 == 0x38 ? 2 : 3, op3);
    } else {
      ok = dec.two_byte(op2);
    }
  }
  if (!ok) return MemWrite{};
  dec.d.address_size = static_cast<uint8_t>(addr_bits / 8);
  dec.d.segment = p.segment;
  return dec.d;
}

}  // namespace microhv::vmx
