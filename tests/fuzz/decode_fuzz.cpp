// libFuzzer target for the store decoder the xAPIC-page exit handler uses
// (vmx/decode.hpp). Two kinds of input:
//  - structured: the fuzzer's own encoder builds one instruction from the
//    SDM's encoding rules (Vol. 2, chapter 2: legacy prefixes, REX, opcode,
//    ModRM, SIB, displacement, immediate) and knows its length, width,
//    source register or immediate and the value written; the decoder must
//    agree exactly, including refusing what is not one of its forms and any
//    instruction cut short;
//  - raw bytes: whatever the decoder accepts must be consistent (length
//    within the bytes and 15, a width of 1, 2, 4, 8, 16 or 32, the same
//    answer with exactly `length` bytes available and a refusal with one
//    fewer).
// The decoder knows many more forms than the encoder builds (the
// read-modify-write, string and vector stores); an opcode outside the
// encoder's MOV/XCHG set is therefore only checked for consistency.
#include "tests/fuzz/fuzz_input.hpp"
#include "vmx/decode.hpp"

using namespace microhv::fuzz;
using microhv::vmx::CodeSize;
using microhv::vmx::decode_mem_write;
using microhv::vmx::MemOp;
using microhv::vmx::MemWrite;
using microhv::vmx::SrcKind;

namespace {

struct Encoded {
  uint8_t bytes[32];
  uint32_t length = 0;
  void put(uint8_t b) { bytes[length++] = b; }
  void put_le(uint64_t v, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) put(static_cast<uint8_t>(v >> (8 * i)));
  }
};

struct Expect {
  bool known = true;  // a form the encoder models (MOV and XCHG)
  bool ok = false;
  bool xchg = false;
  uint8_t width = 0;
  bool immediate = false;
  uint64_t imm = 0;
  uint8_t reg = 0;
  bool high_byte = false;
};

// Builds one instruction; returns what a correct decoder reports for it.
Expect encode(Reader& in, CodeSize mode, Encoded* e) {
  Expect x;
  // Legacy prefixes, any order: 66 and 67 change sizes, the rest nothing.
  constexpr uint8_t kPrefixes[] = {0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x2E,
                                   0x36, 0x3E, 0x26, 0x64, 0x65};
  bool opsize = false, addrsize = false;
  const uint32_t n_prefixes = in.pick(5);
  for (uint32_t i = 0; i < n_prefixes; ++i) {
    const uint8_t p = kPrefixes[in.pick(sizeof(kPrefixes))];
    opsize |= p == 0x66;
    addrsize |= p == 0x67;
    e->put(p);
  }
  uint8_t rex = 0;
  if (mode == CodeSize::k64 && in.flag()) {
    rex = static_cast<uint8_t>(0x40 | in.pick(16));
    e->put(rex);
  }
  constexpr uint8_t kStores[] = {0x88, 0x89, 0x86, 0x87, 0xC6, 0xC7, 0xA2, 0xA3};
  uint8_t op = in.pick(8) == 0 ? in.take<uint8_t>() : kStores[in.pick(8)];
  // A random opcode byte that is really a prefix would make the rest of the
  // instruction something else: use NOP (90) for those.
  for (uint8_t p : kPrefixes) op = op == p ? 0x90 : op;
  if (mode == CodeSize::k64 && (op & 0xF0) == 0x40) op = 0x90;
  e->put(op);
  const bool byte_op = op == 0x88 || op == 0x86 || op == 0xC6 || op == 0xA2;
  const bool known = byte_op || op == 0x89 || op == 0x87 || op == 0xC7 || op == 0xA3;
  x.known = known;
  x.xchg = op == 0x86 || op == 0x87;
  // Operand size (SDM Vol. 1 3.6, Vol. 2 2.2.1.2): REX.W, else the mode's
  // default toggled by 66.
  const bool rex_w = (rex & 8) != 0;
  x.width = byte_op ? 1 : rex_w ? 8 : ((mode == CodeSize::k16) != opsize ? 2 : 4);
  const unsigned addr_bits = mode == CodeSize::k64   ? (addrsize ? 32 : 64)
                             : mode == CodeSize::k32 ? (addrsize ? 16 : 32)
                                                     : (addrsize ? 32 : 16);
  if (op == 0xA2 || op == 0xA3) {  // MOV moffs, AL/eAX: the offset has the address size
    e->put_le(in.take<uint64_t>(), addr_bits / 8);
    x.ok = true;
    return x;
  }
  if (!known) {
    e->put_le(in.take<uint64_t>(), 8);  // whatever follows
    return x;
  }
  const uint8_t mod = static_cast<uint8_t>(in.pick(8) == 0 ? 3 : in.pick(3));
  const uint8_t reg =
      static_cast<uint8_t>((op == 0xC6 || op == 0xC7) && in.pick(8) != 0 ? 0 : in.pick(8));
  const uint8_t rm = static_cast<uint8_t>(in.pick(8));
  e->put(static_cast<uint8_t>(mod << 6 | reg << 3 | rm));
  uint32_t disp = 0;
  if (addr_bits == 16) {
    disp = mod == 1 ? 1 : mod == 2 ? 2 : (mod == 0 && rm == 6) ? 2 : 0;
  } else {
    if (rm == 4 && mod != 3) {
      const uint8_t sib = in.take<uint8_t>();
      e->put(sib);
      if (mod == 0 && (sib & 7) == 5) disp = 4;
    }
    if (mod == 0 && rm == 5) disp = 4;
    if (mod == 1) disp = 1;
    if (mod == 2) disp = 4;
  }
  e->put_le(in.take<uint32_t>(), disp);
  if (mod == 3) return x;                                // a register destination: no store
  if ((op == 0xC6 || op == 0xC7) && reg != 0) return x;  // not MOV /0
  if (op == 0xC6 || op == 0xC7) {
    const uint32_t imm_bytes = x.width == 1 ? 1 : x.width == 2 ? 2 : 4;  // imm32 for 64-bit
    const uint64_t raw =
        in.take<uint64_t>() & (imm_bytes == 4 ? 0xFFFFFFFFull : (1ull << (8 * imm_bytes)) - 1);
    e->put_le(raw, imm_bytes);
    x.immediate = true;
    x.imm = x.width == 8 && (raw & 0x80000000ull) != 0 ? raw | 0xFFFFFFFF00000000ull : raw;
  } else {
    // Without REX, byte registers 4..7 are AH, CH, DH, BH (SDM Vol. 2 3.1.1.1).
    x.high_byte = x.width == 1 && rex == 0 && reg >= 4;
    x.reg = static_cast<uint8_t>(x.high_byte ? reg - 4 : reg | ((rex & 4) != 0 ? 8 : 0));
  }
  x.ok = e->length <= 15;
  return x;
}

