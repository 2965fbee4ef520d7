#include "vmx/alu.hpp"

#include "arch/x86.hpp"

namespace microhv::vmx {
namespace {

namespace fl = arch::rflags;

uint64_t sign_bit(unsigned width) {
  return 1ull << (8 * width - 1);
}

// ZF, SF, PF from a result (PF: even parity of the low byte).
uint64_t zsp(uint64_t r, unsigned width) {
  uint64_t f = 0;
  if ((r & width_mask(width)) == 0) f |= fl::kZf;
  if ((r & sign_bit(width)) != 0) f |= fl::kSf;
  if ((__builtin_popcount(static_cast<unsigned>(r & 0xFF)) & 1) == 0) f |= fl::kPf;
  return f;
}

uint64_t with(uint64_t rflags, uint64_t affected, uint64_t values) {
  return (rflags & ~affected) | (values & affected);
}

// a + b + carry, all six status flags.
AluResult add(unsigned w, uint64_t a, uint64_t b, unsigned carry, uint64_t rflags) {
  const uint64_t m = width_mask(w);
  a &= m;
  b &= m;
  const uint64_t r = (a + b + carry) & m;
  const unsigned __int128 wide = static_cast<unsigned __int128>(a) + b + carry;
  uint64_t f = zsp(r, w);
  if (wide > m) f |= fl::kCf;
  if (((a ^ r) & (b ^ r) & sign_bit(w)) != 0) f |= fl::kOf;
  if (((a ^ b ^ r) & 0x10) != 0) f |= fl::kAf;
  return {r, with(rflags, fl::kArith, f)};
}

// a - b - borrow, all six status flags.
AluResult sub(unsigned w, uint64_t a, uint64_t b, unsigned borrow, uint64_t rflags) {
  const uint64_t m = width_mask(w);
  a &= m;
  b &= m;
  const uint64_t r = (a - b - borrow) & m;
  uint64_t f = zsp(r, w);
  if (static_cast<unsigned __int128>(a) < static_cast<unsigned __int128>(b) + borrow) f |= fl::kCf;
  if (((a ^ b) & (a ^ r) & sign_bit(w)) != 0) f |= fl::kOf;
  if (((a ^ b ^ r) & 0x10) != 0) f |= fl::kAf;
  return {r, with(rflags, fl::kArith, f)};
}

// AND/OR/XOR: CF = OF = 0; AF is undefined (cleared, as Intel CPUs do).
AluResult logic(unsigned w, uint64_t r, uint64_t rflags) {
  r &= width_mask(w);
  return {r, with(rflags, fl::kArith, zsp(r, w))};
}

}  // namespace

AluResult alu_binary(AluOp op, unsigned w, uint64_t a, uint64_t b, uint64_t rflags) {
  const unsigned cf = (rflags & fl::kCf) != 0 ? 1 : 0;
  switch (op) {
    case AluOp::kAdd:
      return add(w, a, b, 0, rflags);
    case AluOp::kAdc:
      return add(w, a, b, cf, rflags);
    case AluOp::kSub:
      return sub(w, a, b, 0, rflags);
    case AluOp::kSbb:
      return sub(w, a, b, cf, rflags);
    case AluOp::kAnd:
      return logic(w, a & b, rflags);
    case AluOp::kOr:
      return logic(w, a | b, rflags);
    case AluOp::kXor:
      return logic(w, a ^ b, rflags);
  }
  return {a & width_mask(w), rflags};
}

AluResult alu_inc_dec(bool dec, unsigned w, uint64_t a, uint64_t rflags) {
  // As ADD/SUB 1, but CF is not affected.
  const AluResult r = dec ? sub(w, a, 1, 0, rflags) : add(w, a, 1, 0, rflags);
  return {r.value, with(r.rflags, fl::kCf, rflags)};
}

AluResult alu_neg(unsigned w, uint64_t a, uint64_t rflags) {
  // 0 - a; CF = (a != 0), which is exactly SUB's borrow.
  return sub(w, 0, a, 0, rflags);
}

AluResult alu_compare(unsigned w, uint64_t a, uint64_t b, uint64_t rflags) {
  return sub(w, a, b, 0, rflags);
}

AluResult alu_shift(ShiftOp op, unsigned w, uint64_t a, uint8_t count, uint64_t rflags) {
  const unsigned bits = 8 * w;
  const uint64_t m = width_mask(w), msb = sign_bit(w);
  a &= m;
  const unsigned masked = count & (w == 8 ? 0x3F : 0x1F);
  if (masked == 0) return {a, rflags};  // no flag changes at all
  uint64_t r = a;
  uint64_t cf = (rflags & fl::kCf) != 0 ? 1 : 0;
  uint64_t of = (rflags & fl::kOf) != 0 ? 1 : 0;
  bool szp = false;  // shifts set SF/ZF/PF (and clear AF), rotates leave them
  switch (op) {
    case ShiftOp::kRol: {
      const unsigned n = masked % bits;
      r = n == 0 ? a : ((a << n) | (a >> (bits - n))) & m;
      cf = r & 1;
      if (masked == 1) of = ((r & msb) != 0) ^ cf;
      break;
    }
    case ShiftOp::kRor: {
      const unsigned n = masked % bits;
      r = n == 0 ? a : ((a >> n) | (a << (bits - n))) & m;
      cf = (r & msb) != 0;
      if (masked == 1) of = ((r & msb) != 0) ^ ((r & (msb >> 1)) != 0);
      break;
    }
    case ShiftOp::kRcl: {
      const unsigned n = w == 1 ? masked % 9 : w == 2 ? masked % 17 : masked;
      for (unsigned i = 0; i < n; ++i) {
        const uint64_t out = (r & msb) != 0;
        r = ((r << 1) | cf) & m;
        cf = out;
      }
      if (masked == 1) of = ((r & msb) != 0) ^ cf;
      break;
    }
    case ShiftOp::kRcr: {
      const unsigned n = w == 1 ? masked % 9 : w == 2 ? masked % 17 : masked;
      if (masked == 1) of = ((a & msb) != 0) ^ cf;
      for (unsigned i = 0; i < n; ++i) {
        const uint64_t out = r & 1;
        r = (r >> 1) | (cf != 0 ? msb : 0);
        cf = out;
      }
      break;
    }
    case ShiftOp::kShl:
    case ShiftOp::kSal:
      for (unsigned i = 0; i < masked; ++i) {
        cf = (r & msb) != 0;
        r = (r << 1) & m;
      }
      if (masked == 1) of = ((r & msb) != 0) ^ cf;
      szp = true;
      break;
    case ShiftOp::kShr:
      for (unsigned i = 0; i < masked; ++i) {
        cf = r & 1;
        r >>= 1;
      }
      if (masked == 1) of = (a & msb) != 0;
      szp = true;
      break;
    case ShiftOp::kSar:
      for (unsigned i = 0; i < masked; ++i) {
        cf = r & 1;
        r = (r >> 1) | (r & msb);
      }
      if (masked == 1) of = 0;
      szp = true;
      break;
  }
  uint64_t f = (cf != 0 ? fl::kCf : 0) | (of != 0 ? fl::kOf : 0);
  uint64_t affected = fl::kCf | fl::kOf;
  if (szp) {
    f |= zsp(r, w);
    affected |= fl::kZf | fl::kSf | fl::kPf | fl::kAf;
  }
  return {r, with(rflags, affected, f)};
}

AluResult alu_bit(uint8_t op, unsigned w, uint64_t a, uint64_t bit, uint64_t rflags) {
  const uint64_t m = width_mask(w);
  a &= m;
  const uint64_t mask = 1ull << (bit & (8 * w - 1));
  const uint64_t cf = (a & mask) != 0 ? fl::kCf : 0;
  uint64_t r = a;
  if (op == 1) r |= mask;
  if (op == 2) r &= ~mask;
  if (op == 3) r ^= mask;
  return {r, with(rflags, fl::kCf, cf)};
}

bool condition_holds(uint8_t cc, uint64_t f) {
  const bool cf = (f & fl::kCf) != 0, zf = (f & fl::kZf) != 0, sf = (f & fl::kSf) != 0,
             of = (f & fl::kOf) != 0, pf = (f & fl::kPf) != 0;
  bool v = false;
  switch (cc >> 1) {
    case 0:
      v = of;
      break;  // O
    case 1:
      v = cf;
      break;  // B
    case 2:
      v = zf;
      break;  // E
    case 3:
      v = cf || zf;
      break;  // BE
    case 4:
      v = sf;
      break;  // S
    case 5:
      v = pf;
      break;  // P
    case 6:
      v = sf != of;
      break;  // L
    case 7:
      v = zf || (sf != of);
      break;  // LE
  }
  return (cc & 1) != 0 ? !v : v;
}

}  // namespace microhv::vmx
