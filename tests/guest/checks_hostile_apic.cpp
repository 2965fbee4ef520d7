// Group "hostile", APIC part (issue 9, items 2, 3 and 6): IA32_APIC_BASE
// transitions and relocation, the read-modify-write forms on the xAPIC page
// (each run on the APIC's TPR and on an ordinary RAM dword holding the same
// value: the register results and the flags must be the native ones), and
// the switch to x2APIC mode -- last, because the way back to xAPIC mode
// passes through "disabled", which Bochs 2.7 never leaves (it ignores
// IA32_APIC_BASE writes while the APIC is disabled), so the suite ends in
// x2APIC mode.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr uint64_t kEn = 1u << 11, kExtd = 1u << 10, kBsp = 1u << 8;
constexpr uint32_t kTpr = 0x80, kSvr = 0xF0, kId = 0x20;
constexpr uint64_t kStatusFlags = 0x8D5;  // CF PF AF ZF SF OF

volatile uint32_t* apic_reg(uint64_t base, uint32_t offset) {
  return reinterpret_cast<volatile uint32_t*>(base + offset);
}

// ---- the read-modify-write forms

struct Rmw {
  uint32_t mem;    // the destination afterwards
  uint64_t flags;  // RFLAGS afterwards
  uint64_t rcx;    // the register operand afterwards
  uint64_t rax;
};

// One instruction with its memory operand at [rbx], register operand in
// RCX, accumulator RAX, flags in, all results out.
#define MICROHV_RMW(fn, insn)                                                   \
  Rmw fn(volatile uint32_t* p, uint64_t rcx, uint64_t rax, uint64_t flags_in) { \
    uint64_t flags;                                                             \
    asm volatile("push %[fin]\n\tpopfq\n\t" insn "\n\tpushfq\n\tpop %[f]"       \
                 : [f] "=&r"(flags), "+c"(rcx), "+a"(rax)                       \
                 : "b"(p), [fin] "r"(flags_in)                                  \
                 : "memory", "cc");                                             \
    return Rmw{*p, flags, rcx, rax};                                            \
  }

MICROHV_RMW(or_imm8, "orl $0, (%%rbx)")
MICROHV_RMW(or_imm8_lock_ds, "lock orl $0x10, %%ds:(%%rbx)")
MICROHV_RMW(and_imm32, "andl $0xFFFFFF0F, (%%rbx)")
MICROHV_RMW(xor_reg, "xorl %%ecx, (%%rbx)")
MICROHV_RMW(add_imm8, "addl $0x20, (%%rbx)")
MICROHV_RMW(sub_reg, "subl %%ecx, (%%rbx)")
MICROHV_RMW(adc_imm8, "adcl $0x7F, (%%rbx)")
MICROHV_RMW(sbb_reg_addr32, "addr32 sbbl %%ecx, (%%ebx)")
MICROHV_RMW(inc_mem, "incl (%%rbx)")
MICROHV_RMW(dec_mem, "decl (%%rbx)")
MICROHV_RMW(not_mem, "notl (%%rbx)")
MICROHV_RMW(neg_mem, "negl (%%rbx)")
MICROHV_RMW(bts_imm, "lock btsl $5, (%%rbx)")
MICROHV_RMW(btr_reg, "btrl %%ecx, (%%rbx)")
MICROHV_RMW(btc_imm, "btcl $4, (%%rbx)")
MICROHV_RMW(shl_imm, "shll $2, (%%rbx)")
MICROHV_RMW(ror_one, "rorl $1, (%%rbx)")
MICROHV_RMW(xadd_reg, "lock xaddl %%ecx, (%%rbx)")
MICROHV_RMW(cmpxchg_reg, "lock cmpxchgl %%ecx, (%%rbx)")
MICROHV_RMW(xchg_reg, "xchgl %%ecx, (%%rbx)")
MICROHV_RMW(movnti_reg, "movnti %%ecx, (%%rbx)")
MICROHV_RMW(stosd_one, "xchg %%rbx, %%rdi\n\tstosl\n\txchg %%rbx, %%rdi")
MICROHV_RMW(movd_xmm,
            "sub $16, %%rsp\n\tmovdqu %%xmm0, (%%rsp)\n\tmovd %%ecx, %%xmm0\n\tmovd %%xmm0, "
            "(%%rbx)\n\tmovdqu (%%rsp), %%xmm0\n\tadd $16, %%rsp")
