// Guest suite hardware layer: COM1, IDT, fault recovery, MSR and CPUID access,
// the SINT interrupt counters, and the libc functions the compiler emits.
//
// Several CPUs may run suite code at once (the smp group, --load): the fault
// recovery state and the interrupt counters are per CPU. A CPU is identified
// by its local APIC ID, mapped to its MP-services processor number by the
// table main.cpp registers with set_cpus(); with one CPU no lookup is made.
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

extern "C" {
// hw.S
__attribute__((visibility("hidden"))) extern uint8_t guest_exc_stubs[];
__attribute__((visibility("hidden"))) extern uint8_t guest_irq_stubs[];
__attribute__((visibility("hidden"))) extern uint8_t guest_irq_stubs_end[];
__attribute__((visibility("hidden"))) extern uint8_t guest_try_landing[];
__attribute__((visibility("hidden"))) int guest_try(void (*fn)(void*), void* arg, uint64_t* slot);
void guest_trap(guest::GuestFrame* frame);
}

namespace guest {
namespace {

inline void outb(uint16_t port, uint8_t v) {
  asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
inline uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline void pause() {
  asm volatile("pause" ::: "memory");
}

constexpr uint16_t kCom1 = 0x3F8;
constexpr uint8_t kLsrThre = 1u << 5;
constexpr uint8_t kLsrTemt = 1u << 6;

struct __attribute__((packed)) Idtr {
  uint16_t limit;
  uint64_t base;
};

struct Gate {
  uint16_t off0;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t off1;
  uint32_t off2;
  uint32_t reserved;
};
static_assert(sizeof(Gate) == 16);

alignas(4096) Gate g_idt[256];
Idtr g_firmware_idtr;
bool g_idt_installed;

bool g_non_auto_eoi[kIrqCount];
bool g_apic_x2;
uint64_t g_apic_base;  // xAPIC MMIO base (physical == virtual under UEFI)

// Per CPU; index kMaxCpus collects a CPU that is not in the table.
struct PerCpu {
  uint64_t try_rsp;    // stack pointer of the armed guarded region, 0 if none
  Fault* fault;        // where the armed region records its fault
  Idtr firmware_idtr;  // APs: the IDTR before ap_enter()
  ApFault ap_fault;    // APs: an exception outside a guarded region
};
PerCpu g_cpu[kMaxCpus + 1];
volatile uint32_t g_irq_counts[kMaxCpus + 1][kIrqCount];  // per CPU and SINT vector
volatile uint64_t g_irq_tsc[kMaxCpus + 1][kIrqCount];     // TSC of the last one (SMP only)
IrqFrame g_irq_frame[kMaxCpus + 1][kIrqCount];            // what the last one interrupted
unsigned g_cpu_count = 1;
uint32_t g_apic_ids[kMaxCpus];
IrqHook g_irq_hook;

void set_gate(unsigned vector, const void* handler, uint16_t cs) {
  uint64_t a = reinterpret_cast<uint64_t>(handler);
  Gate& g = g_idt[vector];
  g.off0 = static_cast<uint16_t>(a);
  g.selector = cs;
  g.ist = 0;
  g.type_attr = 0x8E;  // present, DPL0, 64-bit interrupt gate
  g.off1 = static_cast<uint16_t>(a >> 16);
  g.off2 = static_cast<uint32_t>(a >> 32);
  g.reserved = 0;
}

uint32_t read_apic_id() {
  if (g_apic_x2) {
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x802u));  // x2APIC ID
    return lo;
  }
  if (g_apic_base != 0) return *reinterpret_cast<volatile uint32_t*>(g_apic_base + 0x20) >> 24;
  return cpuid(1).ebx >> 24;
}

// The calling CPU's index (this_cpu()); internal linkage, so that the hot
// paths (the interrupt entry, irq_count) inline it under -fpic.
inline unsigned cur_cpu() {
  if (g_cpu_count <= 1) return 0;
  const uint32_t id = read_apic_id();
  for (unsigned i = 0; i < g_cpu_count; ++i) {
    if (g_apic_ids[i] == id) return i;
  }
  return kMaxCpus;
}

void apic_eoi() {
  if (g_apic_x2) {
    asm volatile("wrmsr" : : "c"(0x80Bu), "a"(0u), "d"(0u));
  } else if (g_apic_base != 0) {
    *reinterpret_cast<volatile uint32_t*>(g_apic_base + 0xB0) = 0;
  }
}

}  // namespace

