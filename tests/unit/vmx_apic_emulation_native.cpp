// The APIC-page write emulation (vmx/decode + vmx/mem_write + vmx/alu)
// against the host CPU: the same instruction bytes run natively on a
// buffer and through microhv's decoder and executor on a copy of it; the
// memory written, every general-purpose register and the status flags the
// SDM defines for the instruction must match. (The flags the SDM leaves
// undefined are masked.) The tests run on x86-64 hosts only.
#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "arch/x86.hpp"
#include "vmx/alu.hpp"
#include "vmx/decode.hpp"
#include "vmx/mem_write.hpp"

using namespace microhv;
using namespace microhv::vmx;

namespace {

struct NativeState {
  uint64_t gpr[16];  // x86 order; gpr[4] (RSP) is not loaded
  uint64_t rflags;
  uint32_t xmm[16][4];
};
static_assert(offsetof(NativeState, rflags) == 128);
static_assert(offsetof(NativeState, xmm) == 136);

}  // namespace

// Loads the registers, RFLAGS and XMM0-15 from *state (rdi), calls the code
// at rsi (the instruction and a RET), stores the registers and RFLAGS back.
extern "C" void microhv_test_native_exec(NativeState* state, const void* code);
asm(R"(
  .text
  .globl microhv_test_native_exec
  .type microhv_test_native_exec, @function
microhv_test_native_exec:
  push %rbp
  push %rbx
  push %r12
  push %r13
  push %r14
  push %r15
  push %rdi
  push %rsi
  movdqu 136(%rdi), %xmm0
  movdqu 152(%rdi), %xmm1
  movdqu 168(%rdi), %xmm2
  movdqu 184(%rdi), %xmm3
  movdqu 200(%rdi), %xmm4
  movdqu 216(%rdi), %xmm5
  movdqu 232(%rdi), %xmm6
  movdqu 248(%rdi), %xmm7
  movdqu 264(%rdi), %xmm8
  movdqu 280(%rdi), %xmm9
  movdqu 296(%rdi), %xmm10
  movdqu 312(%rdi), %xmm11
  movdqu 328(%rdi), %xmm12
  movdqu 344(%rdi), %xmm13
  movdqu 360(%rdi), %xmm14
  movdqu 376(%rdi), %xmm15
  pushq 128(%rdi)
  popfq
  mov 8(%rdi), %rcx
  mov 16(%rdi), %rdx
  mov 24(%rdi), %rbx
  mov 40(%rdi), %rbp
  mov 48(%rdi), %rsi
  mov 64(%rdi), %r8
  mov 72(%rdi), %r9
  mov 80(%rdi), %r10
  mov 88(%rdi), %r11
  mov 96(%rdi), %r12
  mov 104(%rdi), %r13
  mov 112(%rdi), %r14
  mov 120(%rdi), %r15
  mov 0(%rdi), %rax
  mov 56(%rdi), %rdi
  call *(%rsp)
  pushfq
  cld
  push %rdi
  mov 24(%rsp), %rdi
  mov %rax, 0(%rdi)
  mov %rcx, 8(%rdi)
  mov %rdx, 16(%rdi)
  mov %rbx, 24(%rdi)
  mov %rbp, 40(%rdi)
  mov %rsi, 48(%rdi)
  mov %r8, 64(%rdi)
  mov %r9, 72(%rdi)
  mov %r10, 80(%rdi)
  mov %r11, 88(%rdi)
  mov %r12, 96(%rdi)
  mov %r13, 104(%rdi)
  mov %r14, 112(%rdi)
  mov %r15, 120(%rdi)
  pop %rax
  mov %rax, 56(%rdi)
  pop %rax
  mov %rax, 128(%rdi)
  add $16, %rsp
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbx
  pop %rbp
  ret
  .size microhv_test_native_exec, .-microhv_test_native_exec
)");