MICROHV_RMW(byte_store, "movb $0x40, (%%rbx)")  // not a 32-bit store: dropped on the APIC

struct Form {
  const char* name;
  Rmw (*run)(volatile uint32_t*, uint64_t, uint64_t, uint64_t);
  uint64_t rcx, rax, flags;  // inputs
  uint64_t defined;          // the status flags the SDM defines after it
  bool reaches_apic;         // an aligned 32-bit store
};

constexpr uint64_t kCf = 1, kAf = 0x10, kOf = 0x800;
const Form kForms[] = {
    {"or-imm8", or_imm8, 0, 0, kCf | 0x44, kStatusFlags & ~kAf, true},
    {"lock-or-ds-prefix", or_imm8_lock_ds, 0, 0, 0, kStatusFlags & ~kAf, true},
    {"and-imm32", and_imm32, 0, 0, 0, kStatusFlags & ~kAf, true},
    {"xor-reg", xor_reg, 0x33, 0, 0, kStatusFlags & ~kAf, true},
    {"add-imm8", add_imm8, 0, 0, 0, kStatusFlags, true},
    {"sub-reg-negative", sub_reg, 0x50, 0, 0, kStatusFlags, true},
    {"adc-imm8-carry", adc_imm8, 0, 0, kCf, kStatusFlags, true},
    {"sbb-reg-addr32-prefix", sbb_reg_addr32, 0x1, 0, kCf, kStatusFlags, true},
    {"inc", inc_mem, 0, 0, kCf, kStatusFlags, true},
    {"dec", dec_mem, 0, 0, 0, kStatusFlags, true},
    {"not", not_mem, 0, 0, kStatusFlags, kStatusFlags, true},
    {"neg", neg_mem, 0, 0, 0, kStatusFlags, true},
    {"lock-bts-imm", bts_imm, 0, 0, 0, kCf, true},
    {"btr-reg", btr_reg, 4, 0, 0, kCf, true},
    {"btc-imm", btc_imm, 0, 0, kCf, kCf, true},
    {"shl-imm", shl_imm, 0, 0, 0, kStatusFlags & ~(kAf | kOf), true},
    {"ror-1", ror_one, 0, 0, 0, kCf | kOf, true},
    {"lock-xadd", xadd_reg, 0x11, 0, 0, kStatusFlags, true},
    {"cmpxchg-equal", cmpxchg_reg, 0x22, 0x30, 0, kStatusFlags, true},
    {"cmpxchg-not-equal", cmpxchg_reg, 0x22, 0x99, 0, kStatusFlags, true},
    {"xchg", xchg_reg, 0x44, 0, 0, kStatusFlags, true},
    {"movnti", movnti_reg, 0x55, 0, 0, kStatusFlags, true},
    {"stosd", stosd_one, 0, 0x66, 0, kStatusFlags, true},
    {"sse-movd", movd_xmm, 0x77, 0, 0, kStatusFlags, true},
    {"byte-store-dropped", byte_store, 0, 0, 0, kStatusFlags, false},
};