// ------------------------------------------------------------------ serial
void serial_write(const char* s) {
  for (; *s != '\0'; ++s) {
    for (unsigned i = 0; i < 1'000'000 && (inb(kCom1 + 5) & kLsrThre) == 0; ++i) pause();
    outb(kCom1, static_cast<uint8_t>(*s));
  }
}

void serial_drain() {
  for (unsigned i = 0; i < 10'000'000 && (inb(kCom1 + 5) & kLsrTemt) == 0; ++i) pause();
}

// ------------------------------------------------------------------ faults
bool run_guarded(void (*fn)(void*), void* arg, Fault* fault) {
  Fault local{};
  Fault* out = fault != nullptr ? fault : &local;
  *out = Fault{};
  PerCpu& c = g_cpu[cur_cpu()];
  if (c.try_rsp != 0) abort_suite("nested guarded region");
  c.fault = out;
  int faulted = guest_try(fn, arg, &c.try_rsp);
  c.fault = nullptr;
  out->faulted = faulted != 0;
  return !out->faulted;
}

void read_qword(void* p) {
  auto* a = static_cast<QwordAccess*>(p);
  a->value = *reinterpret_cast<volatile const uint64_t*>(a->addr);
}

void write_qword(void* p) {
  auto* a = static_cast<QwordAccess*>(p);
  *reinterpret_cast<volatile uint64_t*>(a->addr) = a->value;
}

const char* vector_name(uint8_t v) {
  static const char* const names[32] = {"#DE", "#DB",  "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
                                        "#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
                                        "#MF", "#AC",  "#MC", "#XM", "#VE", "#CP", "#22", "#23",
                                        "#24", "#25",  "#26", "#27", "#HV", "#VC", "#SX", "#31"};
  return v < 32 ? names[v] : "IRQ";
}

const char* fault_text(const Fault& f) {
  return f.faulted ? vector_name(f.vector) : "no fault";
}

MsrResult rdmsr(uint32_t msr) {
  struct Ctx {
    uint32_t msr;
    uint64_t value;
  } ctx{msr, 0};
  MsrResult r{};
  run_guarded(
      [](void* p) {
        auto* c = static_cast<Ctx*>(p);
        uint32_t lo, hi;
        asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(c->msr));
        c->value = (static_cast<uint64_t>(hi) << 32) | lo;
      },
      &ctx, &r.fault);
  r.value = ctx.value;
  return r;
}

Fault wrmsr(uint32_t msr, uint64_t value) {
  struct Ctx {
    uint32_t msr;
    uint64_t value;
  } ctx{msr, value};
  Fault f{};
  run_guarded(
      [](void* p) {
        auto* c = static_cast<Ctx*>(p);
        asm volatile("wrmsr"
                     :
                     : "c"(c->msr), "a"(static_cast<uint32_t>(c->value)),
                       "d"(static_cast<uint32_t>(c->value >> 32))
                     : "memory");
      },
      &ctx, &f);
  return f;
}

Cpuid cpuid(uint32_t leaf, uint32_t subleaf) {
  Cpuid r;
  asm volatile("cpuid"
               : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
               : "a"(leaf), "c"(subleaf));
  return r;
}

// ------------------------------------------------------------------ IDT
bool install_idt() {
  asm volatile("sidt %0" : "=m"(g_firmware_idtr));
  size_t bytes = static_cast<size_t>(g_firmware_idtr.limit) + 1;
  if (bytes > sizeof(g_idt)) bytes = sizeof(g_idt);
  memset(g_idt, 0, sizeof(g_idt));
  memcpy(g_idt, reinterpret_cast<const void*>(g_firmware_idtr.base), bytes);
  uint16_t cs;
  asm volatile("mov %%cs, %0" : "=r"(cs));
  for (unsigned v = 0; v < 32; ++v) set_gate(v, guest_exc_stubs + 16 * v, cs);
  for (unsigned i = 0; i < kIrqCount; ++i) set_gate(kIrqBase + i, guest_irq_stubs + 16 * i, cs);
  if (guest_irq_stubs_end - guest_irq_stubs != 16 * kIrqCount) return false;
  Idtr ours{static_cast<uint16_t>(sizeof(g_idt) - 1), reinterpret_cast<uint64_t>(g_idt)};
  asm volatile("lidt %0" : : "m"(ours) : "memory");
  g_idt_installed = true;

  refresh_apic_mode();  // local APIC access for EOIs of non-AutoEOI SINT vectors
  return true;
}