namespace {

namespace fl = arch::rflags;

// Executable page for the instruction under test.
struct CodePage {
  uint8_t* p = static_cast<uint8_t*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ~CodePage() { munmap(p, 4096); }
  void load(const std::vector<uint8_t>& bytes) {
    std::memcpy(p, bytes.data(), bytes.size());
    p[bytes.size()] = 0xC3;  // ret
  }
};

// The emulator's view: destination and string source are host memory here.
class BufferPorts final : public MemWritePorts {
 public:
  BufferPorts(uint8_t* dest, const NativeState& s) : dest_(dest), s_(s) {}
  bool load(unsigned width, uint64_t* v) override {
    *v = 0;
    std::memcpy(v, dest_, width > 8 ? 8 : width);
    return true;
  }
  void store(unsigned width, uint64_t v) override {
    std::memcpy(dest_, &v, width > 8 ? 8 : width);
    ++stores;
  }
  bool load_source(int8_t, uint64_t offset, unsigned width, uint64_t* v) override {
    *v = 0;
    std::memcpy(v, reinterpret_cast<const void*>(offset), width);
    return true;
  }
  bool read_xmm(unsigned reg, unsigned lane, uint32_t* v) override {
    *v = s_.xmm[reg][lane];
    return true;
  }
  int stores = 0;

