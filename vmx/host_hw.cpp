// The host side of microhv's VT-x back end. Runs in the resident copy of the
// image (vmx/start_hw.cpp made it), on microhv's own stack, page tables, GDT,
// TSS and IDT, with interrupts off -- never on anything the firmware or the
// OS owns. Brings up VMX on this CPU, builds the VMCS from the firmware state
// captured in LaunchInfo, launches the firmware as the guest and from then
// on handles its VM exits (vmx/exits.cpp decides; this file does the VMCS,
// the injection and the core glue).
#include <new>

#include "arch/cpu.hpp"
#include "arch/descriptors.hpp"
#include "arch/serial.hpp"
#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "kernel/hypervisor.hpp"
#include "kernel/log.hpp"
#include "synic/msr.hpp"
#include "vmx/controls.hpp"
#include "vmx/ept.hpp"
#include "vmx/exits.hpp"
#include "vmx/injection.hpp"
#include "vmx/launch.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/vmcs_names.hpp"
#include "vmx/vmx_hw.hpp"

extern "C" {
extern char microhv_vmexit_stub[];
extern char microhv_exception_stubs[];
extern char microhv_rdmsr_insn[], microhv_rdmsr_fixup[];
extern char microhv_wrmsr_insn[], microhv_wrmsr_fixup[];
extern char microhv_xsetbv_insn[], microhv_xsetbv_fixup[];
int microhv_rdmsr_safe(uint32_t msr, uint64_t* value);
int microhv_wrmsr_safe(uint32_t msr, uint64_t value);
int microhv_xsetbv_safe(uint32_t index, uint64_t value);
microhv::vmx::GuestRegs* microhv_vmexit(microhv::vmx::GuestRegs* regs);
void microhv_vmresume_failed(microhv::vmx::GuestRegs* regs, uint64_t rflags);
struct HostExceptionFrame;
void microhv_host_exception(HostExceptionFrame* frame);
}

struct HostExceptionFrame {
  microhv::vmx::GuestRegs regs;
  uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

namespace microhv::vmx {
namespace {

using hw::VmxStatus;

constexpr uint16_t kVpid = 1;
constexpr uint64_t kHostStackSize = 32 * 1024;

// ---------------------------------------------------------------- VMCS access

uint64_t read_instruction_error() {
  uint64_t e = 0;
  if (hw::vmread(Field::kVmInstructionError, &e) != VmxStatus::kOk) return ~0ull;
  return e;
}

void report_vmx_failure(const char* what, VmxStatus s, uint32_t field = ~0u) {
  if (s == VmxStatus::kFailInvalid) {
    log::error("%s failed: VMfailInvalid (no current VMCS)%s\n", what, "");
    return;
  }
  const uint64_t e = read_instruction_error();
  if (field != ~0u) {
    log::error("%s of field 0x%x failed: VMfailValid, VM-instruction error %llu (%s)\n", what, field,
               static_cast<unsigned long long>(e), vm_instruction_error_name(static_cast<uint32_t>(e)));
  } else {
    log::error("%s failed: VMfailValid, VM-instruction error %llu (%s)\n", what, static_cast<unsigned long long>(e),
               vm_instruction_error_name(static_cast<uint32_t>(e)));
  }
}

uint32_t g_vmcs_failures = 0;

class HwVmcs final : public VmcsAccess {
 public:
  uint64_t read(Field f) override {
    uint64_t v = 0;
    const VmxStatus s = hw::vmread(f, &v);
    if (s != VmxStatus::kOk) {
      ++g_vmcs_failures;
      report_vmx_failure("VMREAD", s, encoding(f));
    }
    return v;
  }
  void write(Field f, uint64_t value) override {
    const VmxStatus s = hw::vmwrite(f, value);
    if (s != VmxStatus::kOk) {
      ++g_vmcs_failures;
      report_vmx_failure("VMWRITE", s, encoding(f));
    }
  }
};

// ---------------------------------------------------------------- CPU services

class HwCpu final : public CpuServices {
 public:
  CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) override {
    const arch::CpuidResult r = arch::cpuid(leaf, subleaf);
    return CpuidRegs{r.eax, r.ebx, r.ecx, r.edx};
  }
  bool rdmsr(uint32_t msr, uint64_t* value) override { return microhv_rdmsr_safe(msr, value) == 0; }
  bool wrmsr(uint32_t msr, uint64_t value) override { return microhv_wrmsr_safe(msr, value) == 0; }
  bool xsetbv(uint32_t index, uint64_t value) override { return microhv_xsetbv_safe(index, value) == 0; }
  void wbinvd() override { asm volatile("wbinvd" : : : "memory"); }
};

// ---------------------------------------------------------------- memory

class IdentityPhys final : public PhysAccess {
 public:
  uint64_t* table(Hpa page) override { return reinterpret_cast<uint64_t*>(page.value()); }
};

// Pages for page tables come from the pool's tail (already zeroed).
class PoolAllocator final : public PageAllocator {
 public:
  explicit PoolAllocator(LaunchInfo* info) : info_(info) {}
  Hpa alloc_page() override {
    if (info_->alloc_next + kPageSize > info_->alloc_end) {
      log::error("out of page-table pages\n");
      return Hpa(0);
    }
    const uint64_t p = info_->alloc_next;
    info_->alloc_next += kPageSize;
    auto* q = reinterpret_cast<uint64_t*>(p);
    for (unsigned i = 0; i < 512; ++i) q[i] = 0;
    return Hpa(p);
  }

