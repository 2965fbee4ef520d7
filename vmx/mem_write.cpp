#include "vmx/mem_write.hpp"

#include "arch/x86.hpp"
#include "vmx/alu.hpp"

namespace microhv::vmx {
namespace {

uint64_t read_reg(const MemWriteState& s, const MemWrite& d, unsigned width) {
  const uint64_t v = d.high_byte ? s.gpr[d.reg & 3] >> 8 : s.gpr[d.reg & 15];
  return v & width_mask(width);
}

// A register write of `width` bytes: 8- and 16-bit writes merge, 32-bit
// writes zero the upper half (SDM Vol. 1 3.4.1.1).
void write_reg(MemWriteState& s, uint8_t reg, bool high_byte, unsigned width, uint64_t v) {
  uint64_t& r = s.gpr[high_byte ? reg & 3 : reg & 15];
  if (width == 1 && high_byte) {
    r = (r & ~0xFF00ull) | ((v & 0xFF) << 8);
  } else if (width == 1 || width == 2) {
    r = (r & ~width_mask(width)) | (v & width_mask(width));
  } else {
    r = v & width_mask(width);
  }
}

uint64_t byte_swap(uint64_t v, unsigned width) {
  uint64_t r = 0;
  for (unsigned i = 0; i < width; ++i) r |= ((v >> (8 * i)) & 0xFF) << (8 * (width - 1 - i));
  return r;
}

// One element of STOS/MOVS, then the string registers (masked to the
// address size: a 16- or 32-bit update leaves the rest of RSI/RDI/RCX as
// the CPU does, zero-extended for 32 bits).
MemWriteResult string_element(const MemWrite& d, MemWriteState& s, MemWritePorts& ports) {
  const uint64_t am = width_mask(d.address_size);
  auto set = [&](unsigned r, uint64_t v) {
    write_reg(s, static_cast<uint8_t>(r), false, d.address_size, v);
  };
  constexpr unsigned kRcx = 1, kRsi = 6, kRdi = 7;
  const uint64_t count = s.gpr[kRcx] & am;
  if (d.rep && count == 0) return MemWriteResult::kDone;  // nothing was stored
  uint64_t v = s.gpr[0] & width_mask(d.width);
  if (d.op == MemOp::kMovs) {
    const int8_t seg = d.segment == kNoSegment ? 3 : d.segment;  // DS by default
    if (!ports.load_source(seg, s.gpr[kRsi] & am, d.width, &v)) return MemWriteResult::kFailed;
  }
  ports.store(d.width, v);
  const uint64_t step = (s.rflags & arch::rflags::kDf) != 0 ? 0 - uint64_t{d.width} : d.width;
  set(kRdi, s.gpr[kRdi] + step);
  if (d.op == MemOp::kMovs) set(kRsi, s.gpr[kRsi] + step);
  if (!d.rep) return MemWriteResult::kDone;
  set(kRcx, count - 1);
  return count - 1 == 0 ? MemWriteResult::kDone : MemWriteResult::kRepeat;
}

}  // namespace

MemWriteResult execute_mem_write(const MemWrite& d, MemWriteState& s, MemWritePorts& ports) {
  const unsigned w = d.width;
  if (d.op == MemOp::kStos || d.op == MemOp::kMovs) return string_element(d, s, ports);
  if (d.op == MemOp::kVectorStore) {
    uint32_t lane = 0;
    if (w == 4 && !ports.read_xmm(d.reg, d.lane, &lane)) return MemWriteResult::kFailed;
    ports.store(w, lane);  // wider stores carry no value the APIC can take
    return MemWriteResult::kDone;
  }
  if (d.op == MemOp::kSetcc) {
    ports.store(1, condition_holds(d.sub, s.rflags) ? 1 : 0);
    return MemWriteResult::kDone;
  }
  const uint64_t src = d.src == SrcKind::kImm   ? d.imm & width_mask(w)
                       : d.src == SrcKind::kReg ? read_reg(s, d, w)
                       : d.src == SrcKind::kOne ? 1
                       : d.src == SrcKind::kCl  ? s.gpr[1] & 0xFF
                                                : 0;
  if (d.op == MemOp::kMov || d.op == MemOp::kMovbe) {
    ports.store(w, d.op == MemOp::kMovbe ? byte_swap(src, w) : src);
    return MemWriteResult::kDone;
  }
  uint64_t old = 0;
  if (!ports.load(w, &old)) return MemWriteResult::kFailed;
  old &= width_mask(w);
  AluResult r{old, s.rflags};
  switch (d.op) {
    case MemOp::kAlu:
      r = alu_binary(static_cast<AluOp>(d.sub), w, old, src, s.rflags);
      break;
    case MemOp::kIncDec:
      r = alu_inc_dec(d.sub == 1, w, old, s.rflags);
      break;
    case MemOp::kNot:
      r.value = ~old & width_mask(w);
      break;
    case MemOp::kNeg:
      r = alu_neg(w, old, s.rflags);
      break;
    case MemOp::kShift:
      r = alu_shift(static_cast<ShiftOp>(d.sub), w, old, static_cast<uint8_t>(src), s.rflags);
      break;
    case MemOp::kBitTest:
      // A register bit offset selected the operand the CPU accessed (the
      // GPA reported); within it, the offset modulo the width.
      r = alu_bit(d.sub, w, old, src, s.rflags);
      break;
    case MemOp::kXchg:
      r.value = src;
      write_reg(s, d.reg, d.high_byte, w, old);
      break;
    case MemOp::kXadd:
      r = alu_binary(AluOp::kAdd, w, old, src, s.rflags);
      write_reg(s, d.reg, d.high_byte, w, old);
      break;
    case MemOp::kCmpxchg: {
      // Compare the accumulator with the destination; equal: the source is
      // stored; not equal: the accumulator gets the destination, which is
      // written back unchanged (SDM Vol. 2A CMPXCHG).
      const uint64_t acc = s.gpr[0] & width_mask(w);
      const AluResult cmp = alu_compare(w, acc, old, s.rflags);
      r.rflags = cmp.rflags;
      if (acc == old) {
        r.value = src;
      } else {
        r.value = old;
        write_reg(s, 0, false, w, old);
      }
      break;
    }
    default:
      return MemWriteResult::kFailed;
  }
  s.rflags = r.rflags;
  ports.store(w, r.value);
  return MemWriteResult::kDone;
}

}  // namespace microhv::vmx