void check_rmw_forms(uint64_t base) {
  volatile uint32_t* tpr = apic_reg(base, kTpr);
  const uint32_t tpr0 = *tpr;
  for (const Form& f : kForms) {
    char name[80];
    microhv::format(name, sizeof(name), "hostile-apic-page-%s", f.name);
    const uint32_t start = 0x30;  // the TPR's bits 7:0 are writable
    *tpr = start;
    volatile uint32_t ram = start;
    Fault fault{};
    struct Ctx {
      const Form* f;
      volatile uint32_t* p;
      Rmw out;
    } apic_ctx{&f, tpr, {}}, ram_ctx{&f, &ram, {}};
    auto go = [](void* c) {
      auto* x = static_cast<Ctx*>(c);
      x->out = x->f->run(x->p, x->f->rcx, x->f->rax, 0x2 | x->f->flags);  // IF stays 0
    };
    run_guarded(go, &apic_ctx, &fault);
    go(&ram_ctx);
    const Rmw& a = apic_ctx.out;
    const Rmw& n = ram_ctx.out;
    const uint32_t expect_tpr = f.reaches_apic ? (n.mem & 0xFF) : start;
    check(name,
          !fault.faulted && (a.mem & 0xFF) == expect_tpr &&
              ((a.flags ^ n.flags) & f.defined) == 0 && a.rcx == n.rcx && a.rax == n.rax,
          "on the TPR: %s, TPR 0x%x (0x%x expected), RFLAGS 0x%lx (native 0x%lx, compared 0x%lx), "
          "RCX 0x%lx (0x%lx), RAX 0x%lx (0x%lx)",
          fault_text(fault), a.mem, expect_tpr, a.flags, n.flags, f.defined, a.rcx, n.rcx, a.rax,
          n.rax);
  }
  *tpr = tpr0;
}

// ---- IA32_APIC_BASE

bool self_ipi_delivered() {
  const uint32_t c0 = irq_count(kVecSelfIpi);
  set_non_auto_eoi(kVecSelfIpi, true);
  return send_self_ipi(kVecSelfIpi) && wait_irq(kVecSelfIpi, c0 + 1, kSpinExpect) == c0 + 1;
}

void check_relocation(uint64_t value) {
  const uint64_t page = value & ~0xFFFull;
  const Fault moved = wrmsr(0x1B, (value & 0xFFF) | 0xFED00000);
  const Fault onto_ram = wrmsr(0x1B, (value & 0xFFF) | 0x100000);
  const uint64_t after = rdmsr(0x1B).value;
  check_hv("hostile-apic-relocation-gp",
           moved.faulted && moved.vector == kGp && onto_ram.faulted && onto_ram.vector == kGp &&
               after == value,
           "IA32_APIC_BASE 0x%lx: moving to 0xFED00000 %s, to 0x100000 %s (#GP expected); reads "
           "0x%lx after",
           value, fault_text(moved), fault_text(onto_ram), after);
  const Fault bsp = wrmsr(0x1B, value & ~kBsp);
  const uint64_t bsp_after = rdmsr(0x1B).value;
  check_hv("hostile-apic-bsp-bit-read-only", !bsp.faulted && bsp_after == value,
           "WRMSR APIC_BASE without BSP: %s, reads 0x%lx (0x%lx expected)", fault_text(bsp),
           bsp_after, value);
  const Fault invalid = wrmsr(0x1B, page | (value & kBsp) | kExtd);  // EN = 0, EXTD = 1
  check_hv("hostile-apic-invalid-state-gp", invalid.faulted && invalid.vector == kGp,
           "EN = 0 with EXTD = 1: %s (#GP expected, SDM 11.12.5)", fault_text(invalid));
}