void check_raw(const uint8_t* bytes, uint32_t n, CodeSize mode) {
  const MemWrite d = decode_mem_write(bytes, n, mode);
  if (!d.ok) return;
  expect(d.length >= 1 && d.length <= n && d.length <= 15, "decoded length outside the bytes");
  expect(d.width == 1 || d.width == 2 || d.width == 4 || d.width == 8 || d.width == 16 ||
             d.width == 32,
         "impossible store width");
  expect(d.reg < 16, "source register out of range");
  const MemWrite exact = decode_mem_write(bytes, d.length, mode);
  expect(exact.ok && exact.length == d.length && exact.width == d.width && exact.reg == d.reg &&
             exact.imm == d.imm && exact.op == d.op,
         "the decode depends on bytes after the instruction");
  expect(!decode_mem_write(bytes, d.length - 1u, mode).ok, "an instruction cut short was accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  const CodeSize mode = static_cast<CodeSize>(in.pick(3));
  if (in.flag()) {
    check_raw(in.data, static_cast<uint32_t>(in.size < 32 ? in.size : 32), mode);
    return 0;
  }
  Encoded e;
  const Expect x = encode(in, mode, &e);
  // Available bytes: all of them, or the instruction cut short.
  const uint32_t cut = in.pick(4) == 0 ? in.pick(e.length + 1) : e.length;
  const MemWrite d = decode_mem_write(e.bytes, cut, mode);
  if (!x.known) {
    check_raw(e.bytes, cut, mode);
    return 0;
  }
  const bool want = x.ok && cut == e.length;
  expect(d.ok == want, want ? "a valid store was refused" : "an invalid or cut store was accepted");
  if (!want) return 0;
  expect(d.length == e.length, "wrong instruction length");
  expect(d.width == x.width, "wrong store width");
  expect(d.op == (x.xchg ? MemOp::kXchg : MemOp::kMov), "wrong operation");
  if (x.immediate) {
    expect(d.src == SrcKind::kImm && d.imm == x.imm, "wrong immediate");
  } else {
    expect(d.src == SrcKind::kReg, "immediate and register forms confused");
    expect(d.reg == x.reg && d.high_byte == x.high_byte, "wrong source register");
  }
  check_raw(e.bytes, e.length, mode);
  return 0;
}