 private:
  LaunchInfo* info_;
};

// ---------------------------------------------------------------- per-VP state

struct alignas(16) VcpuFrame {
  GuestRegs regs;           // filled by microhv_vmexit_stub; HOST_RSP = &host_stack_top
  uint64_t host_stack_top;  // offset 128, read by the stub
  uint64_t reserved;
};
static_assert(__builtin_offsetof(VcpuFrame, host_stack_top) == 128);

struct Vcpu {
  VcpuFrame* frame = nullptr;
  PendingEvents events;
  Vp* vp = nullptr;
  uint32_t proc_controls = 0;  // cached primary controls (interrupt-window bit)
  uint64_t exits = 0;
  uint64_t overlay_gpa = ~0ull;  // where the hypercall page is mapped, ~0 = nowhere
  bool x2apic_warned = false;
};

// Everything with a vtable or a constructor lives here and is built with
// placement new in microhv_host_entry: global constructors never run.
struct Host;
Host* g_host = nullptr;
LaunchInfo* g_info = nullptr;

// ---------------------------------------------------------------- core glue

// GuestMemory on the identity map, refusing anything that is not guest RAM
// (microhv's memory and MMIO included).
class HwGuestMemory final : public GuestMemory {
 public:
  EptLayout layout{};
  bool is_ram(Gpa gpa, uint64_t len) const override { return range_is_guest_ram(layout, gpa.value(), len); }
  bool read(Gpa gpa, void* dst, uint64_t len) override {
    if (!is_ram(gpa, len)) return false;
    __builtin_memcpy(dst, reinterpret_cast<const void*>(gpa.value()), len);
    return true;
  }
  bool write(Gpa gpa, const void* src, uint64_t len) override {
    if (!is_ram(gpa, len)) return false;
    __builtin_memcpy(reinterpret_cast<void*>(gpa.value()), src, len);
    return true;
  }
  bool fetch_or_u64(Gpa gpa, uint64_t bits, uint64_t* old) override {
    if ((gpa.value() & 7) != 0 || !is_ram(gpa, 8)) return false;
    *old = __atomic_fetch_or(reinterpret_cast<uint64_t*>(gpa.value()), bits, __ATOMIC_SEQ_CST);
    return true;
  }
};

void send_self_ipi(Vcpu& v, uint8_t vector);

// Non-AutoEOI SINTs go through the guest's own local APIC as a self-IPI, so
// the APIC's IRR/ISR and the guest's EOI work exactly as for any device
// interrupt; AutoEOI SINTs are injected through the VMCS (no EOI expected).
// See vmx/README.md.
class HwInterrupts final : public InterruptSink {
 public:
  explicit HwInterrupts(Vcpu& v) : v_(v) {}
  void raise(VpIndex vp, uint8_t vector, bool auto_eoi) override {
    if (vp.value() != 0) {
      log::error("interrupt for VP %u dropped: only VP 0 is virtualized\n", vp.value());
      return;
    }
    if (auto_eoi) {
      v_.events.queue_interrupt(vector);
    } else {
      send_self_ipi(v_, vector);
    }
  }