void refresh_apic_mode() {
  MsrResult base = rdmsr(0x1B);  // IA32_APIC_BASE
  if (!base.fault.faulted) {
    g_apic_x2 = (base.value & (1u << 10)) != 0;
    g_apic_base = base.value & 0x000FFFFFFFFFF000ull;
  }
}

void restore_idt() {
  if (!g_idt_installed) return;
  asm volatile("lidt %0" : : "m"(g_firmware_idtr) : "memory");
  g_idt_installed = false;
}

void set_non_auto_eoi(uint8_t vector, bool non_auto_eoi) {
  if (vector >= kIrqBase && vector < kIrqBase + kIrqCount)
    g_non_auto_eoi[vector - kIrqBase] = non_auto_eoi;
}

uint32_t irq_count(uint8_t vector) {
  if (vector < kIrqBase || vector >= kIrqBase + kIrqCount) return 0;
  return g_irq_counts[cur_cpu()][vector - kIrqBase];
}

uint32_t irq_count_on(unsigned cpu, uint8_t vector) {
  if (vector < kIrqBase || vector >= kIrqBase + kIrqCount || cpu > kMaxCpus) return 0;
  return g_irq_counts[cpu][vector - kIrqBase];
}

IrqFrame irq_frame(uint8_t vector) {
  if (vector < kIrqBase || vector >= kIrqBase + kIrqCount) return IrqFrame{0, 0};
  return g_irq_frame[cur_cpu()][vector - kIrqBase];
}

uint64_t irq_tsc_on(unsigned cpu, uint8_t vector) {
  if (vector < kIrqBase || vector >= kIrqBase + kIrqCount || cpu > kMaxCpus) return 0;
  return g_irq_tsc[cpu][vector - kIrqBase];
}

void set_irq_hook(IrqHook hook) {
  g_irq_hook = hook;
}

// ------------------------------------------------------------------ CPUs
void set_cpus(unsigned count, const uint32_t* apic_ids) {
  if (count == 0) count = 1;
  if (count > kMaxCpus) count = kMaxCpus;
  for (unsigned i = 0; i < count; ++i) g_apic_ids[i] = apic_ids[i];
  asm volatile("" ::: "memory");
  g_cpu_count = count;
}

unsigned cpu_count() {
  return g_cpu_count;
}

uint32_t apic_id() {
  return read_apic_id();
}

unsigned this_cpu() {
  return cur_cpu();
}

void ap_enter() {
  PerCpu& c = g_cpu[cur_cpu()];
  asm volatile("sidt %0" : "=m"(c.firmware_idtr));
  c.ap_fault = ApFault{};
  Idtr ours{static_cast<uint16_t>(sizeof(g_idt) - 1), reinterpret_cast<uint64_t>(g_idt)};
  asm volatile("lidt %0" : : "m"(ours) : "memory");
}

void ap_leave() {
  PerCpu& c = g_cpu[cur_cpu()];
  asm volatile("lidt %0" : : "m"(c.firmware_idtr) : "memory");
}

const ApFault& ap_fault(unsigned cpu) {
  return g_cpu[cpu <= kMaxCpus ? cpu : kMaxCpus].ap_fault;
}

bool send_ipi(unsigned cpu, uint8_t vector) {
  if (cpu >= g_cpu_count) return false;
  const uint32_t dest = g_apic_ids[cpu];
  if (g_apic_x2) {
    return !wrmsr(0x830, (static_cast<uint64_t>(dest) << 32) | vector).faulted;  // x2APIC ICR
  }
  if (g_apic_base == 0) return false;
  auto* icr_low = reinterpret_cast<volatile uint32_t*>(g_apic_base + 0x300);
  auto* icr_high = reinterpret_cast<volatile uint32_t*>(g_apic_base + 0x310);
  for (unsigned i = 0; i < 1'000'000 && (*icr_low & (1u << 12)) != 0; ++i) pause();
  *icr_high = dest << 24;
  *icr_low = vector;  // fixed, edge, physical destination, no shorthand
  return true;
}