// xAPIC -> disabled -> xAPIC; the APIC works again once programmed.
void check_disable_enable(uint64_t value) {
  const uint64_t base = value & ~0xFFFull;
  uint32_t saved[0x40];
  for (uint32_t off = 0x80; off < 0x400; off += 0x10) saved[off / 0x10] = *apic_reg(base, off);
  const Fault off_f = wrmsr(0x1B, value & ~kEn);
  const uint64_t disabled = rdmsr(0x1B).value;
  const bool cpuid_apic_off = ((cpuid(1).edx >> 9) & 1) == 0;  // SDM 11.4.3
  const Fault to_x2 = wrmsr(0x1B, value | kExtd);              // disabled -> x2APIC
  const Fault on_f = wrmsr(0x1B, value);
  const uint64_t enabled = rdmsr(0x1B).value;
  const bool cpuid_apic_on = ((cpuid(1).edx >> 9) & 1) != 0;
  // Program it again as the firmware had it (the SDM lets the state go):
  // SVR first, LVT mask bits cannot be cleared while software-disabled.
  static const uint32_t kRestore[] = {0xF0,  0xD0,  0xE0,  0x80,  0x350, 0x360,
                                      0x370, 0x340, 0x330, 0x3E0, 0x320, 0x380};
  for (uint32_t off : kRestore) *apic_reg(base, off) = saved[off / 0x10];
  const bool works = self_ipi_delivered();
  check_hv("hostile-apic-disable-enable-works",
           !off_f.faulted && (disabled & kEn) == 0 && cpuid_apic_off && to_x2.faulted &&
               to_x2.vector == kGp && !on_f.faulted && enabled == value && cpuid_apic_on && works,
           "disable: %s, reads 0x%lx, CPUID.1:EDX.APIC %s; disabled -> x2APIC: %s (#GP expected); "
           "enable: %s, reads 0x%lx (0x%lx expected), CPUID APIC %s; self-IPI afterwards %s",
           fault_text(off_f), disabled, cpuid_apic_off ? "0" : "still 1", fault_text(to_x2),
           fault_text(on_f), enabled, value, cpuid_apic_on ? "1" : "0",
           works ? "delivered" : "not delivered");
}

// xAPIC -> x2APIC: the x2APIC registers answer, the ICR MSR works; the
// direct way back is #GP. The APIC stays in x2APIC mode.
void check_x2apic_switch(uint64_t value) {
  if (((cpuid(1).ecx >> 21) & 1) == 0) {
    skip("hostile-apic-x2apic-switch-works", "CPUID.1:ECX.x2APIC is 0");
    return;
  }
  const uint32_t xapic_id = *apic_reg(value & ~0xFFFull, kId) >> 24;
  const Fault on = wrmsr(0x1B, value | kExtd);
  refresh_apic_mode();
  const MsrResult id = rdmsr(0x802);
  wrmsr(0x80F, 0x1FF);  // SVR: enabled (x2APIC register state is not defined across)
  const uint32_t c0 = irq_count(kVecSelfIpi);
  const Fault icr = wrmsr(0x830, (1u << 18) | kVecSelfIpi);  // fixed, self
  const uint32_t c1 = wait_irq(kVecSelfIpi, c0 + 1, kSpinExpect);
  const bool self_ipi = self_ipi_delivered();  // SELF IPI MSR
  const Fault back = wrmsr(0x1B, value);       // x2APIC -> xAPIC directly
  check_hv("hostile-apic-x2apic-switch-works",
           !on.faulted && !id.fault.faulted && (id.value & 0xFF) == xapic_id && !icr.faulted &&
               c1 == c0 + 1 && self_ipi && back.faulted && back.vector == kGp,
           "xAPIC -> x2APIC: %s; x2APIC ID %s 0x%lx (xAPIC ID 0x%x); ICR self-IPI %s, %u "
           "interrupt(s); SELF IPI %s; x2APIC -> xAPIC: %s (#GP expected)",
           fault_text(on), fault_text(id.fault), id.value, xapic_id, fault_text(icr), c1 - c0,
           self_ipi ? "delivered" : "not delivered", fault_text(back));
  note(
      "the APIC stays in x2APIC mode (back to xAPIC passes through disabled, which Bochs 2.7 "
      "never leaves)");
}

}  // namespace

void group_hostile_apic() {
  const MsrResult base = rdmsr(0x1B);
  if (base.fault.faulted || (base.value & (kEn | kExtd)) != kEn) {
    static const char* const kNames[] = {
        "hostile-apic-relocation-gp", "hostile-apic-bsp-bit-read-only",
        "hostile-apic-invalid-state-gp", "hostile-apic-disable-enable-works",
        "hostile-apic-x2apic-switch-works"};
    for (const char* n : kNames) {
      fail(n, "IA32_APIC_BASE is not in xAPIC mode (0x%lx, %s)", base.value,
           fault_text(base.fault));
    }
    return;
  }
  check_relocation(base.value);
  check_rmw_forms(base.value & ~0xFFFull);
  check_disable_enable(base.value);
  check_x2apic_switch(base.value);
}

}  // namespace guest