 private:
  uint8_t* dest_;
  const NativeState& s_;
};

// The status flags the SDM defines after `d` (count: the shift count).
uint64_t defined_flags(const MemWrite& d, uint64_t count) {
  const uint64_t all = fl::kArith;
  switch (d.op) {
    case MemOp::kAlu:
      if (d.sub == static_cast<uint8_t>(AluOp::kAnd) || d.sub == static_cast<uint8_t>(AluOp::kOr) ||
          d.sub == static_cast<uint8_t>(AluOp::kXor)) {
        return all & ~fl::kAf;
      }
      return all;
    case MemOp::kShift: {
      const unsigned masked = count & (d.width == 8 ? 0x3F : 0x1F);
      if (masked == 0) return all;  // unaffected
      const auto op = static_cast<ShiftOp>(d.sub);
      const bool rotate =
          op == ShiftOp::kRol || op == ShiftOp::kRor || op == ShiftOp::kRcl || op == ShiftOp::kRcr;
      uint64_t f = fl::kCf;
      if (masked == 1) f |= fl::kOf;
      if (rotate) return f | fl::kZf | fl::kSf | fl::kPf | fl::kAf;  // those unaffected
      if ((op == ShiftOp::kShl || op == ShiftOp::kSal || op == ShiftOp::kShr) &&
          masked >= 8u * d.width) {
        f &= ~fl::kCf;
      }
      return f | fl::kZf | fl::kSf | fl::kPf;
    }
    case MemOp::kBitTest:
      return fl::kCf | fl::kZf;
    default:
      return all;
  }
}

struct Case {
  std::vector<uint8_t> bytes;
  const char* what;
};

// Runs `c` natively and emulated from the same state; the destination is at
// `dest` in both (the emulated one in a copy), as the EPT violation reports.
void compare(const Case& c, NativeState init, uint64_t dest_init, int dest_reg = 3) {
  CodePage code;
  REQUIRE(code.p != MAP_FAILED);
  code.load(c.bytes);
  alignas(16) uint8_t native_mem[64], emu_mem[64], source[64];
  std::memset(native_mem, 0xA5, sizeof(native_mem));
  std::memcpy(native_mem + 16, &dest_init, 8);
  std::memcpy(emu_mem, native_mem, sizeof(emu_mem));
  for (unsigned i = 0; i < sizeof(source); ++i) source[i] = static_cast<uint8_t>(0x31 * i + 7);
  init.gpr[dest_reg] = reinterpret_cast<uint64_t>(native_mem + 16);
  init.gpr[6] = reinterpret_cast<uint64_t>(source + 16);  // RSI: MOVS source
  init.rflags |= fl::kFixed1 | fl::kIf;

  NativeState native = init;
  microhv_test_native_exec(&native, code.p);

  const MemWrite d =
      decode_mem_write(c.bytes.data(), static_cast<uint32_t>(c.bytes.size()), CodeSize::k64);
  INFO(c.what << " dest 0x" << std::hex << dest_init << " rcx 0x" << init.gpr[1] << " rax 0x"
              << init.gpr[0] << " rflags 0x" << init.rflags);
  REQUIRE(d.ok);
  CHECK(d.length == c.bytes.size());
  const bool string = d.op == MemOp::kStos || d.op == MemOp::kMovs;
  MemWriteState s{};
  for (unsigned r = 0; r < 16; ++r) s.gpr[r] = init.gpr[r];
  s.rflags = init.rflags;
  // The emulator never dereferences the destination register: the ports
  // stand for the page (strings: RDI keeps the native address and says
  // where in the copy each element goes).
  // BT with a register offset addresses the operand containing the bit.
  int64_t dest_offset = 16;
  if (d.op == MemOp::kBitTest && d.src == SrcKind::kReg) {
    const int64_t bit = static_cast<int64_t>(init.gpr[d.reg]);
    dest_offset += (bit >> (d.width == 2 ? 4 : d.width == 8 ? 6 : 5)) * d.width;
  }
  for (int i = 0; i < 64; ++i) {  // one REP element per call, as per exit
    uint8_t* at = string ? emu_mem + (s.gpr[7] - reinterpret_cast<uint64_t>(native_mem))
                         : emu_mem + dest_offset;
    BufferPorts ports(at, native);
    const MemWriteResult r = execute_mem_write(d, s, ports);
    REQUIRE(r != MemWriteResult::kFailed);
    if (r == MemWriteResult::kDone) break;
  }
  CHECK(std::memcmp(native_mem, emu_mem, sizeof(native_mem)) == 0);
  for (unsigned r = 0; r < 16; ++r) {
    if (r == 4 || (!string && r == static_cast<unsigned>(dest_reg))) continue;
    INFO("register " << std::dec << r << ": emulated 0x" << std::hex << s.gpr[r] << ", native 0x"
                     << native.gpr[r]);
    CHECK(s.gpr[r] == native.gpr[r]);
  }
  const uint64_t count = d.src == SrcKind::kCl    ? init.gpr[1] & 0xFF
                         : d.src == SrcKind::kOne ? 1
                                                  : d.imm;
  const uint64_t mask = defined_flags(d, count) | fl::kDf;
  CHECK((s.rflags & mask) == (native.rflags & mask));
}

constexpr uint64_t kDestValues[] = {
    0,          1,          0x7F,       0x80,       0x7FFFFFFF,
    0x80000000, 0xFFFFFFFF, 0x12345678, 0x0F0F0F0F, 0xFFFFFFFF80000001ull};
constexpr uint64_t kRegValues[] = {0, 1, 0x10, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0xFEDCBA98};
constexpr uint64_t kFlags[] = {0, fl::kArith};

NativeState state_with(uint64_t rax, uint64_t rcx, uint64_t flags) {
  NativeState s{};
  for (unsigned r = 0; r < 16; ++r) s.gpr[r] = 0x1111111111111111ull * r + 0x0102030405060708ull;
  s.gpr[0] = rax;
  s.gpr[1] = rcx;
  s.rflags = flags;
  for (unsigned r = 0; r < 16; ++r) {
    for (unsigned l = 0; l < 4; ++l) s.xmm[r][l] = 0x9E3779B9u * (4 * r + l + 1);
  }
  return s;
}

void sweep(const Case& c) {
  for (uint64_t dest : kDestValues) {
    for (uint64_t rcx : kRegValues) {
      for (uint64_t flags : kFlags) compare(c, state_with(0xFEDCBA9876543210ull, rcx, flags), dest);
    }
  }
}

}  // namespace

