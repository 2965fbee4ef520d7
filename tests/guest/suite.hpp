// microhv guest conformance suite: shared declarations.
//
// The suite is a GNU-EFI application that runs as the guest above microhv and
// checks the Hyper-V interface from the guest's side. Layout:
//   hw.S / hw.cpp          serial, IDT, fault recovery, MSR/CPUID access, libc
//   hv.cpp                 hypercalls, SIM/SIEF helpers, fixtures (setup)
//   checks_basic.cpp       groups guest, cpuid, msr
//   checks_hypercall.cpp   groups hypercall, port
//   checks_synic.cpp       groups message, seed, event, sint
//   checks_time.cpp        group time (TSC page, synthetic timers, frequency and crash MSRs)
//   checks_time_vp1.cpp    the time checks on VP 1 (run from the smp group)
//   checks_isolation.cpp   group isolation (microhv's memory is unreachable)
//   checks_hostile_memory.cpp  group hostile: GPAs, overlays, high MMIO, 2,000 moves
//   checks_smp.cpp         group smp (cross-VP delivery, needs >= 2 CPUs)
//   smp_vp1.{hpp,cpp}      VP 1's command loop and the mailbox (groups smp and rep)
//   checks_rep.cpp         group rep (rep hypercalls, IPIs, TLB flushes)
//   tlb_probe.{hpp,cpp}    group rep's own page tables: a mapping to change under a VP's TLB
//   main.cpp               efi_main, options, MP services, report, shutdown
//   demo.cpp, bench.cpp    --demo and --bench modes (not checks)
//   load.cpp               --load mode (multi-CPU message and event storm): set-up
//   load_storm.cpp         --load: what every CPU runs (receiver, sender, limits)
//   load_report.cpp        --load: figures and checks; load.hpp is shared by the three
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"
#include "vmx/info_table.hpp"

struct _EFI_SYSTEM_TABLE;  // <efi.h>; only the files that use it include it