bool send_self_ipi(uint8_t vector) {
  if (g_apic_x2) {
    return !wrmsr(0x83F, vector).faulted;  // x2APIC SELF IPI
  }
  if (g_apic_base == 0) return false;
  auto* icr_low = reinterpret_cast<volatile uint32_t*>(g_apic_base + 0x300);
  for (unsigned i = 0; i < 1'000'000 && (*icr_low & (1u << 12)) != 0; ++i)
    pause();                       // delivery status
  *icr_low = (1u << 18) | vector;  // shorthand "self", fixed, edge, physical
  return true;
}

void cli() {
  asm volatile("cli" ::: "memory");
}
void sti() {
  asm volatile("sti" ::: "memory");
}

uint32_t wait_irq(uint8_t vector, uint32_t target, uint64_t spins) {
  sti();
  for (uint64_t i = 0; i < spins && irq_count(vector) < target; ++i) pause();
  cli();
  return irq_count(vector);
}

}  // namespace guest

extern "C" void guest_trap(guest::GuestFrame* f) {
  using namespace guest;
  const unsigned cpu = cur_cpu();
  if (f->vector >= kIrqBase && f->vector < kIrqBase + kIrqCount) {
    unsigned i = static_cast<unsigned>(f->vector - kIrqBase);
    g_irq_frame[cpu][i] = IrqFrame{f->rip, f->rcx};
    g_irq_counts[cpu][i] = g_irq_counts[cpu][i] + 1;
    g_irq_tsc[cpu][i] = rdtsc();
    if (g_irq_hook != nullptr) g_irq_hook(cpu, static_cast<uint8_t>(f->vector));
    if (g_non_auto_eoi[i]) apic_eoi();
    return;
  }
  if (f->vector == 2) return;  // NMI: not a fault of the code under test
  PerCpu& c = g_cpu[cpu];
  if (f->vector < 32 && c.try_rsp != 0 && c.fault != nullptr) {
    c.fault->faulted = true;
    c.fault->vector = static_cast<uint8_t>(f->vector);
    c.fault->error = f->error;
    c.fault->rip = f->rip;
    f->rip = reinterpret_cast<uint64_t>(guest_try_landing);
    f->rsp = c.try_rsp;
    f->rflags &= ~0x200ull;  // resume with interrupts off, as the checks run
    return;
  }
  uint64_t cr2;
  asm volatile("mov %%cr2, %0" : "=r"(cr2));
  if (cpu != 0) {
    // An AP does not report (COM1 belongs to CPU 0): it records the fault
    // and parks; whoever waits for it times out and prints the record.
    c.ap_fault.vector = f->vector;
    c.ap_fault.error = f->error;
    c.ap_fault.rip = f->rip;
    c.ap_fault.cr2 = cr2;
    asm volatile("" ::: "memory");
    c.ap_fault.faulted = true;
    for (;;) asm volatile("cli; hlt");
  }
  char buf[160];
  microhv::format(buf, sizeof(buf),
                  "unexpected exception %s (vector %lu) error 0x%lx at rip 0x%lx cr2 0x%lx",
                  vector_name(static_cast<uint8_t>(f->vector)), f->vector, f->error, f->rip, cr2);
  abort_suite(buf);
}

// ------------------------------------------------------------------ libc
extern "C" {
void* memcpy(void* dst, const void* src, size_t n) {
  void* d = dst;
  asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  void* d = dst;
  asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  auto* s = static_cast<const uint8_t*>(src);
  if (d <= s || d >= s + n) return memcpy(dst, src, n);
  for (size_t i = n; i > 0; --i) {
    d[i - 1] = s[i - 1];
    asm volatile("" ::: "memory");  // keep the loop a loop (no memmove call)
  }
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  auto* x = static_cast<const uint8_t*>(a);
  auto* y = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}
}