 private:
  Vcpu& v_;
};

class TscClock final : public ReferenceClock {
 public:
  uint64_t tsc0 = 0, hz = 1;
  uint64_t now_100ns() override {
    const uint64_t d = arch::rdtsc() - tsc0;
    return (d / hz) * 10000000ull + ((d % hz) * 10000000ull) / hz;
  }
};

void update_hypercall_overlay();

class CoreGlue final : public HvCore {
 public:
  Vp* vp = nullptr;
  bool cpuid(uint32_t leaf, CpuidRegs* out) override { return hyperv_cpuid(vp->partition(), leaf, out); }
  MsrResult read_msr(uint32_t msr, uint64_t* value) override { return read_synthetic_msr(*vp, msr, value); }
  MsrResult write_msr(uint32_t msr, uint64_t value) override {
    const MsrResult r = write_synthetic_msr(*vp, msr, value);
    if (r == MsrResult::kOk && (msr == tlfs::msr::kHypercall || msr == tlfs::msr::kGuestOsId)) {
      update_hypercall_overlay();
    }
    return r;
  }
  HypercallOutcome hypercall(const HypercallRegs& regs) override { return handle_hypercall(*vp, regs); }
};

struct Host {
  explicit Host(LaunchInfo* info)
      : alloc(info), ept(TableFormat::kEpt, alloc, phys, 3), interrupts(vcpu) {}
  IdentityPhys phys;
  PoolAllocator alloc;
  PageTables ept;
  HwVmcs vmcs;
  HwCpu cpu;
  Vcpu vcpu;
  HwGuestMemory memory;
  HwInterrupts interrupts;
  TscClock clock;
  CoreGlue core;
  Hypervisor hv;
  VmxCapabilities caps{};
  uint64_t eptp = 0;
  bool invept_single = false;
};

alignas(Host) unsigned char g_host_storage[sizeof(Host)];

// ---------------------------------------------------------------- stop / dump

[[noreturn]] void halt_forever() {
  serial::flush();
  for (;;) {
    arch::cli();
    arch::hlt();
  }
}

void dump_vmcs() {
  log::info("VMCS dump:\n");
  for (uint32_t i = 0; i < kDumpFieldCount; ++i) {
    uint64_t v = 0;
    if (hw::vmread(kDumpFields[i].field, &v) == VmxStatus::kOk) {
      log::info("  %-26s (0x%04x) = 0x%llx\n", kDumpFields[i].name, encoding(kDumpFields[i].field),
                static_cast<unsigned long long>(v));
    } else {
      log::info("  %-26s (0x%04x) = <unsupported>\n", kDumpFields[i].name, encoding(kDumpFields[i].field));
    }
  }
}

void dump_regs(const GuestRegs& r) {
  log::info("  rax=%016llx rcx=%016llx rdx=%016llx rbx=%016llx\n", (unsigned long long)r.rax,
            (unsigned long long)r.rcx, (unsigned long long)r.rdx, (unsigned long long)r.rbx);
  log::info("  rsp=%016llx rbp=%016llx rsi=%016llx rdi=%016llx\n", (unsigned long long)r.rsp,
            (unsigned long long)r.rbp, (unsigned long long)r.rsi, (unsigned long long)r.rdi);
  log::info("  r8 =%016llx r9 =%016llx r10=%016llx r11=%016llx\n", (unsigned long long)r.r8,
            (unsigned long long)r.r9, (unsigned long long)r.r10, (unsigned long long)r.r11);
  log::info("  r12=%016llx r13=%016llx r14=%016llx r15=%016llx\n", (unsigned long long)r.r12,
            (unsigned long long)r.r13, (unsigned long long)r.r14, (unsigned long long)r.r15);
}

[[noreturn]] void stop_guest(const char* why, const GuestRegs* regs) {
  log::error("guest stopped: %s\n", why);
  if (regs != nullptr) dump_regs(*regs);
  dump_vmcs();
  log::error("guest stopped: %s (microhv halts this CPU)\n", why);
  halt_forever();
}

// ---------------------------------------------------------------- EPT / overlay

MapAttr identity_attr(uint64_t gpa) {
  const HwGuestMemory& m = g_host->memory;
  if (gpa >= m.layout.hidden_base && gpa - m.layout.hidden_base < m.layout.hidden_size) return kNotPresent;
  if (range_is_guest_ram(m.layout, gpa, kPageSize)) return MapAttr{kPermRwx, arch::MemType::kWb};
  return MapAttr{kPermRwx, arch::MemType::kUc};
}

void invalidate_ept() {
  Host& h = *g_host;
  const VmxStatus s = hw::invept(h.invept_single ? 1 : 2, h.eptp);
  if (s != VmxStatus::kOk) report_vmx_failure("INVEPT", s);
}

// The hypercall page (TLFS 3.13) is an overlay: a microhv page holding
// `vmcall; ret`, mapped read+execute at the GPA the guest chose. Guest
// writes to it exit (EPT violation) and get #GP; the RAM underneath is
// untouched and comes back when the overlay moves or is disabled.
void update_hypercall_overlay() {
  Host& h = *g_host;
  Vcpu& v = h.vcpu;
  const Partition& p = v.vp->partition();
  const uint64_t want = p.hypercall_page_enabled() ? p.hypercall_page().value() : ~0ull;
  if (want == v.overlay_gpa) return;
  if (v.overlay_gpa != ~0ull) {
    const uint64_t old = v.overlay_gpa;
    h.ept.map(old, old, kPageSize, identity_attr(old));
  }
  if (want != ~0ull) {
    if (identity_attr(want).perms == 0) {
      log::error("hypercall page at GPA 0x%llx refused: microhv memory\n", static_cast<unsigned long long>(want));
      v.overlay_gpa = ~0ull;
      invalidate_ept();
      return;
    }
    if (!h.ept.map(want, g_info->overlay_page, kPageSize, MapAttr{kPermR | kPermX, arch::MemType::kWb})) {
      log::error("hypercall page at GPA 0x%llx: EPT map failed\n", static_cast<unsigned long long>(want));
    }
  }
  const uint64_t old = v.overlay_gpa;
  v.overlay_gpa = want;
  invalidate_ept();
  if (want != ~0ull) {
    log::info("hypercall page: overlay mapped read+execute at GPA 0x%llx\n", static_cast<unsigned long long>(want));
  } else {
    log::info("hypercall page: overlay at GPA 0x%llx removed\n", static_cast<unsigned long long>(old));
  }
}

// ---------------------------------------------------------------- self-IPI

void send_self_ipi(Vcpu& v, uint8_t vector) {
  const uint64_t apic_base = arch::rdmsr(msr::kApicBase);
  if ((apic_base & (1ull << 11)) == 0) {
    // The guest disabled its APIC: nothing can deliver or EOI a fixed
    // interrupt. Fall back to VMCS injection.
    if (!v.x2apic_warned) log::error("local APIC disabled; SINT vector 0x%x injected without APIC state\n", vector);
    v.x2apic_warned = true;
    v.events.queue_interrupt(vector);
    return;
  }
  if ((apic_base & (1ull << 10)) != 0) {
    arch::wrmsr(msr::kX2apicSelfIpi, vector);  // x2APIC SELF IPI register
    return;
  }
  // xAPIC: ICR low with destination shorthand "self", fixed, edge.
  volatile uint32_t* icr_low = reinterpret_cast<volatile uint32_t*>((apic_base & ~0xFFFull) + 0x300);
  for (int i = 0; i < 100000 && (*icr_low & (1u << 12)) != 0; ++i) arch::pause();
  *icr_low = (1u << 18) | (1u << 14) | vector;
}

// ---------------------------------------------------------------- entry prep

uint64_t vmread(Field f) { return g_host->vmcs.read(f); }
void vmwrite(Field f, uint64_t v) { g_host->vmcs.write(f, v); }

// Drains the pending events into the VMCS just before VM entry (host
// interrupts are off throughout the host).
void prepare_entry(Vcpu& v) {
  const GuestInterruptState s{vmread(Field::kGuestRflags), static_cast<uint32_t>(vmread(Field::kGuestInterruptibility)),
                              static_cast<uint32_t>(vmread(Field::kGuestActivityState))};
  const InjectionDecision d = decide_injection(v.events, s);
  if (d.inject) {
    uint32_t info = d.intr_info;
    // With unrestricted guest in real mode no error code may be delivered.
    if ((vmread(Field::kGuestCr0) & kCr0Pe) == 0) info &= ~intr_info::kDeliverErrorCode;
    vmwrite(Field::kEntryInterruptionInfo, info);
    if ((info & intr_info::kDeliverErrorCode) != 0) vmwrite(Field::kEntryExceptionErrorCode, d.error_code);
    vmwrite(Field::kEntryInstructionLength, d.instruction_length);
    if (d.wake) vmwrite(Field::kGuestActivityState, activity::kActive);
  } else {
    vmwrite(Field::kEntryInterruptionInfo, 0);
  }
  const uint32_t want = d.interrupt_window ? (v.proc_controls | proc::kInterruptWindowExiting)
                                           : (v.proc_controls & ~proc::kInterruptWindowExiting);
  if (want != v.proc_controls) {
    vmwrite(Field::kProcControls, want);
    v.proc_controls = want;
  }
}

void advance_rip() {
  const uint64_t rip = vmread(Field::kGuestRip) + vmread(Field::kExitInstructionLength);
  vmwrite(Field::kGuestRip, rip);
  const uint64_t intr = vmread(Field::kGuestInterruptibility);
  if ((intr & (interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs)) != 0) {
    vmwrite(Field::kGuestInterruptibility,
            intr & ~static_cast<uint64_t>(interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs));
  }
}

// ---------------------------------------------------------------- host setup

void load_host_descriptors(LaunchInfo* info, uint16_t* tr_selector) {
  // GDT: the firmware's entries (so CS and the data selectors keep their
  // meaning) plus microhv's TSS. IDT: microhv's handlers.
  auto* gdt = reinterpret_cast<uint64_t*>(info->gdt_page);
  const auto* fw = reinterpret_cast<const uint64_t*>(info->guest.gdtr_base);
  const uint32_t fw_entries = (static_cast<uint32_t>(info->guest.gdtr_limit) + 1) / 8;
  for (uint32_t i = 0; i < fw_entries; ++i) gdt[i] = fw[i];
  const uint32_t tss_index = (fw_entries + 1) & ~1u;  // 16-byte aligned slot
  auto* tss = reinterpret_cast<arch::Tss64*>(info->tss_page);
  tss->ist[1] = info->ist_stack_top;
  tss->rsp[0] = info->host_stack_top;
  tss->iomap_base = sizeof(arch::Tss64);
  arch::make_tss_descriptor(info->tss_page, sizeof(arch::Tss64) - 1, &gdt[tss_index]);
  const arch::DescriptorTableRegister gdtr{static_cast<uint16_t>((tss_index + 2) * 8 - 1), info->gdt_page};
  asm volatile("lgdt %0" : : "m"(gdtr) : "memory");
  *tr_selector = static_cast<uint16_t>(tss_index * 8);
  asm volatile("ltr %0" : : "r"(*tr_selector) : "memory");

  uint16_t cs = 0;
  asm volatile("mov %%cs, %0" : "=r"(cs));
  auto* idt = reinterpret_cast<arch::IdtGate*>(info->idt_page);
  const uint64_t stubs = reinterpret_cast<uint64_t>(microhv_exception_stubs);
  for (unsigned v = 0; v < 256; ++v) {
    // NMI, #DF and #MC on their own stack: they can hit at any point.
    const uint8_t ist = (v == 2 || v == 8 || v == 18) ? 1 : 0;
    idt[v] = arch::make_interrupt_gate(stubs + 16 * v, cs, ist);
  }
  const arch::DescriptorTableRegister idtr{256 * 16 - 1, info->idt_page};
  asm volatile("lidt %0" : : "m"(idtr) : "memory");
}

void restore_firmware_descriptors(LaunchInfo* info) {
  const arch::DescriptorTableRegister gdtr{info->guest.gdtr_limit, info->guest.gdtr_base};
  const arch::DescriptorTableRegister idtr{info->guest.idtr_limit, info->guest.idtr_base};
  asm volatile("lgdt %0" : : "m"(gdtr) : "memory");
  asm volatile("lidt %0" : : "m"(idtr) : "memory");
}

VmxCapabilities read_capabilities() {
  VmxCapabilities c{};
  c.basic = arch::rdmsr(msr::kVmxBasic);
  c.pinbased = arch::rdmsr(msr::kVmxPinbased);
  c.procbased = arch::rdmsr(msr::kVmxProcbased);
  c.exit = arch::rdmsr(msr::kVmxExit);
  c.entry = arch::rdmsr(msr::kVmxEntry);
  c.misc = arch::rdmsr(msr::kVmxMisc);
  c.cr0_fixed0 = arch::rdmsr(msr::kVmxCr0Fixed0);
  c.cr0_fixed1 = arch::rdmsr(msr::kVmxCr0Fixed1);
  c.cr4_fixed0 = arch::rdmsr(msr::kVmxCr4Fixed0);
  c.cr4_fixed1 = arch::rdmsr(msr::kVmxCr4Fixed1);
  if ((c.basic & kBasicTrueControls) != 0) {
    c.true_pinbased = arch::rdmsr(msr::kVmxTruePinbased);
    c.true_procbased = arch::rdmsr(msr::kVmxTrueProcbased);
    c.true_exit = arch::rdmsr(msr::kVmxTrueExit);
    c.true_entry = arch::rdmsr(msr::kVmxTrueEntry);
  }
  if (control_allowed(c.procbased, proc::kActivateSecondary)) {
    c.procbased2 = arch::rdmsr(msr::kVmxProcbased2);
    c.ept_vpid_cap = arch::rdmsr(msr::kVmxEptVpidCap);
  }
  return c;
}

void log_capabilities(const VmxCapabilities& c) {
  log::info("VMX: basic=0x%016llx pin=0x%016llx proc=0x%016llx exit=0x%016llx entry=0x%016llx\n",
            (unsigned long long)c.basic, (unsigned long long)c.pinbased, (unsigned long long)c.procbased,
            (unsigned long long)c.exit, (unsigned long long)c.entry);
  log::info("VMX: true pin=0x%016llx proc=0x%016llx exit=0x%016llx entry=0x%016llx\n",
            (unsigned long long)c.true_pinbased, (unsigned long long)c.true_procbased,
            (unsigned long long)c.true_exit, (unsigned long long)c.true_entry);
  log::info("VMX: proc2=0x%016llx ept_vpid=0x%016llx misc=0x%016llx\n", (unsigned long long)c.procbased2,
            (unsigned long long)c.ept_vpid_cap, (unsigned long long)c.misc);
  log::info("VMX: cr0 fixed0=0x%llx fixed1=0x%llx cr4 fixed0=0x%llx fixed1=0x%llx\n",
            (unsigned long long)c.cr0_fixed0, (unsigned long long)c.cr0_fixed1, (unsigned long long)c.cr4_fixed0,
            (unsigned long long)c.cr4_fixed1);
}

bool enable_feature_control() {
  const uint64_t fc = arch::rdmsr(msr::kFeatureControl);
  constexpr uint64_t kLock = 1, kOutsideSmx = 4;
  if ((fc & kLock) != 0) {
    if ((fc & kOutsideSmx) == 0) {
      log::error("IA32_FEATURE_CONTROL=0x%llx is locked with VMX outside SMX disabled: cannot use VT-x\n",
                 static_cast<unsigned long long>(fc));
      return false;
    }
    return true;
  }
  arch::wrmsr(msr::kFeatureControl, fc | kLock | kOutsideSmx);
  log::info("IA32_FEATURE_CONTROL 0x%llx -> 0x%llx (locked, VMX outside SMX)\n", static_cast<unsigned long long>(fc),
            static_cast<unsigned long long>(arch::rdmsr(msr::kFeatureControl)));
  return true;
}

bool check(VmxStatus s, const char* what) {
  if (s == VmxStatus::kOk) return true;
  report_vmx_failure(what, s);
  return false;
}

uint16_t read_selector_cs() {
  uint16_t v;
  asm volatile("mov %%cs, %0" : "=r"(v));
  return v;
}

void write_guest_segment(Field sel, const arch::SegmentState& s) {
  const uint32_t i = (encoding(sel) - encoding(Field::kGuestEsSel)) / 2;
  vmwrite(sel, s.selector);
  vmwrite(static_cast<Field>(encoding(Field::kGuestEsBase) + 2 * i), s.base);
  vmwrite(static_cast<Field>(encoding(Field::kGuestEsLimit) + 2 * i), s.limit);
  vmwrite(static_cast<Field>(encoding(Field::kGuestEsAccess) + 2 * i), s.access);
}

bool write_vmcs(LaunchInfo* info, const ControlSet& ctl, uint16_t host_tr) {
  Host& h = *g_host;
  const GuestStart& g = info->guest;
  const VmxCapabilities& caps = h.caps;

  // Controls.
  vmwrite(Field::kPinControls, ctl.pin.value);
  vmwrite(Field::kProcControls, ctl.proc.value);
  vmwrite(Field::kProcControls2, ctl.proc2.value);
  vmwrite(Field::kExitControls, ctl.exit.value);
  vmwrite(Field::kEntryControls, ctl.entry.value);
  h.vcpu.proc_controls = ctl.proc.value;
  vmwrite(Field::kExceptionBitmap, 0);
  vmwrite(Field::kPfErrorCodeMask, 0);
  vmwrite(Field::kPfErrorCodeMatch, 0);
  vmwrite(Field::kCr3TargetCount, 0);
  vmwrite(Field::kExitMsrStoreCount, 0);
  vmwrite(Field::kExitMsrLoadCount, 0);
  vmwrite(Field::kEntryMsrLoadCount, 0);
  vmwrite(Field::kEntryInterruptionInfo, 0);
  vmwrite(Field::kMsrBitmap, info->msr_bitmap);
  vmwrite(Field::kIoBitmapA, info->io_bitmap_a);
  vmwrite(Field::kIoBitmapB, info->io_bitmap_b);
  vmwrite(Field::kEptPointer, h.eptp);
  vmwrite(Field::kVpid, kVpid);
  vmwrite(Field::kVmcsLinkPointer, ~0ull);
  vmwrite(Field::kCr0Mask, guest_cr0_mask(caps, true));
  vmwrite(Field::kCr0ReadShadow, g.cr0);
  vmwrite(Field::kCr4Mask, guest_cr4_mask(caps));
  vmwrite(Field::kCr4ReadShadow, g.cr4);

  // Host state: microhv's own CR3, GDT, TSS, IDT and stack.
  vmwrite(Field::kHostCr0, arch::read_cr0());
  vmwrite(Field::kHostCr3, arch::read_cr3());
  vmwrite(Field::kHostCr4, arch::read_cr4());
  vmwrite(Field::kHostCsSel, read_selector_cs());
  vmwrite(Field::kHostSsSel, 0);
  vmwrite(Field::kHostDsSel, 0);
  vmwrite(Field::kHostEsSel, 0);
  vmwrite(Field::kHostFsSel, 0);
  vmwrite(Field::kHostGsSel, 0);
  vmwrite(Field::kHostTrSel, host_tr);
  vmwrite(Field::kHostFsBase, 0);
  vmwrite(Field::kHostGsBase, 0);
  vmwrite(Field::kHostTrBase, info->tss_page);
  vmwrite(Field::kHostGdtrBase, info->gdt_page);
  vmwrite(Field::kHostIdtrBase, info->idt_page);
  vmwrite(Field::kHostSysenterCs, 0);
  vmwrite(Field::kHostSysenterEsp, 0);
  vmwrite(Field::kHostSysenterEip, 0);
  vmwrite(Field::kHostEfer, arch::rdmsr(msr::kEfer));
  vmwrite(Field::kHostPat, arch::rdmsr(msr::kPat));
  vmwrite(Field::kHostRsp, reinterpret_cast<uint64_t>(&h.vcpu.frame->host_stack_top));
  vmwrite(Field::kHostRip, reinterpret_cast<uint64_t>(microhv_vmexit_stub));

  // Guest state: the firmware exactly as it was in microhv_virtualize.
  vmwrite(Field::kGuestCr0, guest_cr0(caps, g.cr0, true));
  vmwrite(Field::kGuestCr3, g.cr3);
  vmwrite(Field::kGuestCr4, g.cr4 | caps.cr4_fixed0);
  vmwrite(Field::kGuestDr7, g.dr7);
  vmwrite(Field::kGuestRsp, info->guest_rsp);
  vmwrite(Field::kGuestRip, info->guest_rip);
  vmwrite(Field::kGuestRflags, info->guest_rflags);
  vmwrite(Field::kGuestEfer, g.efer);
  vmwrite(Field::kGuestPat, g.pat);
  vmwrite(Field::kGuestDebugctl, g.debugctl);
  vmwrite(Field::kGuestSysenterCs, g.sysenter_cs);
  vmwrite(Field::kGuestSysenterEsp, g.sysenter_esp);
  vmwrite(Field::kGuestSysenterEip, g.sysenter_eip);
  vmwrite(Field::kGuestGdtrBase, g.gdtr_base);
  vmwrite(Field::kGuestGdtrLimit, g.gdtr_limit);
  vmwrite(Field::kGuestIdtrBase, g.idtr_base);
  vmwrite(Field::kGuestIdtrLimit, g.idtr_limit);
  vmwrite(Field::kGuestInterruptibility, 0);
  vmwrite(Field::kGuestActivityState, activity::kActive);
  vmwrite(Field::kGuestPendingDebug, 0);

  const auto* gdt = reinterpret_cast<const uint64_t*>(g.gdtr_base);
  struct {
    Field field;
    uint16_t selector;
  } const segs[] = {{Field::kGuestEsSel, g.es}, {Field::kGuestCsSel, g.cs}, {Field::kGuestSsSel, g.ss},
                    {Field::kGuestDsSel, g.ds}, {Field::kGuestFsSel, g.fs}, {Field::kGuestGsSel, g.gs},
                    {Field::kGuestLdtrSel, g.ldtr}};
  for (const auto& s : segs) write_guest_segment(s.field, arch::decode_segment(gdt, g.gdtr_limit, s.selector));
  // 64-bit FS/GS bases live in MSRs, not in the descriptors.
  vmwrite(Field::kGuestFsBase, g.fs_base);
  vmwrite(Field::kGuestGsBase, g.gs_base);
  // TR must be usable for VM entry. The firmware runs with TR = 0 (no TSS):
  // give the guest an equivalent busy 64-bit TSS of its own at base 0 that
  // nothing uses until the OS loads its own TR.
  arch::SegmentState tr = arch::decode_segment(gdt, g.gdtr_limit, g.tr);
  if ((tr.access & arch::kAccessUnusable) != 0) tr = arch::SegmentState{g.tr, 0, 0x67, 0x8B};
  tr.access = (tr.access & ~0xFu) | 0xB;  // busy
  write_guest_segment(Field::kGuestTrSel, tr);
  return g_vmcs_failures == 0;
}

// One line with the decisive values, then the full dump.
void report_launch_failure(VmxStatus s) {
  report_vmx_failure("VMLAUNCH", s);
  if (s == VmxStatus::kFailValid) dump_vmcs();
}

void create_partition(LaunchInfo* info) {
  Host& h = *g_host;
  h.clock.tsc0 = arch::rdtsc();
  h.clock.hz = info->tsc_hz != 0 ? info->tsc_hz : 1000000000ull;
  const PartitionConfig config{PartitionId(1), 1, kFullFeatures};
  Partition* p = h.hv.create_partition(config, h.memory, h.interrupts, h.clock);
  h.vcpu.vp = p != nullptr ? p->vp(VpIndex(0)) : nullptr;
  h.core.vp = h.vcpu.vp;
}

}  // namespace
}  // namespace microhv::vmx