TEST_CASE("apic emulation vs native: MOV, MOVNTI, MOVBE, XCHG, SETcc") {
  sweep({{0x89, 0x0B}, "mov [rbx], ecx"});
  sweep({{0xC7, 0x03, 0x78, 0x56, 0x34, 0x12}, "mov dword [rbx], 0x12345678"});
  sweep({{0x88, 0x2B}, "mov [rbx], ch"});
  sweep({{0x66, 0x89, 0x0B}, "mov [rbx], cx"});
  sweep({{0x48, 0x89, 0x0B}, "mov [rbx], rcx"});
  sweep({{0x0F, 0xC3, 0x0B}, "movnti [rbx], ecx"});
  sweep({{0x0F, 0x38, 0xF1, 0x0B}, "movbe [rbx], ecx"});
  sweep({{0x87, 0x0B}, "xchg [rbx], ecx"});
  sweep({{0x86, 0x2B}, "xchg [rbx], ch"});
  sweep({{0x0F, 0x94, 0x03}, "sete [rbx]"});
  sweep({{0x0F, 0x9C, 0x03}, "setl [rbx]"});
  sweep({{0x0F, 0x97, 0x03}, "seta [rbx]"});
}

TEST_CASE("apic emulation vs native: ALU read-modify-write with reg, imm8 and imm32") {
  const uint8_t ops[] = {0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31};  // ADD OR ADC SBB AND SUB XOR
  for (uint8_t op : ops) {
    sweep({{op, 0x0B}, "alu [rbx], ecx"});
    sweep({{static_cast<uint8_t>(op - 1), 0x0B}, "alu [rbx], cl"});
    sweep({{0x66, op, 0x0B}, "alu [rbx], cx"});
    sweep({{0x48, op, 0x0B}, "alu [rbx], rcx"});
    sweep({{0xF0, op, 0x0B}, "lock alu [rbx], ecx"});
  }
  for (uint8_t r = 0; r < 7; ++r) {
    const uint8_t modrm = static_cast<uint8_t>(0x03 | (r << 3));
    sweep({{0x83, modrm, 0x00}, "alu dword [rbx], 0 (imm8)"});
    sweep({{0x83, modrm, 0xFF}, "alu dword [rbx], -1 (imm8)"});
    sweep({{0x83, modrm, 0x7F}, "alu dword [rbx], 0x7f (imm8)"});
    sweep({{0x81, modrm, 0x00, 0x01, 0x00, 0x80}, "alu dword [rbx], 0x80000100 (imm32)"});
    sweep({{0x80, modrm, 0x81}, "alu byte [rbx], 0x81"});
    sweep({{0x48, 0x81, modrm, 0x00, 0x00, 0x00, 0x80}, "alu qword [rbx], imm32 sign-extended"});
  }
}

TEST_CASE("apic emulation vs native: INC, DEC, NOT, NEG, shifts and rotates") {
  sweep({{0xFF, 0x03}, "inc dword [rbx]"});
  sweep({{0xFF, 0x0B}, "dec dword [rbx]"});
  sweep({{0xFE, 0x03}, "inc byte [rbx]"});
  sweep({{0xF7, 0x13}, "not dword [rbx]"});
  sweep({{0xF7, 0x1B}, "neg dword [rbx]"});
  sweep({{0x66, 0xF7, 0x1B}, "neg word [rbx]"});
  for (uint8_t r = 0; r < 8; ++r) {
    const uint8_t modrm = static_cast<uint8_t>(0x03 | (r << 3));
    sweep({{0xD1, modrm}, "shift dword [rbx], 1"});
    sweep({{0xD3, modrm}, "shift dword [rbx], cl"});
    sweep({{0xD2, modrm}, "shift byte [rbx], cl"});
    sweep({{0x66, 0xD3, modrm}, "shift word [rbx], cl"});
    sweep({{0x48, 0xD3, modrm}, "shift qword [rbx], cl"});
    for (uint8_t n : {0, 1, 4, 8, 9, 17, 31, 33}) {
      sweep({{0xC1, modrm, n}, "shift dword [rbx], imm8"});
    }
  }
}