namespace guest {

namespace tlfs = microhv::tlfs;
using tlfs::Status;

// ------------------------------------------------------------------ report
// One line per check on COM1: "guest: PASS <name>" or
// "guest: FAIL <name>: <detail>"; "guest: SKIP <name>: <why>" lines are not
// counted. Returns `ok`.
void pass(const char* name);
void fail(const char* name, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void skip(const char* name, const char* why);
void note(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
bool check(const char* name, bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
// As check(), but also fails (with a plain reason) when CPUID shows no
// Hyper-V: for checks that a machine without the interface could pass
// vacuously (e.g. "the enable bit stays clear").
bool check_hv(const char* name, bool ok, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// ------------------------------------------------------------------ hardware
void serial_write(const char* s);
void serial_drain();  // waits for LSR.TEMT (bit 6)

struct GuestFrame {  // layout pushed by hw.S
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

// Vectors of the SINT handlers (hw.S generates stubs for kIrqBase..+7).
inline constexpr uint8_t kIrqBase = 0x50;
inline constexpr unsigned kIrqCount = 8;

struct Fault {
  bool faulted;
  uint8_t vector;
  uint64_t error;
  uint64_t rip;
};

// Runs fn(arg); a fault inside is recovered and described in *fault.
bool run_guarded(void (*fn)(void*), void* arg, Fault* fault);

// A qword at an address (linear = physical under UEFI), for run_guarded:
// read_qword/write_qword take a QwordAccess*.
struct QwordAccess {
  uint64_t addr;
  uint64_t value;
};
void read_qword(void* access);
void write_qword(void* access);

const char* vector_name(uint8_t vector);  // "#GP", "#UD", ...
const char* fault_text(const Fault& f);   // the vector's name, or "no fault"
constexpr uint8_t kGp = 13;               // #GP's vector (SDM Vol. 3A 6.15)

struct MsrResult {
  Fault fault;
  uint64_t value;
};
MsrResult rdmsr(uint32_t msr);
Fault wrmsr(uint32_t msr, uint64_t value);

struct Cpuid {
  uint32_t eax, ebx, ecx, edx;
};
Cpuid cpuid(uint32_t leaf, uint32_t subleaf = 0);

bool install_idt();  // copies the firmware IDT and adds ours
// Re-reads IA32_APIC_BASE after a check changed the APIC's mode, so EOIs and
// IPIs go through the mode it is in now.
void refresh_apic_mode();
void restore_idt();
void set_non_auto_eoi(uint8_t vector, bool non_auto_eoi);  // handler EOIs the APIC
uint32_t irq_count(uint8_t vector);                        // on the calling CPU
bool send_self_ipi(uint8_t vector);  // fixed, edge, to self; false if no APIC access
void cli();
void sti();

// ------------------------------------------------------------------ CPUs
// CPUs are numbered by their MP-services processor number (the BSP is 0);
// the suite expects VP_INDEX to equal it. Up to kMaxCpus are used.
inline constexpr unsigned kMaxCpus = 8;
void set_cpus(unsigned count, const uint32_t* apic_ids);  // after install_idt()
unsigned cpu_count();
unsigned this_cpu();  // by local APIC ID; kMaxCpus for a CPU not in the table
uint32_t apic_id();   // of the calling CPU
uint32_t irq_count_on(unsigned cpu, uint8_t vector);
uint64_t irq_tsc_on(unsigned cpu, uint8_t vector);  // TSC at the last one (>= 2 CPUs only)
// Where the last interrupt on `vector` found the calling CPU: the RIP and
// RCX it interrupted (a continued hypercall is interrupted at its VMCALL).
struct IrqFrame {
  uint64_t rip, rcx;
};
IrqFrame irq_frame(uint8_t vector);
// Called (after the count is bumped) for every SINT vector on every CPU.
using IrqHook = void (*)(unsigned cpu, uint8_t vector);
void set_irq_hook(IrqHook hook);
// On an AP: load our IDT (saving the AP's), and put the AP's back.
void ap_enter();
void ap_leave();
// An exception on an AP outside a guarded region: recorded here, and the AP
// parks (cli; hlt) instead of reporting.
struct ApFault {
  volatile bool faulted;
  uint64_t vector, error, rip, cr2;
};
const ApFault& ap_fault(unsigned cpu);
bool send_ipi(unsigned cpu, uint8_t vector);  // fixed, edge, physical destination
inline uint64_t rdtsc() {
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
inline void cpu_pause() {
  asm volatile("pause" ::: "memory");
}
// Sequentially consistent loads and stores of words shared between CPUs.
template <typename T>
inline T ld(const T& x) {
  return __atomic_load_n(&x, __ATOMIC_SEQ_CST);
}
template <typename T>
inline void st(T& x, T v) {
  __atomic_store_n(&x, v, __ATOMIC_SEQ_CST);
}

// Waits (with interrupts enabled only during the wait) until irq_count(vector)
// reaches `target`, at most `spins` iterations; returns the final count.
uint32_t wait_irq(uint8_t vector, uint32_t target, uint64_t spins);
inline constexpr uint64_t kSpinExpect = 20'000'000;  // positive waits stop early
inline constexpr uint64_t kSpinQuiet = 2'000'000;    // "no interrupt" windows

[[noreturn]] void abort_suite(const char* why);

// ------------------------------------------------------------------ environment
// Pages of one CPU, allocated before the checks (all zero).
struct CpuPages {
  uint8_t* sim;
  uint8_t* sief;
  uint8_t* in;   // hypercall input
  uint8_t* out;  // hypercall output
};

struct Env {
  bool hv_present;  // CPUID says Hyper-V ("Microsoft Hv", "Hv#1")
  uint8_t* hypercall_page;
  uint8_t* in;           // 2 contiguous pages: input (second page for crossing)
  uint8_t* out;          // output page
  uint8_t* sim;          // SIM page
  uint8_t* sief;         // SIEF page
  bool hypercall_ready;  // HYPERCALL MSR enabled and page not our fill pattern
  bool synic_ready;      // SIMP, SIEFP, SCONTROL and our SINTs programmed
  uint8_t* time_pages;   // 3 pages for the reference TSC page and the crash message
  uint8_t* tsc_page;     // where the time group left the reference TSC page enabled (or null)
  // Per processor 0..cpu_count()-1 (the smp group uses CPU 1's, --load
  // every CPU's; the checks on CPU 0 use the pages above). Null for CPUs that
  // do not exist.
  CpuPages cpu[kMaxCpus];
  uint8_t* tlb_pages;  // kTlbPages for the rep group's page tables (tlb_probe.cpp)
};
inline constexpr size_t kTlbPages = 6;
extern Env env;

inline constexpr uint8_t kPageFill = 0xCC;  // fill of the hypercall page before enabling
inline constexpr uint64_t kGuestOsId = 0x8F00000000000001ull;  // open source, type 0x0F, v1

// SINT plan (see README.md). SINT2 is left alone: it is Linux's VMBus SINT.
inline constexpr uint8_t kSintMsg = 3, kVecMsg = kIrqBase + 0;        // AutoEOI
inline constexpr uint8_t kSintEvt = 4, kVecEvt = kIrqBase + 1;        // AutoEOI
inline constexpr uint8_t kSintNoAuto = 5, kVecNoAuto = kIrqBase + 2;  // EOI by handler
inline constexpr uint8_t kSintMasked = 6, kVecMasked = kIrqBase + 3;  // masked
inline constexpr uint8_t kSintScratch = 7;                            // MSR round-trip tests only
inline constexpr uint8_t kVecIpi = kIrqBase + 4;  // HvCallSendSyntheticClusterIpi (EOI by handler)
inline constexpr uint8_t kVecSelfIpi = kIrqBase + 7;  // harness self-test (local APIC self-IPI)

// Port and connection ids (ids >= 0x1000 avoid VMBus' well-known 1 and 4).
inline constexpr uint32_t kPortMsg = 0x1001, kConnMsg = 0x2001;        // message, SINT3
inline constexpr uint32_t kPortEvt = 0x1002, kConnEvt = 0x2002;        // event, SINT4
inline constexpr uint32_t kPortDel = 0x1003, kConnDel = 0x2003;        // deleted later
inline constexpr uint32_t kPortBuf = 0x1004, kConnBuf = 0x2004;        // buffer exhaustion
inline constexpr uint32_t kPortVp5 = 0x1005, kConnVp5 = 0x2005;        // target VP 5
inline constexpr uint32_t kPortNoAuto = 0x1006, kConnNoAuto = 0x2006;  // SINT5
inline constexpr uint32_t kPortMasked = 0x1007, kConnMasked = 0x2007;  // SINT6
inline constexpr uint32_t kPortBig = 0x1008;                           // flag count 2049
inline constexpr uint32_t kPortBadSint = 0x1009;                       // SINT 16
inline constexpr uint32_t kPortUnknown = 0x1FFF, kConnUnknown = 0x2FFF;
inline constexpr uint16_t kEvtBaseFlag = 8, kEvtFlagCount = 16;

// ------------------------------------------------------------------ hypercalls
struct HvResult {
  bool ran;      // false: prerequisite missing (see why)
  Fault fault;   // the call faulted (e.g. #UD without a hypervisor)
  uint64_t rax;  // result value
  const char* why;
};

enum class Via { kPage, kVmcall };
HvResult hypercall(uint64_t control, uint64_t in_gpa, uint64_t out_gpa, Via via = Via::kPage);
// Slow call with the input block copied to the start of env.in.
HvResult hypercall_in(tlfs::CallCode code, const void* input, size_t size, Via via = Via::kPage);

HvResult create_port(uint32_t port_id, tlfs::PortType type, uint8_t sint, uint32_t vp,
                     uint16_t base_flag = 0, uint16_t flag_count = 0);
// ConnectionInfo.PortType must name the port's type.
HvResult connect_port(uint32_t connection_id, uint32_t port_id, tlfs::PortType type);
HvResult delete_port(uint32_t port_id);
HvResult disconnect_port(uint32_t connection_id);
// Via::kVmcall while the hypercall page is elsewhere than env.hypercall_page.
HvResult post_message(uint32_t connection_id, uint32_t type, uint32_t size, uint8_t seed,
                      Via via = Via::kPage);
HvResult signal_event(uint32_t connection_id, uint16_t flag, bool fast);

// "0x12 INVALID_CONNECTION_ID" etc. into buf.
const char* describe(const HvResult& r, char* buf, size_t cap);
// Passes when the call ran and RAX == expected (reserved result bits zero).
bool check_status(const char* name, const HvResult& r, Status expected, const char* what = nullptr);
bool is_status(const HvResult& r, Status s);
const char* status_text(uint16_t status);

// ------------------------------------------------------------------ SynIC helpers
volatile tlfs::Message* sim_slot(uint8_t sint);
volatile uint8_t* sief_flags(uint8_t sint);  // 256 bytes
void fill_payload(uint8_t* p, uint32_t size, uint8_t seed);
// Compares a slot against a message posted with post_message(.., type, size, seed).
bool slot_matches(uint8_t sint, uint32_t type, uint32_t size, uint8_t seed, char* why, size_t cap);
// The same for the SIM page at `sim_page` (another CPU's).
bool slot_matches_in(uint8_t* sim_page, uint8_t sint, uint32_t type, uint32_t size, uint8_t seed,
                     char* why, size_t cap);
void clear_slot_and_eom(uint8_t sint, bool eom);

// Programs the calling CPU's SynIC (TLFS 11.8): SIMP and SIEFP enabled at
// `sim` and `sief`, the SINTs listed, then SCONTROL, each read back; then
// every slot's MessageType is set to None and the SIEF page cleared. False
// on a fault or a read-back mismatch, with `why` naming the MSR. Runs on any
// CPU (the fixtures on CPU 0, the smp group and --load on the others).
struct SintSetting {
  uint8_t sint;
  uint64_t value;
};
bool program_synic(uint8_t* sim, uint8_t* sief, const SintSetting* sints, size_t count, char* why,
                   size_t cap);
// SINT3 (messages) and SINT4 (events), both AutoEOI: what a CPU that only
// receives needs.
// `static`, not `inline`: an ODR-used inline variable is a GLOB_DAT relocation
// that GNU-EFI does not apply (scripts/check-relocs.sh).
static constexpr SintSetting kReceiverSints[] = {
    {kSintMsg, kVecMsg | tlfs::sint_bits::kAutoEoi},
    {kSintEvt, kVecEvt | tlfs::sint_bits::kAutoEoi},
};

// The TLFS 12.7.3 reader: the reference time from the page and this CPU's
// TSC, retried while the sequence changes; false on sequence 0.
bool read_tsc_page(const volatile tlfs::ReferenceTscPage* page, uint64_t* time);
uint64_t ref_now();               // TIME_REF_COUNT (100 ns units)
void spin_units(uint64_t units);  // interrupts on until `units` of it passed
void timer_checks();              // group_time's synthetic timers (checks_timers.cpp)

// ------------------------------------------------------------------ fixtures
bool ensure_hypercall();  // GUEST_OS_ID + HYPERCALL page
bool ensure_synic();      // SIMP, SIEFP, SCONTROL, SINT3..6
// Each returns false and leaves the reason in fixture_error() when setup fails.
bool ensure_port(uint32_t port_id);  // creates and connects one of the ports above
// The port group creates/connects the same ports itself and records it here.
void mark_port(uint32_t port_id, bool created, bool connected);
const char* fixture_error();

// ------------------------------------------------------------------ options, modes (main.cpp)
// The load options are split into words at spaces.
bool has_option(const char* word);  // e.g. "--demo"
// The rest of the first word starting with `prefix` (e.g. "--only="); false if none.
bool option_value(const char* prefix, char* out, size_t cap);
// A decimal "--name=N" in [lo, hi]; `fallback` when absent or malformed.
uint64_t option_number(const char* prefix, uint64_t fallback, uint64_t lo, uint64_t hi);
// Sets env.hv_present from CPUID; `why` describes what CPUID showed.
bool detect_hyperv(char* why, size_t cap);
void say(const char* text);    // one COM1 line
[[noreturn]] void shutdown();  // firmware IDT back, COM1 drained, ResetSystem(shutdown)
// --crash-at-end: after the summary, report a crash with a text message
// through the crash MSRs (microhv prints it and stops the partition).
void report_crash_at_end();

[[noreturn]] void run_demo();   // demo.cpp: --demo
[[noreturn]] void run_bench();  // bench.cpp: --bench
[[noreturn]] void run_load();   // load.cpp: --load

_EFI_SYSTEM_TABLE* system_table();
uint64_t tsc_hz();  // measured before the checks (10 ms Stall)

// Zeroed pages from AllocatePages(EfiLoaderData); nullptr when it fails.
uint8_t* alloc_pages(size_t count);

// microhv's EFI configuration table (vmx/info_table.hpp); nullptr when absent.
const microhv::vmx::InfoTable* find_info_table();

// The UEFI memory map as read before the checks (GetMemoryMap), for the
// isolation group: the type and attributes of the region holding `addr`;
// false when no descriptor covers it.
bool memory_type_at(uint64_t addr, uint32_t* type, uint64_t* attributes);

// MP services (EFI_MP_SERVICES_PROTOCOL), looked up before the checks.
// mp_cpu_count() is 1 without the protocol. mp_start_ap() runs fn(arg) on
// processor `cpu` without waiting for it (StartupThisAP with an event); it
// may be called once per AP and boot. Boot service calls may enable
// interrupts: callers cli() again.
unsigned mp_cpu_count();
const char* mp_note();  // how the count was found (or why SMP is unavailable)
bool mp_start_ap(unsigned cpu, void (*fn)(void*), void* arg, char* why, size_t cap);

// ------------------------------------------------------------------ groups
void group_guest();
void group_cpuid();
void group_msr();
void group_hypercall();
void group_port();
void group_message();
void group_seed();
void group_event();
void group_sint();
void group_time();
void group_isolation();
// Group "hostile" (a guest that tries to get at the machine beneath it).
void group_hostile_memory();  // checks_hostile_memory.cpp: GPAs, overlays, high MMIO
void group_authority();
void group_smp();
// Group "hostile" (a guest that tries to get at the machine beneath it).
void group_hostile_cpu();   // checks_hostile_cpu.cpp: MSRs, CPUID, the TSC
void group_hostile_apic();  // checks_hostile_apic.cpp: IA32_APIC_BASE, the xAPIC page, x2APIC
void group_rep();
// Ends VP 1's command loop if a group started it (smp_vp1.cpp).
void stop_vp1();

}  // namespace guest

extern "C" {
void* memcpy(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
}