using namespace microhv;
using namespace microhv::vmx;

// ---------------------------------------------------------------- host entry

extern "C" uint64_t microhv_host_entry(LaunchInfo* info) {
  // This copy's own sink: the loaded image's code goes away when efi_main
  // returns to the firmware.
  log::set_sink(serial::write);
  g_info = info;
  g_host = new (g_host_storage) Host(info);
  Host& h = *g_host;
  constexpr uint64_t kEfiUnsupported = 0x8000000000000003ull;
  constexpr uint64_t kEfiDeviceError = 0x8000000000000007ull;

  uint16_t host_tr = 0;
  load_host_descriptors(info, &host_tr);
  log::info("host: resident at 0x%llx (%llu KiB), own CR3 0x%llx, GDT 0x%llx, TSS selector 0x%x, IDT 0x%llx\n",
            (unsigned long long)info->pool_base, (unsigned long long)(info->pool_size >> 10),
            (unsigned long long)info->host_cr3, (unsigned long long)info->gdt_page, host_tr,
            (unsigned long long)info->idt_page);

  h.caps = read_capabilities();
  log_capabilities(h.caps);
  const bool ia32e = (info->guest.efer & (1ull << 10)) != 0;
  const ControlSet ctl = compute_controls(h.caps, ia32e);
  if (!ctl.ok()) {
    log::error("VMX controls unsupported: missing pin=0x%x proc=0x%x proc2=0x%x exit=0x%x entry=0x%x; conflict "
               "pin=0x%x proc=0x%x entry=0x%x\n",
               ctl.pin.missing, ctl.proc.missing, ctl.proc2.missing, ctl.exit.missing, ctl.entry.missing,
               ctl.pin.conflict, ctl.proc.conflict, ctl.entry.conflict);
    restore_firmware_descriptors(info);
    return kEfiUnsupported;
  }
  log::info("VMX controls: pin=0x%x proc=0x%x proc2=0x%x exit=0x%x entry=0x%x\n", ctl.pin.value, ctl.proc.value,
            ctl.proc2.value, ctl.exit.value, ctl.entry.value);
  const uint64_t cap = h.caps.ept_vpid_cap;
  if ((cap & ept_cap::kPageWalk4) == 0 || (cap & ept_cap::kInvept) == 0 ||
      (cap & (ept_cap::kInveptSingle | ept_cap::kInveptAll)) == 0 || (cap & ept_cap::kInvvpid) == 0) {
    log::error("EPT/VPID capabilities 0x%llx lack 4-level walks, INVEPT or INVVPID\n", (unsigned long long)cap);
    restore_firmware_descriptors(info);
    return kEfiUnsupported;
  }
  h.invept_single = (cap & ept_cap::kInveptSingle) != 0;

  if (!enable_feature_control()) {
    restore_firmware_descriptors(info);
    return kEfiUnsupported;
  }

  // EPT: identity map of everything except microhv's memory.
  h.memory.layout = EptLayout{info->regions, info->region_count, info->ept_limit, info->pool_base, info->pool_size};
  if (!h.ept.init() || !build_guest_ept(h.ept, h.memory.layout)) {
    log::error("building EPT failed\n");
    restore_firmware_descriptors(info);
    return kEfiDeviceError;
  }
  h.eptp = make_eptp(h.ept.root().value(), cap);
  log::info("EPT: identity map of [0, 0x%llx) in %llu tables, microhv's 0x%llx..0x%llx not present, EPTP 0x%llx\n",
            (unsigned long long)info->ept_limit, (unsigned long long)h.ept.tables_allocated(),
            (unsigned long long)info->pool_base, (unsigned long long)(info->pool_base + info->pool_size - 1),
            (unsigned long long)h.eptp);

  // The hypercall overlay page: vmcall; ret, then int3 padding.
  auto* overlay = reinterpret_cast<uint8_t*>(info->overlay_page);
  for (uint32_t i = 0; i < kPageSize; ++i) overlay[i] = 0xCC;
  overlay[0] = 0x0F;
  overlay[1] = 0x01;
  overlay[2] = 0xC1;
  overlay[3] = 0xC3;

  // VMXON with CR0/CR4 adjusted to the fixed bits (SDM 24.8).
  const uint64_t cr0 = arch::read_cr0(), cr4 = arch::read_cr4();
  arch::write_cr0(apply_fixed(cr0, h.caps.cr0_fixed0, h.caps.cr0_fixed1));
  arch::write_cr4(apply_fixed(cr4, h.caps.cr4_fixed0, h.caps.cr4_fixed1) | kCr4Vmxe);
  const uint32_t revision = vmcs_revision(h.caps.basic);
  *reinterpret_cast<uint32_t*>(info->vmxon_page) = revision;
  *reinterpret_cast<uint32_t*>(info->vmcs_page) = revision;
  if (!check(hw::vmxon(info->vmxon_page), "VMXON")) {
    arch::write_cr4(cr4);
    restore_firmware_descriptors(info);
    return kEfiDeviceError;
  }
  log::info("VMXON ok (VMCS revision 0x%x)\n", revision);
  if (!check(hw::vmclear(info->vmcs_page), "VMCLEAR") || !check(hw::vmptrld(info->vmcs_page), "VMPTRLD")) {
    hw::vmxoff();
    arch::write_cr4(cr4);
    restore_firmware_descriptors(info);
    return kEfiDeviceError;
  }

  // The per-VP frame the exit stub saves guest GPRs into.
  h.vcpu.frame = reinterpret_cast<VcpuFrame*>(info->frame_page);
  h.vcpu.frame->host_stack_top = info->host_stack_top;
  create_partition(info);
  if (h.vcpu.vp == nullptr) {
    log::error("creating the root partition failed\n");
    hw::vmxoff();
    arch::write_cr4(cr4);
    restore_firmware_descriptors(info);
    return kEfiDeviceError;
  }

  if (!write_vmcs(info, ctl, host_tr)) {
    log::error("writing the VMCS failed (%u VMWRITE errors)\n", g_vmcs_failures);
    hw::vmxoff();
    arch::write_cr4(cr4);
    restore_firmware_descriptors(info);
    return kEfiDeviceError;
  }
  check(hw::invept(2, 0), "INVEPT (all contexts)");
  check(hw::invvpid((cap & ept_cap::kInvvpidSingle) != 0 ? 1 : 2, kVpid), "INVVPID");

  log::info("launching the firmware as guest: RIP 0x%llx RSP 0x%llx CR3 0x%llx\n",
            (unsigned long long)info->guest_rip, (unsigned long long)info->guest_rsp,
            (unsigned long long)info->guest.cr3);
  serial::flush();
  const VmxStatus s = hw::vmlaunch();
  // Only reached when VMLAUNCH failed.
  report_launch_failure(s);
  hw::vmxoff();
  arch::write_cr4(cr4);
  restore_firmware_descriptors(info);
  return kEfiDeviceError;
}