TEST_CASE("apic emulation vs native: BTS/BTR/BTC, XADD, CMPXCHG") {
  for (uint8_t r : {5, 6, 7}) {
    for (uint8_t bit : {0, 8, 31, 40}) {
      sweep({{0x0F, 0xBA, static_cast<uint8_t>(0x03 | (r << 3)), bit}, "bt* dword [rbx], imm8"});
    }
  }
  for (uint8_t op : {0xAB, 0xB3, 0xBB}) {
    for (uint64_t bit : {0ull, 8ull, 31ull, 35ull, 0xFFFFFFFFFFFFFFFFull}) {
      for (uint64_t dest : kDestValues) {
        compare({{0x0F, op, 0x0B}, "bt* [rbx], rcx-offset"}, state_with(0, bit, 0), dest);
        compare({{0x48, 0x0F, op, 0x0B}, "bt* qword [rbx], rcx-offset"}, state_with(0, bit, 0),
                dest);
      }
    }
  }
  sweep({{0xF0, 0x0F, 0xC1, 0x0B}, "lock xadd [rbx], ecx"});
  sweep({{0x0F, 0xC0, 0x2B}, "xadd [rbx], ch"});
  for (uint64_t dest : kDestValues) {
    for (uint64_t rax :
         {dest, uint64_t{dest + 1}, uint64_t{0}}) {  // equal (stores) and not (loads EAX)
      compare({{0xF0, 0x0F, 0xB1, 0x0B}, "lock cmpxchg [rbx], ecx"},
              state_with(0xAAAAAAAA00000000ull | (rax & 0xFFFFFFFF), 0x5555, 0), dest);
      compare({{0x48, 0x0F, 0xB1, 0x0B}, "cmpxchg [rbx], rcx"}, state_with(rax, 0x5555, 0), dest);
    }
  }
}

TEST_CASE("apic emulation vs native: STOSD and MOVSD, with and without REP, both directions") {
  for (uint64_t count : {1ull, 2ull, 3ull}) {
    for (uint64_t flags : {uint64_t{0}, uint64_t{fl::kDf}}) {
      NativeState s = state_with(0x11223344, count, flags);
      compare({{0xAB}, "stosd"}, s, 0, 7);
      compare({{0xF3, 0xAB}, "rep stosd"}, s, 0, 7);
      compare({{0xA5}, "movsd"}, s, 0, 7);
      compare({{0xF3, 0xA5}, "rep movsd"}, s, 0, 7);
      compare({{0xF3, 0x66, 0xA5}, "rep movsw"}, s, 0, 7);
    }
  }
}

TEST_CASE("apic emulation vs native: SSE and AVX stores of an XMM dword") {
  sweep({{0x66, 0x0F, 0x7E, 0x0B}, "movd [rbx], xmm1"});
  sweep({{0x66, 0x44, 0x0F, 0x7E, 0x03}, "movd [rbx], xmm8"});
  sweep({{0xF3, 0x0F, 0x11, 0x13}, "movss [rbx], xmm2"});
  if (__builtin_cpu_supports("sse4.1")) {
    sweep({{0x66, 0x0F, 0x3A, 0x16, 0x1B, 0x02}, "pextrd [rbx], xmm3, 2"});
    sweep({{0x66, 0x0F, 0x3A, 0x17, 0x23, 0x03}, "extractps [rbx], xmm4, 3"});
  }
  if (__builtin_cpu_supports("avx")) {
    sweep({{0xC5, 0xF9, 0x7E, 0x2B}, "vmovd [rbx], xmm5"});
    sweep({{0xC4, 0x61, 0x7A, 0x11, 0x2B}, "vmovss [rbx], xmm13"});
  }
}