// ---------------------------------------------------------------- VM exits

extern "C" GuestRegs* microhv_vmexit(GuestRegs* regs) {
  Host& h = *g_host;
  Vcpu& v = h.vcpu;
  ++v.exits;
  regs->rsp = vmread(Field::kGuestRsp);
  const uint32_t raw = static_cast<uint32_t>(vmread(Field::kExitReason));
  const uint32_t reason = exit_reason::basic(raw);
  const uint64_t qualification = vmread(Field::kExitQualification);
  if ((raw & exit_reason::kEntryFailureBit) != 0) {
    log::error("VM entry failed: exit reason %u (%s), qualification 0x%llx\n", reason, exit_reason_name(reason),
               (unsigned long long)qualification);
    stop_guest("VM entry failed (see bochs.log / the VMCS dump for the failing check)", regs);
  }
  v.events.record_idt_vectoring(static_cast<uint32_t>(vmread(Field::kIdtVectoringInfo)),
                                static_cast<uint32_t>(vmread(Field::kIdtVectoringErrorCode)),
                                static_cast<uint32_t>(vmread(Field::kExitInstructionLength)));

  ExitContext ctx{reason, qualification, *regs, h.vmcs, h.cpu, h.core, v.events, h.caps};
  ctx.hidden_base = g_info->pool_base;
  ctx.hidden_size = g_info->pool_size;
  ctx.overlay_gpa = v.overlay_gpa;
  const ExitAction action = dispatch_exit(ctx);
  switch (action) {
    case ExitAction::kStop:
      log::error("unhandled VM exit: reason %u (%s), qualification 0x%llx, guest RIP 0x%llx\n", reason,
                 exit_reason_name(reason), (unsigned long long)qualification,
                 (unsigned long long)vmread(Field::kGuestRip));
      stop_guest(ctx.stop_reason != nullptr ? ctx.stop_reason : "unhandled exit", regs);
    case ExitAction::kAdvance:
      advance_rip();
      break;
    case ExitAction::kRetry:
      break;
  }
  vmwrite(Field::kGuestRsp, regs->rsp);
  prepare_entry(v);
  return regs;
}

extern "C" void microhv_vmresume_failed(GuestRegs* regs, uint64_t rflags) {
  const VmxStatus s = hw::status_from_flags((rflags & 1) != 0, (rflags & 0x40) != 0);
  report_vmx_failure("VMRESUME", s);
  stop_guest("VMRESUME failed", regs);
}

// ---------------------------------------------------------------- host faults

extern "C" void microhv_host_exception(HostExceptionFrame* f) {
  // Recoverable: the *_safe routines' instruction faulted (#GP).
  struct Fixup {
    const char* insn;
    const char* fixup;
  };
  const Fixup fixups[] = {{microhv_rdmsr_insn, microhv_rdmsr_fixup},
                          {microhv_wrmsr_insn, microhv_wrmsr_fixup},
                          {microhv_xsetbv_insn, microhv_xsetbv_fixup}};
  if (f->vector == vector::kGp) {
    for (const Fixup& x : fixups) {
      if (f->rip == reinterpret_cast<uint64_t>(x.insn)) {
        f->rip = reinterpret_cast<uint64_t>(x.fixup);
        return;
      }
    }
  }
  // An NMI that arrives while the host runs belongs to the guest: deliver it
  // at the next VM entry.
  if (f->vector == vector::kNmi && g_host != nullptr) {
    g_host->vcpu.events.queue_nmi();
    return;
  }
  uint64_t cr2;
  asm volatile("mov %%cr2, %0" : "=r"(cr2));
  log::error("host exception: vector %llu error 0x%llx at RIP 0x%llx (CS 0x%llx RFLAGS 0x%llx RSP 0x%llx) CR2 "
             "0x%llx\n",
             (unsigned long long)f->vector, (unsigned long long)f->error, (unsigned long long)f->rip,
             (unsigned long long)f->cs, (unsigned long long)f->rflags, (unsigned long long)f->rsp,
             (unsigned long long)cr2);
  dump_regs(f->regs);
  log::error("host stopped after an exception in microhv itself\n");
  halt_forever();
}
