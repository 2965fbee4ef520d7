// The host side of microhv's VT-x back end. Runs in the resident copy of the
// image (vmx/start_hw.cpp made it), on microhv's own stacks, page tables,
// GDTs, TSSs and IDTs, with interrupts off -- never on anything the firmware
// or the OS owns. Every logical processor microhv virtualizes runs this code
// for its own VP: the BSP first (microhv_host_entry, which also builds what
// all CPUs share: EPT, the partition, the VMBus host, the test device), then
// each AP (microhv_ap_host_entry). Each brings up VMX on itself, builds its
// VMCS from the firmware state captured on it, launches the firmware as the
// guest and from then on handles its own VM exits (vmx/exits.cpp decides;
// this file does the VMCS, the injection, the cross-CPU kicks and the core
// glue).
//
// Per CPU (struct Vcpu, reached through the GS base in the host): host
// stack, IST stack, GDT + TSS, IDT, VMXON region, VMCS, exit frame (guest
// GPRs + the VP's RemoteQueue inbox), I/O bitmap A, pending events.
// Shared: host page tables, EPT, MSR bitmap, I/O bitmap B, the hypercall
// overlay page, the core (Hypervisor, one partition with one VP per CPU).
//
// Locks (see also vmx/smp.hpp and kernel/hypervisor.hpp), outermost first:
//   Hypervisor::lock     the core's one lock (hypercalls, SynIC MSRs, testdev,
//                        VMBus host; InterruptSink::raise and the overlay
//                        calls run under it)
//   Host::ept_lock       EPT changes (overlays), taken inside it
//   g_log_lock           the serial sink; innermost, taken with a bound
// Neither ept_lock nor Hypervisor::lock is ever held across VM entry (both
// are scoped to the handler that takes them); RemoteQueue is lock-free.
#include <new>

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/descriptors.hpp"
#include "arch/msr.hpp"
#include "arch/serial.hpp"
#include "arch/vmx/vmcs_names.hpp"
#include "arch/x86.hpp"
#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/base/log.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/services/testdev.hpp"
#include "synic/services/vmbus_host.hpp"
#include "vmx/controls.hpp"
#include "vmx/ept.hpp"
#include "vmx/exits.hpp"
#include "vmx/hw/instructions.hpp"
#include "vmx/init_sipi.hpp"
#include "vmx/injection.hpp"
#include "vmx/launch.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/smp.hpp"

extern "C" {
extern char microhv_vmexit_stub[];
extern char microhv_entry_check[], microhv_entry_vmresume[];
extern char microhv_exception_stubs[];
extern char microhv_rdmsr_insn[], microhv_rdmsr_fixup[];
extern char microhv_wrmsr_insn[], microhv_wrmsr_fixup[];
extern char microhv_xsetbv_insn[], microhv_xsetbv_fixup[];
int microhv_rdmsr_safe(uint32_t msr, uint64_t* value);
int microhv_wrmsr_safe(uint32_t msr, uint64_t value);
int microhv_xsetbv_safe(uint32_t index, uint64_t value);
microhv::vmx::GuestRegs* microhv_vmexit(microhv::vmx::GuestRegs* regs);
microhv::vmx::GuestRegs* microhv_reenter(microhv::vmx::GuestRegs* regs);
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

constexpr uint64_t kEfiUnsupported = 0x8000000000000003ull;
constexpr uint64_t kEfiDeviceError = 0x8000000000000007ull;
constexpr uint64_t kEfiNotReady = 0x8000000000000006ull;

constexpr PartitionId kGuestPartition{1};
constexpr PartitionId kVmbusPartition{2};

// ---------------------------------------------------------------- log sink

// All CPUs log through one UART: a lock keeps lines whole. Bounded, so a
// CPU that stopped while holding it cannot silence the others.
uint32_t g_log_lock = 0;

void locked_serial_write(const char* text, size_t len) {
  bool locked = false;
  for (uint32_t i = 0; i < (1u << 22); ++i) {
    if (__atomic_load_n(&g_log_lock, __ATOMIC_RELAXED) == 0 &&
        __atomic_exchange_n(&g_log_lock, 1u, __ATOMIC_ACQUIRE) == 0) {
      locked = true;
      break;
    }
    arch::pause();
  }
  serial::write(text, len);
  if (locked) __atomic_store_n(&g_log_lock, 0u, __ATOMIC_RELEASE);
}

// ---------------------------------------------------------------- per-VP state

struct VcpuFrame {
  GuestRegs regs;           // filled by microhv_vmexit_stub; HOST_RSP = &host_stack_top
  uint64_t host_stack_top;  // offset 128, read by the stub
  RemoteQueue remote;       // offset 136: remote.work is tested by the stub before VMRESUME
};
static_assert(__builtin_offsetof(VcpuFrame, host_stack_top) == 128);
static_assert(__builtin_offsetof(VcpuFrame, remote) == 136);

struct Vcpu;
void forward_testdev_write(Vcpu& v, uint32_t value);

class CoreGlue final : public HvCore {
 public:
  Vp* vp = nullptr;
  Vcpu* owner = nullptr;
  bool cpuid(uint32_t leaf, CpuidRegs* out) override {
    return hyperv_cpuid(vp->partition(), leaf, out);
  }
  MsrResult read_msr(uint32_t msr, uint64_t* value) override {
    return read_synthetic_msr(*vp, msr, value);
  }
  MsrResult write_msr(uint32_t msr, uint64_t value) override {
    return write_synthetic_msr(*vp, msr, value);
  }
  HypercallOutcome hypercall(const HypercallRegs& regs) override {
    return handle_hypercall(*vp, regs);
  }
  void testdev_write(uint32_t value) override { forward_testdev_write(*owner, value); }
};

struct Vcpu {
  Vcpu* gs_self = nullptr;  // the host's GS base points here: %gs:0 = this Vcpu
  CpuLaunch* launch = nullptr;
  VcpuFrame* frame = nullptr;
  uint32_t index = 0;      // VP index
  uint32_t processor = 0;  // MP services processor number
  uint32_t apic_id = 0;
  bool bsp = false;  // IA32_APIC_BASE.BSP on this CPU
  Vp* vp = nullptr;  // set once the CPU is a VP (published with release)
  CoreGlue core;
  PendingEvents events;          // touched by this CPU only; other CPUs use frame->remote
  uint32_t proc_controls = 0;    // cached primary controls (interrupt window, MTF)
  bool launched = false;         // the first VM exit has been seen
  bool injection_armed = false;  // an event is in the VM-entry fields for this entry
  bool io_step = false;          // step_io_natively armed (MTF)
  bool apic_warned = false;
  bool kick_warned = false;
  uint16_t host_tr = 0;
  uint32_t vmcs_failures = 0;
  uint64_t ept_seen = 0;  // Host::ept_generation this CPU invalidated for
  uint64_t exits = 0, kicks = 0, genuine_nmis = 0, inits = 0, sipis = 0;
  uint64_t kicks_sent_to = 0;     // kicks other CPUs sent to this VP (atomic)
  uint64_t dropped_for_sipi = 0;  // SINTs dropped while it waited for SIPI (atomic)
  uint32_t last_reason = ~0u;     // basic reason of the previous exit
  uint64_t inits_received = 0;    // INITs microhv emulated for this VP
  uint64_t inits_sent = 0;        // INIT IPIs this VP sent that microhv emulated
  bool stale_init_warned = false;
};

Vcpu* current_vcpu() {
  Vcpu* v;
  asm volatile("mov %%gs:0, %0" : "=r"(v));
  return v;
}

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
    log::error("%s of field 0x%x failed: VMfailValid, VM-instruction error %llu (%s)\n", what,
               field, static_cast<unsigned long long>(e),
               vm_instruction_error_name(static_cast<uint32_t>(e)));
  } else {
    log::error("%s failed: VMfailValid, VM-instruction error %llu (%s)\n", what,
               static_cast<unsigned long long>(e),
               vm_instruction_error_name(static_cast<uint32_t>(e)));
  }
}

class HwVmcs final : public VmcsAccess {
 public:
  uint64_t read(Field f) override {
    uint64_t v = 0;
    const VmxStatus s = hw::vmread(f, &v);
    if (s != VmxStatus::kOk) {
      ++current_vcpu()->vmcs_failures;
      report_vmx_failure("VMREAD", s, encoding(f));
    }
    return v;
  }
  void write(Field f, uint64_t value) override {
    const VmxStatus s = hw::vmwrite(f, value);
    if (s != VmxStatus::kOk) {
      ++current_vcpu()->vmcs_failures;
      report_vmx_failure("VMWRITE", s, encoding(f));
    }
  }
};

// ---------------------------------------------------------------- memory

class IdentityPhys final : public PhysAccess {
 public:
  uint64_t* table(Hpa page) override { return reinterpret_cast<uint64_t*>(page.value()); }
};

// Pages for page tables come from the pool's tail (already zeroed). Only
// the BSP's setup and the overlay update (under Host::ept_lock) allocate.
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

// GuestMemory on the identity map, refusing anything that is not guest RAM
// (microhv's memory and MMIO included).
class HwGuestMemory final : public GuestMemory {
 public:
  EptLayout layout{};
  bool is_ram(Gpa gpa, uint64_t len) const override {
    return range_is_guest_ram(layout, gpa.value(), len);
  }
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

// ---------------------------------------------------------------- CPU services

class HwCpu final : public CpuServices {
 public:
  CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) override {
    const arch::CpuidResult r = arch::cpuid(leaf, subleaf);
    return CpuidRegs{r.eax, r.ebx, r.ecx, r.edx};
  }
  bool rdmsr(uint32_t msr, uint64_t* value) override { return microhv_rdmsr_safe(msr, value) == 0; }
  bool wrmsr(uint32_t msr, uint64_t value) override { return microhv_wrmsr_safe(msr, value) == 0; }
  bool xsetbv(uint32_t index, uint64_t value) override {
    return microhv_xsetbv_safe(index, value) == 0;
  }
  void wbinvd() override { asm volatile("wbinvd" : : : "memory"); }
  uint32_t io_in(uint16_t port, uint8_t size) override;
  void io_out(uint16_t port, uint8_t size, uint32_t value) override;
  bool step_io_natively(uint16_t port) override;
  bool end_io_step() override;
  void apic_write(uint32_t offset, uint32_t value) override;
  uint32_t apic_read(uint32_t offset) override;
  void x2apic_icr_write(uint64_t value) override;
  void reset_debug_registers() override {
    const uint64_t zero = 0, dr6 = kDr6AfterInit;
    asm volatile("mov %0, %%dr0; mov %0, %%dr1; mov %0, %%dr2; mov %0, %%dr3; mov %1, %%dr6"
                 :
                 : "r"(zero), "r"(dr6));
  }
};

// ---------------------------------------------------------------- interrupts

void deliver_local(Vcpu& v, uint8_t vector, bool auto_eoi);
bool send_kick(Vcpu& target);

// InterruptSink::raise(vp, vector, auto_eoi), called by the core with
// Hypervisor::lock held, on whichever CPU the core runs:
//  - target = this CPU: AutoEOI SINTs are queued for VMCS injection at this
//    entry; non-AutoEOI SINTs become a self-IPI through the guest's own local
//    APIC now (see vmx/README.md).
//  - target = another CPU: the vector goes into that VP's inbox and the CPU
//    is kicked with an NMI IPI, so it exits and does the above itself,
//    right away (vmx/smp.hpp). A target waiting for SIPI gets nothing.
class HwInterrupts final : public InterruptSink {
 public:
  void raise(VpIndex vp, uint8_t vector, bool auto_eoi) override;
};

// The guest-physical overlays the core places (kernel/platform/overlays.hpp):
// microhv-owned pages mapped read+execute in EPT over the guest's RAM.
class EptOverlays final : public GuestPhysicalOverlays {
 public:
  bool write(OverlayId id, uint32_t offset, const void* data, uint32_t len) override;
  OverlayStatus place(OverlayId id, Gpa gpa) override;
  void remove(OverlayId id) override;
};

class TscClock final : public ReferenceClock {
 public:
  uint64_t tsc0 = 0, hz = 1;
  uint64_t now_100ns() override {
    const uint64_t d = arch::rdtsc() - tsc0;
    return (d / hz) * 10000000ull + ((d % hz) * 10000000ull) / hz;
  }
};

// Everything with a vtable or a constructor lives here and is built with
// placement new in microhv_host_entry: global constructors never run.
struct Host {
  explicit Host(LaunchInfo* info) : alloc(info), ept(TableFormat::kEpt, alloc, phys, 3) {}
  IdentityPhys phys;
  PoolAllocator alloc;
  PageTables ept;
  HwVmcs vmcs;
  HwCpu cpu;
  HwGuestMemory memory;
  HwInterrupts interrupts;
  TscClock clock;
  EptOverlays overlays;
  Hypervisor hv;
  VmbusHost vmbus;
  alignas(TestDevice) unsigned char testdev_storage[sizeof(TestDevice)];
  TestDevice* testdev = nullptr;
  Partition* partition = nullptr;
  VmxCapabilities caps{};
  uint64_t eptp = 0;
  bool invept_single = false;
  bool invvpid_single = false;
  bool mtf = false;  // monitor trap flag available (string I/O stepping)
  uint32_t cpu_count = 0;
  Vcpu vcpus[kMaxCpus];
  SpinLock ept_lock;
  uint64_t overlay_gpa = ~0ull;  // where the hypercall page is mapped, ~0 = nowhere
  uint64_t ept_generation = 0;   // bumped on every EPT change after launch
  uint32_t testdev_writes = 0, testdev_passthrough = 0;
  uint64_t apic_page = ~0ull;  // the xAPIC page, read-only in EPT (writes emulated)
};

Host* g_host = nullptr;
LaunchInfo* g_info = nullptr;
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
      log::info("  %s (0x%04x) = 0x%llx\n", kDumpFields[i].name, encoding(kDumpFields[i].field),
                static_cast<unsigned long long>(v));
    } else {
      log::info("  %s (0x%04x) = <unsupported>\n", kDumpFields[i].name,
                encoding(kDumpFields[i].field));
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
  const Vcpu* v = current_vcpu();
  log::error("guest stopped on cpu %u (VP %u): %s\n", v->processor, v->index, why);
  if (regs != nullptr) dump_regs(*regs);
  dump_vmcs();
  log::error("guest stopped: %s (microhv halts cpu %u; other CPUs go on)\n", why, v->processor);
  halt_forever();
}

uint64_t vmread(Field f) {
  return g_host->vmcs.read(f);
}
void vmwrite(Field f, uint64_t v) {
  g_host->vmcs.write(f, v);
}

// ---------------------------------------------------------------- EPT / overlay

MapAttr identity_attr(uint64_t gpa) {
  const HwGuestMemory& m = g_host->memory;
  if (gpa >= m.layout.hidden_base && gpa - m.layout.hidden_base < m.layout.hidden_size)
    return kNotPresent;
  if ((gpa & ~kPageMask) == g_host->apic_page) return MapAttr{kPermR, arch::MemType::kUc};
  if (range_is_guest_ram(m.layout, gpa, kPageSize)) return MapAttr{kPermRwx, arch::MemType::kWb};
  return MapAttr{kPermRwx, arch::MemType::kUc};
}

void invalidate_ept() {
  Host& h = *g_host;
  const VmxStatus s = hw::invept(h.invept_single ? 1 : 2, h.eptp);
  if (s != VmxStatus::kOk) report_vmx_failure("INVEPT", s);
}

// Makes every other VP's CPU invalidate its EPT-derived translations before
// it enters the guest again (it exits now if it is in the guest).
void shoot_down_ept(Vcpu& self) {
  Host& h = *g_host;
  self.ept_seen = __atomic_add_fetch(&h.ept_generation, 1, __ATOMIC_SEQ_CST);
  invalidate_ept();
  for (uint32_t i = 0; i < h.cpu_count; ++i) {
    Vcpu& t = h.vcpus[i];
    if (&t == &self || __atomic_load_n(&t.vp, __ATOMIC_ACQUIRE) == nullptr) continue;
    if (t.frame->remote.poke()) send_kick(t);
  }
}

// The hypercall page (TLFS 3.13) is an overlay: a microhv page, mapped
// read+execute at the GPA the core chose. Guest writes to it exit (EPT
// violation) and get #GP; the RAM underneath is untouched and comes back
// when the overlay moves or is removed. The EPT is shared by all VPs:
// changes are serialised by ept_lock and every CPU invalidates before its
// next entry. The core calls these under Hypervisor::lock, which is taken
// before ept_lock, never after.
bool EptOverlays::write(OverlayId id, uint32_t offset, const void* data, uint32_t len) {
  if (id != OverlayId::kHypercallPage || offset > kPageSize || len > kPageSize - offset) {
    return false;
  }
  __builtin_memcpy(reinterpret_cast<uint8_t*>(g_info->overlay_page) + offset, data, len);
  return true;
}

// Maps the overlay at `want` (~0: nowhere), restoring the identity mapping
// where it was.
OverlayStatus move_hypercall_overlay(uint64_t want) {
  Host& h = *g_host;
  Vcpu& self = *current_vcpu();
  LockGuard guard(h.ept_lock);
  if (want == h.overlay_gpa) return OverlayStatus::kPlaced;
  const uint64_t old = h.overlay_gpa;
  if (old != ~0ull) h.ept.map(old, old, kPageSize, identity_attr(old));
  uint64_t now = want;
  OverlayStatus status = OverlayStatus::kPlaced;
  if (want != ~0ull) {
    if (identity_attr(want).perms == 0) {
      log::error("hypercall page at GPA 0x%llx refused: microhv memory\n",
                 static_cast<unsigned long long>(want));
      now = ~0ull;
      status = OverlayStatus::kRefused;
    } else if (!h.ept.map(want, g_info->overlay_page, kPageSize,
                          MapAttr{kPermR | kPermX, arch::MemType::kWb})) {
      log::error("hypercall page at GPA 0x%llx: EPT map failed\n",
                 static_cast<unsigned long long>(want));
      status = OverlayStatus::kFailed;
    }
  }
  __atomic_store_n(&h.overlay_gpa, now, __ATOMIC_RELEASE);
  shoot_down_ept(self);
  if (now != ~0ull) {
    log::info("hypercall page: overlay mapped read+execute at GPA 0x%llx\n",
              static_cast<unsigned long long>(now));
  } else if (old != ~0ull) {
    log::info("hypercall page: overlay at GPA 0x%llx removed\n",
              static_cast<unsigned long long>(old));
  }
  return status;
}

OverlayStatus EptOverlays::place(OverlayId id, Gpa gpa) {
  if (id != OverlayId::kHypercallPage) return OverlayStatus::kRefused;
  return move_hypercall_overlay(gpa.page_base().value());
}

void EptOverlays::remove(OverlayId id) {
  if (id == OverlayId::kHypercallPage) move_hypercall_overlay(~0ull);
}

// ---------------------------------------------------------------- local APIC

namespace apic = arch::apic;
namespace icr = arch::apic::icr;

volatile uint32_t* xapic_reg(uint64_t apic_base, uint32_t offset) {
  return reinterpret_cast<volatile uint32_t*>((apic_base & ~0xFFFull) + offset);
}

void xapic_wait_idle(uint64_t apic_base) {
  volatile uint32_t* icr_low = xapic_reg(apic_base, apic::kIcrLow);
  for (int i = 0; i < 100000 && (*icr_low & icr::kDeliveryPending) != 0; ++i) arch::pause();
}

// The guest owns the local APIC (no APIC virtualization), so these go
// through its registers in whatever mode it chose; in xAPIC mode the ICR
// high word the guest may have written already is put back.
void send_self_ipi(Vcpu& v, uint8_t vector) {
  const uint64_t apic_base = arch::rdmsr(arch::msr::kApicBase);
  if ((apic_base & apic::base::kEnable) == 0) {
    // The guest disabled its APIC: nothing can deliver or EOI a fixed
    // interrupt. Fall back to VMCS injection.
    if (!v.apic_warned)
      log::error("local APIC disabled; SINT vector 0x%x injected without APIC state\n", vector);
    v.apic_warned = true;
    v.events.queue_interrupt(vector);
    return;
  }
  if ((apic_base & apic::base::kX2apic) != 0) {
    arch::wrmsr(apic::kX2apicSelfIpiMsr, vector);  // x2APIC SELF IPI register
    return;
  }
  // xAPIC: ICR low with destination shorthand "self", fixed, edge.
  xapic_wait_idle(apic_base);
  *xapic_reg(apic_base, apic::kIcrLow) = icr::kShorthandSelf | icr::kAssert | vector;
}

// Kicks the CPU of `target` out of the guest: an NMI IPI (NMI exiting is
// on), physical destination = its APIC id. False when this CPU cannot send
// IPIs (its guest disabled the APIC); the target then picks its inbox up at
// its next exit.
bool send_kick(Vcpu& target) {
  Vcpu& self = *current_vcpu();
  const uint64_t apic_base = arch::rdmsr(arch::msr::kApicBase);
  const uint64_t kicks = __atomic_add_fetch(&target.kicks_sent_to, 1, __ATOMIC_RELAXED);
  if ((apic_base & apic::base::kEnable) == 0) {
    if (!self.kick_warned) {
      log::error(
          "cpu %u: local APIC disabled by the guest: cannot kick cpu %u; it takes its interrupts "
          "at its next "
          "exit\n",
          self.processor, target.processor);
    }
    self.kick_warned = true;
    return false;
  }
  if ((apic_base & apic::base::kX2apic) != 0) {
    arch::wrmsr(apic::kX2apicIcrMsr,
                (static_cast<uint64_t>(target.apic_id) << 32) | icr::kNmi | icr::kAssert);
  } else {
    volatile uint32_t* icr_high = xapic_reg(apic_base, apic::kIcrHigh);
    xapic_wait_idle(apic_base);
    const uint32_t saved_high = *icr_high;
    *icr_high = target.apic_id << apic::kXapicDestShift;
    *xapic_reg(apic_base, apic::kIcrLow) = icr::kNmi | icr::kAssert;
    xapic_wait_idle(apic_base);
    *icr_high = saved_high;
  }
  if (kicks == 1) {
    log::info("cpu %u: first kick to cpu %u: NMI IPI to APIC ID %u\n", self.processor,
              target.processor, target.apic_id);
  }
  return true;
}

void deliver_local(Vcpu& v, uint8_t vector, bool auto_eoi) {
  if (auto_eoi) {
    v.events.queue_interrupt(vector);
  } else {
    send_self_ipi(v, vector);
  }
}

void HwInterrupts::raise(VpIndex vp, uint8_t vector, bool auto_eoi) {
  Host& h = *g_host;
  Vcpu* target = vp.value() < h.cpu_count ? &h.vcpus[vp.value()] : nullptr;
  if (target == nullptr || __atomic_load_n(&target->vp, __ATOMIC_ACQUIRE) == nullptr) {
    log::error("interrupt 0x%x for VP %u dropped: no such VP\n", vector, vp.value());
    return;
  }
  if (target == current_vcpu()) {
    deliver_local(*target, vector, auto_eoi);
    return;
  }
  RemoteQueue& q = target->frame->remote;
  if (remote_delivery(__atomic_load_n(&q.activity, __ATOMIC_ACQUIRE)) == RemoteDelivery::kDrop) {
    if (__atomic_fetch_add(&target->dropped_for_sipi, 1, __ATOMIC_RELAXED) == 0) {
      log::info(
          "interrupt 0x%x for VP %u dropped: its CPU waits for SIPI (further drops not logged)\n",
          vector, vp.value());
    }
    return;
  }
  if (q.post(vector, auto_eoi)) send_kick(*target);
}

// ---------------------------------------------------------------- guest APIC writes

uint64_t tsc_after_us(uint64_t us) {
  const uint64_t hz = g_info->tsc_hz != 0 ? g_info->tsc_hz : 1000000000ull;
  return arch::rdtsc() + hz / 1000000 * us;
}

void write_icr_physical(uint64_t apic_base, bool x2apic, uint32_t low, uint32_t dest) {
  if (x2apic) {
    arch::wrmsr(apic::kX2apicIcrMsr, (static_cast<uint64_t>(dest) << 32) | low);
    return;
  }
  volatile uint32_t* icr_high = xapic_reg(apic_base, apic::kIcrHigh);
  xapic_wait_idle(apic_base);
  const uint32_t saved_high = *icr_high;
  *icr_high = dest << apic::kXapicDestShift;
  *xapic_reg(apic_base, apic::kIcrLow) = low;
  xapic_wait_idle(apic_base);
  *icr_high = saved_high;
}

// An INIT IPI from the guest to VP `t`: t resets itself to the INIT state
// before its next entry (prepare_entry) and waits for SIPI there; this CPU
// waits (bounded) until it does, so that the SIPI the guest sends next
// finds it waiting. A VP already waiting for SIPI is left alone.
void emulate_init(Vcpu& self, Vcpu& t) {
  RemoteQueue& q = t.frame->remote;
  ++self.inits_sent;
  if (&t == &self) {
    q.post_init();  // applied by prepare_entry at the end of this exit
    return;
  }
  if (__atomic_load_n(&q.activity, __ATOMIC_ACQUIRE) == activity::kWaitForSipi &&
      __atomic_load_n(&q.init_request, __ATOMIC_ACQUIRE) == 0) {
    return;
  }
  if (q.post_init()) send_kick(t);
  constexpr uint64_t kWaitUs = 100000;
  const uint64_t deadline = tsc_after_us(kWaitUs);
  while (__atomic_load_n(&q.init_request, __ATOMIC_ACQUIRE) != 0 ||
         __atomic_load_n(&q.activity, __ATOMIC_ACQUIRE) != activity::kWaitForSipi) {
    if (static_cast<int64_t>(arch::rdtsc() - deadline) > 0) {
      log::error(
          "cpu %u: INIT IPI to cpu %u (VP %u): it did not reach wait-for-SIPI within %llu ms "
          "(activity %u, "
          "kick %u, work %u, %llu exits); a SIPI sent now may be lost\n",
          self.processor, t.processor, t.index, (unsigned long long)(kWaitUs / 1000),
          __atomic_load_n(&q.activity, __ATOMIC_ACQUIRE),
          __atomic_load_n(&q.kick_sent, __ATOMIC_ACQUIRE),
          __atomic_load_n(&q.work, __ATOMIC_ACQUIRE), (unsigned long long)t.exits);
      return;
    }
    arch::pause();
  }
  if (self.inits_sent == 1) {
    log::info(
        "cpu %u: INIT IPI to cpu %u emulated: VP %u reset to the INIT state, waits for SIPI "
        "(first; later ones "
        "are not logged)\n",
        self.processor, t.processor, t.index);
  }
}

// A guest write to its ICR (xAPIC ICR low, or the x2APIC ICR MSR): see
// decide_icr in vmx/smp.hpp.
void guest_icr_write(uint32_t low, uint32_t dest, bool x2apic, uint64_t x2apic_value) {
  Host& h = *g_host;
  Vcpu& self = *current_vcpu();
  const uint64_t apic_base = arch::rdmsr(arch::msr::kApicBase);
  uint32_t vp_apic[kMaxCpus];
  uint32_t vps = 0;
  while (vps < h.cpu_count && __atomic_load_n(&h.vcpus[vps].vp, __ATOMIC_ACQUIRE) != nullptr) {
    vp_apic[vps] = h.vcpus[vps].apic_id;
    ++vps;
  }
  const bool natives = vps < h.cpu_count || g_info->native_count != 0;
  const IcrDecision d = decide_icr(low, dest, x2apic, vp_apic, vps, self.index, natives);
  switch (d.action) {
    case IcrAction::kPassThrough:
      if (x2apic) {
        arch::wrmsr(apic::kX2apicIcrMsr, x2apic_value);
      } else {
        *xapic_reg(apic_base, apic::kIcrLow) = low;
      }
      return;
    case IcrAction::kDrop:
      return;
    case IcrAction::kEmulateInit:
      break;
  }
  for (uint32_t vp = 0; vp < vps; ++vp) {
    if ((d.vps >> vp) & 1) emulate_init(self, h.vcpus[vp]);
  }
  if (d.natives_too) {
    // CPUs that are not VPs get the INIT for real, one at a time.
    const uint32_t init =
        icr::kInit | icr::kAssert | (low & (icr::kLevelTriggered | icr::kDeliveryModeMask));
    for (uint32_t i = vps; i < h.cpu_count; ++i) {
      if (h.vcpus[i].apic_id != self.apic_id)
        write_icr_physical(apic_base, x2apic, init, h.vcpus[i].apic_id);
    }
    for (uint32_t i = 0; i < g_info->native_count; ++i) {
      write_icr_physical(apic_base, x2apic, init, g_info->native_apic_ids[i]);
    }
  }
}

void HwCpu::apic_write(uint32_t offset, uint32_t value) {
  const uint64_t apic_base = arch::rdmsr(arch::msr::kApicBase);
  if (offset == apic::kIcrLow) {
    guest_icr_write(value, *xapic_reg(apic_base, apic::kIcrHigh) >> apic::kXapicDestShift, false,
                    0);
    return;
  }
  *xapic_reg(apic_base, offset) = value;
}

uint32_t HwCpu::apic_read(uint32_t offset) {
  return *xapic_reg(arch::rdmsr(arch::msr::kApicBase), offset);
}

void HwCpu::x2apic_icr_write(uint64_t value) {
  guest_icr_write(static_cast<uint32_t>(value), static_cast<uint32_t>(value >> 32), true, value);
}

// ---------------------------------------------------------------- port I/O

uint32_t HwCpu::io_in(uint16_t port, uint8_t size) {
  if (__atomic_fetch_add(&g_host->testdev_passthrough, 1u, __ATOMIC_RELAXED) == 0) {
    log::info(
        "testdev: %u-byte IN from port 0x%x passed through (first; later ones are not logged)\n",
        size, port);
  }
  switch (size) {
    case 1:
      return arch::inb(port);
    case 2:
      return arch::inw(port);
    default:
      return arch::inl(port);
  }
}

void HwCpu::io_out(uint16_t port, uint8_t size, uint32_t value) {
  if (__atomic_fetch_add(&g_host->testdev_passthrough, 1u, __ATOMIC_RELAXED) == 0) {
    log::info(
        "testdev: %u-byte OUT 0x%x to port 0x%x passed through (first; later ones are not "
        "logged)\n",
        size, value, port);
  }
  switch (size) {
    case 1:
      arch::outb(port, static_cast<uint8_t>(value));
      break;
    case 2:
      arch::outw(port, static_cast<uint16_t>(value));
      break;
    default:
      arch::outl(port, value);
      break;
  }
}

void set_io_intercept(uint64_t bitmap_a, uint16_t port, bool on) {
  auto* bits = reinterpret_cast<uint8_t*>(bitmap_a);
  if (on) {
    bits[port / 8] |= static_cast<uint8_t>(1u << (port % 8));
  } else {
    bits[port / 8] &= static_cast<uint8_t>(~(1u << (port % 8)));
  }
}

// The one intercepted port (the test device) stops exiting on this CPU
// (its own I/O bitmap A) for exactly one guest instruction.
bool HwCpu::step_io_natively(uint16_t port) {
  Vcpu& v = *current_vcpu();
  if (!g_host->mtf) return false;
  (void)port;
  set_io_intercept(v.launch->io_bitmap_a, TestDevice::kIoPort, false);
  v.io_step = true;
  v.proc_controls |= proc::kMonitorTrapFlag;
  vmwrite(Field::kProcControls, v.proc_controls);
  return true;
}

bool HwCpu::end_io_step() {
  Vcpu& v = *current_vcpu();
  if (!v.io_step) return false;
  if (g_info->testdev) set_io_intercept(v.launch->io_bitmap_a, TestDevice::kIoPort, true);
  v.io_step = false;
  v.proc_controls &= ~proc::kMonitorTrapFlag;
  vmwrite(Field::kProcControls, v.proc_controls);
  return true;
}

void forward_testdev_write(Vcpu& v, uint32_t value) {
  Host& h = *g_host;
  if (h.testdev == nullptr) return;
  const uint32_t n = __atomic_fetch_add(&h.testdev_writes, 1u, __ATOMIC_RELAXED);
  if (n == 0) {
    log::info(
        "testdev: 32-bit OUT 0x%08x to port 0x%x from VP %u (first; later ones are not logged)\n",
        value, TestDevice::kIoPort, v.index);
  }
  h.testdev->write(value);
}

// ---------------------------------------------------------------- entry prep

// Runs with host interrupts off right before every VM entry (and again from
// microhv_reenter when entry.S finds the inbox non-empty at the last
// moment): takes what other CPUs posted, invalidates EPT if another CPU
// changed it, picks the event to inject, and publishes the activity state
// the guest enters with (senders drop SINTs for a wait-for-SIPI VP).
void prepare_entry(Vcpu& v) {
  Host& h = *g_host;
  const uint64_t gen = __atomic_load_n(&h.ept_generation, __ATOMIC_ACQUIRE);
  if (gen != v.ept_seen) {
    v.ept_seen = gen;
    invalidate_ept();
  }
  if (v.frame->remote.take_init()) {
    // An INIT IPI another VP (or this one) sent: reset now, like the INIT
    // exit would; nothing may be injected into wait-for-SIPI.
    apply_init_state(h.vmcs, h.cpu, h.caps, v.bsp, v.frame->regs, v.events);
    v.injection_armed = false;
    vmwrite(Field::kEntryInterruptionInfo, 0);
    ++v.inits_received;
  }
  uint32_t act = static_cast<uint32_t>(vmread(Field::kGuestActivityState));
  const RemoteQueue::Drained in = v.frame->remote.drain();
  if (in.any) {
    if (remote_delivery(act) == RemoteDelivery::kQueue) {
      for_each_vector(in.auto_eoi, [&](uint8_t vec) { v.events.queue_interrupt(vec); });
      for_each_vector(in.apic, [&](uint8_t vec) { send_self_ipi(v, vec); });
    } else if (__atomic_fetch_add(&v.dropped_for_sipi, 1, __ATOMIC_RELAXED) == 0) {
      log::info("cpu %u: SINT vectors queued for VP %u dropped: it waits for SIPI\n", v.processor,
                v.index);
    }
    v.events.nmis += in.nmis;
    v.genuine_nmis += in.nmis;
  }
  uint32_t intr = static_cast<uint32_t>(vmread(Field::kGuestInterruptibility));
  if ((intr & interruptibility::kBlockingBySmi) != 0) {
    // Never set outside SMM, where microhv never runs a guest (SDM 27.3.4);
    // Bochs 2.7 reports it after wait-for-SIPI, and VM entry would fail.
    intr &= ~interruptibility::kBlockingBySmi;
    vmwrite(Field::kGuestInterruptibility, intr);
  }
  bool window;
  if (!v.injection_armed) {
    const GuestInterruptState s{vmread(Field::kGuestRflags), intr, act};
    const InjectionDecision d = decide_injection(v.events, s);
    if (d.inject) {
      uint32_t info = d.intr_info;
      // With unrestricted guest in real mode no error code may be delivered.
      if ((vmread(Field::kGuestCr0) & arch::cr0::kPe) == 0) info &= ~intr_info::kDeliverErrorCode;
      vmwrite(Field::kEntryInterruptionInfo, info);
      if ((info & intr_info::kDeliverErrorCode) != 0)
        vmwrite(Field::kEntryExceptionErrorCode, d.error_code);
      vmwrite(Field::kEntryInstructionLength, d.instruction_length);
      if (d.wake) {
        vmwrite(Field::kGuestActivityState, activity::kActive);
        act = activity::kActive;
      }
      v.injection_armed = true;
    } else {
      vmwrite(Field::kEntryInterruptionInfo, 0);
    }
    window = d.interrupt_window;
  } else {
    // An event is already armed for this entry (re-entry path): keep it and
    // ask for a window for whatever else is pending.
    window = v.events.any_interrupt();
  }
  // NMI-window exiting (virtual NMIs): an NMI waiting for the guest's IRET.
  const bool nmi_window =
      v.events.nmis > 0 && act != activity::kWaitForSipi && act != activity::kShutdown;
  uint32_t want = window ? (v.proc_controls | proc::kInterruptWindowExiting)
                         : (v.proc_controls & ~proc::kInterruptWindowExiting);
  want = nmi_window ? (want | proc::kNmiWindowExiting) : (want & ~proc::kNmiWindowExiting);
  if (want != v.proc_controls) {
    vmwrite(Field::kProcControls, want);
    v.proc_controls = want;
  }
  __atomic_store_n(&v.frame->remote.activity, act, __ATOMIC_RELEASE);
}

// NMIs are blocked after an NMI-caused VM exit until an IRET or the next VM
// entry (and Bochs 2.7 leaves them blocked across VM entries after NMI and
// SIPI exits). An IRET to the next instruction unblocks them now, so the
// next kick reaches this CPU in the host (host_nmi) or in the guest.
void unblock_host_nmis() {
  uint64_t ss = 0, cs = 0;
  asm volatile("mov %%ss, %0" : "=r"(ss));
  asm volatile("mov %%cs, %0" : "=r"(cs));
  asm volatile(
      "mov %%rsp, %%rax\n\t"
      "pushq %[ss]\n\t"
      "pushq %%rax\n\t"
      "pushfq\n\t"
      "pushq %[cs]\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "iretq\n"
      "1:"
      :
      : [ss] "r"(ss), [cs] "r"(cs)
      : "rax", "memory", "cc");
}

void advance_rip() {
  const uint64_t rip = vmread(Field::kGuestRip) + vmread(Field::kExitInstructionLength);
  vmwrite(Field::kGuestRip, rip);
  const uint64_t intr = vmread(Field::kGuestInterruptibility);
  if ((intr & (interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs)) != 0) {
    vmwrite(Field::kGuestInterruptibility,
            intr & ~static_cast<uint64_t>(interruptibility::kBlockingBySti |
                                          interruptibility::kBlockingByMovSs));
  }
}

// ---------------------------------------------------------------- host setup

// This CPU's identity: GS base -> its Vcpu (also HOST_GS_BASE), its frame.
void setup_cpu_locals(Vcpu& v, CpuLaunch* cpu) {
  v.gs_self = &v;
  v.launch = cpu;
  v.index = cpu->index;
  v.processor = cpu->processor;
  v.core.owner = &v;
  v.frame = new (reinterpret_cast<void*>(cpu->frame_page)) VcpuFrame{};
  v.frame->host_stack_top = cpu->host_stack_top;
  v.bsp = (arch::rdmsr(arch::msr::kApicBase) & apic::base::kBsp) != 0;
  // The APIC id as this CPU reports it (x2APIC id from CPUID 0xB when
  // available); MP services' number is only a cross-check.
  uint32_t apic_id = arch::cpuid(1).ebx >> 24;
  if (arch::cpuid(0).eax >= 0xB && arch::cpuid(0xB, 0).ebx != 0) apic_id = arch::cpuid(0xB, 0).edx;
  if (apic_id != cpu->apic_id) {
    log::error("cpu %u: APIC ID %u, but MP services reported %u; using %u\n", cpu->processor,
               apic_id, cpu->apic_id, apic_id);
  }
  v.apic_id = apic_id;
  arch::wrmsr(arch::msr::kGsBase, reinterpret_cast<uint64_t>(&v.gs_self));
}

void load_host_descriptors(Vcpu& v, CpuLaunch* cpu) {
  // GDT: the firmware's entries on this CPU (so CS and the data selectors
  // keep their meaning) plus this CPU's TSS. IDT: microhv's handlers with
  // this CPU's CS.
  auto* gdt = reinterpret_cast<uint64_t*>(cpu->gdt_page);
  const auto* fw = reinterpret_cast<const uint64_t*>(cpu->guest.gdtr_base);
  const uint32_t fw_entries = (static_cast<uint32_t>(cpu->guest.gdtr_limit) + 1) / 8;
  for (uint32_t i = 0; i < fw_entries && i < 500; ++i) gdt[i] = fw[i];
  const uint32_t tss_index = (fw_entries + 1) & ~1u;  // 16-byte aligned slot
  auto* tss = reinterpret_cast<arch::Tss64*>(cpu->tss_page);
  tss->ist[1] = cpu->ist_stack_top;
  tss->rsp[0] = cpu->host_stack_top;
  tss->iomap_base = sizeof(arch::Tss64);
  arch::make_tss_descriptor(cpu->tss_page, sizeof(arch::Tss64) - 1, &gdt[tss_index]);
  const arch::DescriptorTableRegister gdtr{static_cast<uint16_t>((tss_index + 2) * 8 - 1),
                                           cpu->gdt_page};
  asm volatile("lgdt %0" : : "m"(gdtr) : "memory");
  v.host_tr = static_cast<uint16_t>(tss_index * 8);
  asm volatile("ltr %0" : : "r"(v.host_tr) : "memory");

  uint16_t cs = 0;
  asm volatile("mov %%cs, %0" : "=r"(cs));
  auto* idt = reinterpret_cast<arch::IdtGate*>(cpu->idt_page);
  const uint64_t stubs = reinterpret_cast<uint64_t>(microhv_exception_stubs);
  for (unsigned vec = 0; vec < 256; ++vec) {
    // NMI, #DF and #MC on their own stack: they can hit at any point.
    const uint8_t ist = (vec == 2 || vec == 8 || vec == 18) ? 1 : 0;
    idt[vec] = arch::make_interrupt_gate(stubs + 16 * vec, cs, ist);
  }
  const arch::DescriptorTableRegister idtr{256 * 16 - 1, cpu->idt_page};
  asm volatile("lidt %0" : : "m"(idtr) : "memory");
}

// Undoes setup_cpu_locals/load_host_descriptors before returning to the
// firmware unvirtualized (microhv's TSS stays in its own GDT copy; TR is
// restored lazily by whoever loads the next TR).
void restore_firmware_descriptors(CpuLaunch* cpu) {
  const arch::DescriptorTableRegister gdtr{cpu->guest.gdtr_limit, cpu->guest.gdtr_base};
  const arch::DescriptorTableRegister idtr{cpu->guest.idtr_limit, cpu->guest.idtr_base};
  asm volatile("lgdt %0" : : "m"(gdtr) : "memory");
  asm volatile("lidt %0" : : "m"(idtr) : "memory");
  arch::wrmsr(arch::msr::kGsBase, cpu->guest.gs_base);
}

VmxCapabilities read_capabilities() {
  VmxCapabilities c{};
  c.basic = arch::rdmsr(arch::msr::kVmxBasic);
  c.pinbased = arch::rdmsr(arch::msr::kVmxPinbased);
  c.procbased = arch::rdmsr(arch::msr::kVmxProcbased);
  c.exit = arch::rdmsr(arch::msr::kVmxExit);
  c.entry = arch::rdmsr(arch::msr::kVmxEntry);
  c.misc = arch::rdmsr(arch::msr::kVmxMisc);
  c.cr0_fixed0 = arch::rdmsr(arch::msr::kVmxCr0Fixed0);
  c.cr0_fixed1 = arch::rdmsr(arch::msr::kVmxCr0Fixed1);
  c.cr4_fixed0 = arch::rdmsr(arch::msr::kVmxCr4Fixed0);
  c.cr4_fixed1 = arch::rdmsr(arch::msr::kVmxCr4Fixed1);
  if ((c.basic & kBasicTrueControls) != 0) {
    c.true_pinbased = arch::rdmsr(arch::msr::kVmxTruePinbased);
    c.true_procbased = arch::rdmsr(arch::msr::kVmxTrueProcbased);
    c.true_exit = arch::rdmsr(arch::msr::kVmxTrueExit);
    c.true_entry = arch::rdmsr(arch::msr::kVmxTrueEntry);
  }
  if (control_allowed(c.procbased, proc::kActivateSecondary)) {
    c.procbased2 = arch::rdmsr(arch::msr::kVmxProcbased2);
    c.ept_vpid_cap = arch::rdmsr(arch::msr::kVmxEptVpidCap);
  }
  return c;
}

void log_capabilities(const VmxCapabilities& c) {
  log::info("VMX: basic=0x%016llx pin=0x%016llx proc=0x%016llx exit=0x%016llx entry=0x%016llx\n",
            (unsigned long long)c.basic, (unsigned long long)c.pinbased,
            (unsigned long long)c.procbased, (unsigned long long)c.exit,
            (unsigned long long)c.entry);
  log::info("VMX: true pin=0x%016llx proc=0x%016llx exit=0x%016llx entry=0x%016llx\n",
            (unsigned long long)c.true_pinbased, (unsigned long long)c.true_procbased,
            (unsigned long long)c.true_exit, (unsigned long long)c.true_entry);
  log::info("VMX: proc2=0x%016llx ept_vpid=0x%016llx misc=0x%016llx\n",
            (unsigned long long)c.procbased2, (unsigned long long)c.ept_vpid_cap,
            (unsigned long long)c.misc);
  log::info("VMX: cr0 fixed0=0x%llx fixed1=0x%llx cr4 fixed0=0x%llx fixed1=0x%llx\n",
            (unsigned long long)c.cr0_fixed0, (unsigned long long)c.cr0_fixed1,
            (unsigned long long)c.cr4_fixed0, (unsigned long long)c.cr4_fixed1);
}

// IA32_FEATURE_CONTROL is per CPU: every CPU locks its own.
bool enable_feature_control(const Vcpu& v) {
  const uint64_t fc = arch::rdmsr(arch::msr::kFeatureControl);
  constexpr uint64_t kLock = arch::msr::feature_control::kLock;
  constexpr uint64_t kOutsideSmx = arch::msr::feature_control::kVmxOutsideSmx;
  if ((fc & kLock) != 0) {
    if ((fc & kOutsideSmx) == 0) {
      log::error(
          "cpu %u: IA32_FEATURE_CONTROL=0x%llx is locked with VMX outside SMX disabled: cannot use "
          "VT-x\n",
          v.processor, static_cast<unsigned long long>(fc));
      return false;
    }
    return true;
  }
  arch::wrmsr(arch::msr::kFeatureControl, fc | kLock | kOutsideSmx);
  if (v.index == 0) {
    log::info("IA32_FEATURE_CONTROL 0x%llx -> 0x%llx (locked, VMX outside SMX)\n",
              static_cast<unsigned long long>(fc),
              static_cast<unsigned long long>(arch::rdmsr(arch::msr::kFeatureControl)));
  }
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

uint16_t vpid_of(const Vcpu& v) {
  return static_cast<uint16_t>(1 + v.index);
}

bool write_vmcs(Vcpu& v, CpuLaunch* cpu, const ControlSet& ctl) {
  Host& h = *g_host;
  const GuestStart& g = cpu->guest;
  const VmxCapabilities& caps = h.caps;
  const uint32_t failures_before = v.vmcs_failures;

  // Controls.
  vmwrite(Field::kPinControls, ctl.pin.value);
  vmwrite(Field::kProcControls, ctl.proc.value);
  vmwrite(Field::kProcControls2, ctl.proc2.value);
  vmwrite(Field::kExitControls, ctl.exit.value);
  vmwrite(Field::kEntryControls, ctl.entry.value);
  v.proc_controls = ctl.proc.value;
  vmwrite(Field::kExceptionBitmap, 0);
  vmwrite(Field::kPfErrorCodeMask, 0);
  vmwrite(Field::kPfErrorCodeMatch, 0);
  vmwrite(Field::kCr3TargetCount, 0);
  vmwrite(Field::kExitMsrStoreCount, 0);
  vmwrite(Field::kExitMsrLoadCount, 0);
  vmwrite(Field::kEntryMsrLoadCount, 0);
  vmwrite(Field::kEntryInterruptionInfo, 0);
  vmwrite(Field::kMsrBitmap, g_info->msr_bitmap);
  vmwrite(Field::kIoBitmapA, cpu->io_bitmap_a);
  vmwrite(Field::kIoBitmapB, g_info->io_bitmap_b);
  vmwrite(Field::kEptPointer, h.eptp);
  vmwrite(Field::kVpid, vpid_of(v));
  vmwrite(Field::kVmcsLinkPointer, ~0ull);
  vmwrite(Field::kCr0Mask, guest_cr0_mask(caps, true));
  vmwrite(Field::kCr0ReadShadow, g.cr0);
  vmwrite(Field::kCr4Mask, guest_cr4_mask(caps));
  vmwrite(Field::kCr4ReadShadow, g.cr4);

  // Host state: microhv's own CR3, this CPU's GDT, TSS, IDT, stack and GS.
  vmwrite(Field::kHostCr0, arch::read_cr0());
  vmwrite(Field::kHostCr3, arch::read_cr3());
  vmwrite(Field::kHostCr4, arch::read_cr4());
  vmwrite(Field::kHostCsSel, read_selector_cs());
  vmwrite(Field::kHostSsSel, 0);
  vmwrite(Field::kHostDsSel, 0);
  vmwrite(Field::kHostEsSel, 0);
  vmwrite(Field::kHostFsSel, 0);
  vmwrite(Field::kHostGsSel, 0);
  vmwrite(Field::kHostTrSel, v.host_tr);
  vmwrite(Field::kHostFsBase, 0);
  vmwrite(Field::kHostGsBase, reinterpret_cast<uint64_t>(&v.gs_self));
  vmwrite(Field::kHostTrBase, cpu->tss_page);
  vmwrite(Field::kHostGdtrBase, cpu->gdt_page);
  vmwrite(Field::kHostIdtrBase, cpu->idt_page);
  vmwrite(Field::kHostSysenterCs, 0);
  vmwrite(Field::kHostSysenterEsp, 0);
  vmwrite(Field::kHostSysenterEip, 0);
  vmwrite(Field::kHostEfer, arch::rdmsr(arch::msr::kEfer));
  vmwrite(Field::kHostPat, arch::rdmsr(arch::msr::kPat));
  vmwrite(Field::kHostRsp, reinterpret_cast<uint64_t>(&v.frame->host_stack_top));
  vmwrite(Field::kHostRip, reinterpret_cast<uint64_t>(microhv_vmexit_stub));

  // Guest state: the firmware on this CPU exactly as it was in
  // microhv_virtualize.
  vmwrite(Field::kGuestCr0, guest_cr0(caps, g.cr0, true));
  vmwrite(Field::kGuestCr3, g.cr3);
  vmwrite(Field::kGuestCr4, g.cr4 | caps.cr4_fixed0);
  vmwrite(Field::kGuestDr7, g.dr7);
  vmwrite(Field::kGuestRsp, cpu->guest_rsp);
  vmwrite(Field::kGuestRip, cpu->guest_rip);
  vmwrite(Field::kGuestRflags, cpu->guest_rflags);
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
  } const segs[] = {{Field::kGuestEsSel, g.es},    {Field::kGuestCsSel, g.cs},
                    {Field::kGuestSsSel, g.ss},    {Field::kGuestDsSel, g.ds},
                    {Field::kGuestFsSel, g.fs},    {Field::kGuestGsSel, g.gs},
                    {Field::kGuestLdtrSel, g.ldtr}};
  for (const auto& s : segs)
    write_guest_segment(s.field, arch::decode_segment(gdt, g.gdtr_limit, s.selector));
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
  return v.vmcs_failures == failures_before;
}

void create_partition(LaunchInfo* info) {
  Host& h = *g_host;
  h.clock.tsc0 = arch::rdtsc();
  h.clock.hz = info->tsc_hz != 0 ? info->tsc_hz : 1000000000ull;
  // One VP now (the BSP's); each AP adds its own at its first VM exit, so
  // the VP count is always the number of CPUs running as VPs.
  const PartitionConfig config{kGuestPartition, 1, kFullFeatures};
  h.partition = h.hv.create_partition(config, h.memory, h.interrupts, h.clock, h.overlays);
  if (h.partition == nullptr) return;
  Vcpu& v = h.vcpus[0];
  v.core.vp = h.partition->vp(VpIndex(0));
  __atomic_store_n(&v.vp, v.core.vp, __ATOMIC_RELEASE);
  // The built-in VMBus host: a service partition with connections 4 and 1
  // in the guest partition, so a Linux guest's hv_vmbus can negotiate. Its
  // log lines go to the same serial sink.
  if (h.vmbus.attach(h.hv, *h.partition, kVmbusPartition)) {
    log::info("vmbus: VMBus host attached: service partition %llu, guest connections %u and %u\n",
              static_cast<unsigned long long>(kVmbusPartition.value()), vmbus::kConnectionIdV5,
              vmbus::kConnectionIdLegacy);
  } else {
    log::error("vmbus: attaching the VMBus host to partition %llu failed\n",
               static_cast<unsigned long long>(kGuestPartition.value()));
  }
  if (info->testdev) {
    h.testdev = new (h.testdev_storage) TestDevice(*h.partition);
    log::info(
        "testdev: on: 32-bit OUT to port 0x%x goes to the test device (I/O bitmap), other accesses "
        "pass "
        "through\n",
        TestDevice::kIoPort);
  }
}

// VMXON, VMCS and VMLAUNCH on the calling CPU; shared by the BSP and APs.
// Returns only on failure, with everything undone.
uint64_t launch_this_cpu(Vcpu& v, CpuLaunch* cpu) {
  Host& h = *g_host;
  const bool ia32e = (cpu->guest.efer & arch::efer::kLma) != 0;
  const ControlSet ctl = compute_controls(h.caps, ia32e);
  if (!ctl.ok()) {
    log::error(
        "cpu %u: VMX controls unsupported: missing pin=0x%x proc=0x%x proc2=0x%x exit=0x%x "
        "entry=0x%x; "
        "conflict pin=0x%x proc=0x%x entry=0x%x\n",
        v.processor, ctl.pin.missing, ctl.proc.missing, ctl.proc2.missing, ctl.exit.missing,
        ctl.entry.missing, ctl.pin.conflict, ctl.proc.conflict, ctl.entry.conflict);
    restore_firmware_descriptors(cpu);
    return kEfiUnsupported;
  }
  if (v.index == 0) {
    log::info("VMX controls: pin=0x%x proc=0x%x proc2=0x%x exit=0x%x entry=0x%x\n", ctl.pin.value,
              ctl.proc.value, ctl.proc2.value, ctl.exit.value, ctl.entry.value);
  }
  if (!enable_feature_control(v)) {
    restore_firmware_descriptors(cpu);
    return kEfiUnsupported;
  }

  // VMXON with CR0/CR4 adjusted to the fixed bits (SDM 24.8).
  const uint64_t cr0 = arch::read_cr0(), cr4 = arch::read_cr4();
  arch::write_cr0(apply_fixed(cr0, h.caps.cr0_fixed0, h.caps.cr0_fixed1));
  // CR4.OSXSAVE in the host too when the CPU has XSAVE: microhv executes the
  // guest's XSETBV itself, which is #UD without it (the firmware may not
  // have set it; XCR0 is not switched between guest and host).
  const uint64_t osxsave =
      (arch::cpuid(1).ecx & arch::cpuid1_ecx::kXsave) != 0 ? arch::cr4::kOsxsave : 0;
  arch::write_cr4(apply_fixed(cr4 | osxsave, h.caps.cr4_fixed0, h.caps.cr4_fixed1) |
                  arch::cr4::kVmxe);
  const uint32_t revision = vmcs_revision(h.caps.basic);
  *reinterpret_cast<uint32_t*>(cpu->vmxon_page) = revision;
  *reinterpret_cast<uint32_t*>(cpu->vmcs_page) = revision;
  auto undo = [&](uint64_t status, bool vmxon) {
    if (vmxon) check(hw::vmxoff(), "VMXOFF");
    arch::write_cr4(cr4);
    restore_firmware_descriptors(cpu);
    return status;
  };
  if (!check(hw::vmxon(cpu->vmxon_page), "VMXON")) return undo(kEfiDeviceError, false);
  if (v.index == 0) log::info("VMXON ok (VMCS revision 0x%x)\n", revision);
  if (!check(hw::vmclear(cpu->vmcs_page), "VMCLEAR") ||
      !check(hw::vmptrld(cpu->vmcs_page), "VMPTRLD")) {
    return undo(kEfiDeviceError, true);
  }
  if (!write_vmcs(v, cpu, ctl)) {
    log::error("cpu %u: writing the VMCS failed (%u VMWRITE errors)\n", v.processor,
               v.vmcs_failures);
    return undo(kEfiDeviceError, true);
  }
  check(hw::invept(2, 0), "INVEPT (all contexts)");
  check(hw::invvpid(h.invvpid_single ? 1 : 2, vpid_of(v)), "INVVPID");
  v.ept_seen = __atomic_load_n(&h.ept_generation, __ATOMIC_ACQUIRE);

  if (v.index == 0) {
    log::info("launching the firmware as guest: RIP 0x%llx RSP 0x%llx CR3 0x%llx\n",
              (unsigned long long)cpu->guest_rip, (unsigned long long)cpu->guest_rsp,
              (unsigned long long)cpu->guest.cr3);
  } else {
    log::info(
        "cpu %u: VMXON ok; launching the firmware's AP code as guest (VP %u): RIP 0x%llx RSP "
        "0x%llx\n",
        v.processor, v.index, (unsigned long long)cpu->guest_rip,
        (unsigned long long)cpu->guest_rsp);
  }
  serial::flush();
  const VmxStatus s = hw::vmlaunch();
  // Only reached when VMLAUNCH failed.
  report_vmx_failure("VMLAUNCH", s);
  if (s == VmxStatus::kFailValid) dump_vmcs();
  log::error("cpu %u: VMLAUNCH failed; this CPU goes back to the firmware unvirtualized\n",
             v.processor);
  return undo(kEfiDeviceError, true);
}

// The first VM exit on a CPU proves its VMLAUNCH worked: an AP becomes a VP
// of the partition only now (VP index = its slot, which is the next one
// because APs are brought up one at a time), so vp_count always equals the
// number of CPUs running as VPs.
void first_exit(Vcpu& v, const GuestRegs* regs) {
  Host& h = *g_host;
  v.launched = true;
  bool ok = v.vp != nullptr;
  uint32_t count = 0;
  if (!ok) {
    LockGuard guard(h.hv.lock);
    count = h.partition->vp_count();
    if (count == v.index && h.partition->set_vp_count(v.index + 1)) {
      v.core.vp = h.partition->vp(VpIndex(v.index));
      __atomic_store_n(&v.vp, v.core.vp, __ATOMIC_RELEASE);
      ok = true;
    }
  }
  if (!ok) {
    log::error("cpu %u: cannot become VP %u (the partition has %u VPs)\n", v.processor, v.index,
               count);
    stop_guest("no VP for this CPU", regs);
  }
  log::info("cpu %u: VMLAUNCH ok, VP %u (APIC ID %u)\n", v.processor, v.index, v.apic_id);
}

void log_exit_events(Vcpu& v, const ExitContext& ctx) {
  if (ctx.kicked && ++v.kicks == 1) {
    log::info("cpu %u: first kick taken (NMI exit); VP %u drains its inbox before entry\n",
              v.processor, v.index);
  }
  if (ctx.reason == exit_reason::kExceptionOrNmi && !ctx.kicked && ctx.stop_reason == nullptr) {
    if (++v.genuine_nmis == 1)
      log::info("cpu %u: genuine NMI: re-injected into the guest\n", v.processor);
  }
  if (ctx.reason == exit_reason::kInit) ++v.inits;  // logged at the SIPI: INIT must be handled fast
  if (ctx.reason == exit_reason::kSipi && ++v.sipis == 1) {
    log::info(
        "cpu %u: INIT/SIPI: VP %u restarted in real mode at 0x%llx (SIPI vector 0x%llx; %llu INIT "
        "exit(s) so "
        "far; later restarts are not logged)\n",
        v.processor, v.index, (unsigned long long)((ctx.qualification & 0xFF) << 12),
        (unsigned long long)(ctx.qualification & 0xFF), (unsigned long long)v.inits);
  }
}

}  // namespace
}  // namespace microhv::vmx

using namespace microhv;
using namespace microhv::vmx;

// ---------------------------------------------------------------- host entry

// The BSP: everything shared, then its own VMX.
extern "C" uint64_t microhv_host_entry(CpuLaunch* cpu) {
  // This copy's own sink: the loaded image's code goes away when efi_main
  // returns to the firmware.
  log::set_sink(locked_serial_write);
  LaunchInfo* info = reinterpret_cast<LaunchInfo*>(cpu->info);
  g_info = info;
  g_host = new (g_host_storage) Host(info);
  Host& h = *g_host;
  h.cpu_count = info->cpu_count;
  Vcpu& v = h.vcpus[0];

  setup_cpu_locals(v, cpu);
  load_host_descriptors(v, cpu);
  log::info(
      "host: resident at 0x%llx (%llu KiB), own CR3 0x%llx, GDT 0x%llx, TSS selector 0x%x, IDT "
      "0x%llx; %u "
      "CPU slot(s)\n",
      (unsigned long long)info->pool_base, (unsigned long long)(info->pool_size >> 10),
      (unsigned long long)info->host_cr3, (unsigned long long)cpu->gdt_page, v.host_tr,
      (unsigned long long)cpu->idt_page, h.cpu_count);

  h.caps = read_capabilities();
  log_capabilities(h.caps);
  const uint64_t cap = h.caps.ept_vpid_cap;
  if ((cap & ept_cap::kPageWalk4) == 0 || (cap & ept_cap::kInvept) == 0 ||
      (cap & (ept_cap::kInveptSingle | ept_cap::kInveptAll)) == 0 ||
      (cap & ept_cap::kInvvpid) == 0) {
    log::error("EPT/VPID capabilities 0x%llx lack 4-level walks, INVEPT or INVVPID\n",
               (unsigned long long)cap);
    restore_firmware_descriptors(cpu);
    return kEfiUnsupported;
  }
  h.invept_single = (cap & ept_cap::kInveptSingle) != 0;
  h.invvpid_single = (cap & ept_cap::kInvvpidSingle) != 0;
  const bool use_true = (h.caps.basic & kBasicTrueControls) != 0;
  h.mtf =
      control_allowed(use_true ? h.caps.true_procbased : h.caps.procbased, proc::kMonitorTrapFlag);

  // EPT: identity map of everything except microhv's memory.
  h.memory.layout = EptLayout{info->regions, info->region_count, info->ept_limit, info->pool_base,
                              info->pool_size};
  if (!h.ept.init() || !build_guest_ept(h.ept, h.memory.layout)) {
    log::error("building EPT failed\n");
    restore_firmware_descriptors(cpu);
    return kEfiDeviceError;
  }
  h.eptp = make_eptp(h.ept.root().value(), cap);
  log::info(
      "EPT: identity map of [0, 0x%llx) in %llu tables, microhv's 0x%llx..0x%llx not present, EPTP "
      "0x%llx\n",
      (unsigned long long)info->ept_limit, (unsigned long long)h.ept.tables_allocated(),
      (unsigned long long)info->pool_base,
      (unsigned long long)(info->pool_base + info->pool_size - 1), (unsigned long long)h.eptp);

  // The local APIC page: read-only, so that guest writes to it exit and an
  // INIT IPI to a VP can be emulated instead of sent (vmx/smp.hpp).
  const uint64_t apic_base = arch::rdmsr(arch::msr::kApicBase);
  if ((apic_base & apic::base::kEnable) != 0) {
    h.apic_page = apic_base & ~0xFFFull & ((1ull << info->phys_addr_bits) - 1);
    if (h.apic_page < info->ept_limit &&
        h.ept.map(h.apic_page, h.apic_page, kPageSize, identity_attr(h.apic_page))) {
      log::info(
          "EPT: local APIC page 0x%llx read-only: guest xAPIC writes are emulated; x2APIC ICR "
          "writes exit "
          "(MSR bitmap)\n",
          (unsigned long long)h.apic_page);
    } else {
      log::error(
          "EPT: cannot map the local APIC page 0x%llx read-only: INIT IPIs are sent as written\n",
          (unsigned long long)h.apic_page);
      h.apic_page = ~0ull;
    }
  }

  create_partition(info);
  if (v.vp == nullptr) {
    log::error("creating the root partition failed\n");
    restore_firmware_descriptors(cpu);
    return kEfiDeviceError;
  }
  return launch_this_cpu(v, cpu);
}

// An AP, started by the BSP (then already a guest) through MP services.
extern "C" uint64_t microhv_ap_host_entry(CpuLaunch* cpu) {
  if (g_host == nullptr || cpu->index == 0 || cpu->index >= g_host->cpu_count) return kEfiNotReady;
  Vcpu& v = g_host->vcpus[cpu->index];
  setup_cpu_locals(v, cpu);
  load_host_descriptors(v, cpu);
  return launch_this_cpu(v, cpu);
}

// ---------------------------------------------------------------- VM exits

extern "C" GuestRegs* microhv_vmexit(GuestRegs* regs) {
  Host& h = *g_host;
  Vcpu& v = *current_vcpu();
  ++v.exits;
  v.injection_armed = false;  // a VM exit invalidates the VM-entry event fields
  if (!v.launched) first_exit(v, regs);
  regs->rsp = vmread(Field::kGuestRsp);
  const uint32_t raw = static_cast<uint32_t>(vmread(Field::kExitReason));
  const uint32_t reason = exit_reason::basic(raw);
  const uint64_t qualification = vmread(Field::kExitQualification);
  if ((raw & exit_reason::kEntryFailureBit) != 0) {
    log::error("VM entry failed: exit reason %u (%s), qualification 0x%llx\n", reason,
               exit_reason_name(reason), (unsigned long long)qualification);
    stop_guest("VM entry failed (see bochs.log / the VMCS dump for the failing check)", regs);
  }
  v.events.record_idt_vectoring(static_cast<uint32_t>(vmread(Field::kIdtVectoringInfo)),
                                static_cast<uint32_t>(vmread(Field::kIdtVectoringErrorCode)),
                                static_cast<uint32_t>(vmread(Field::kExitInstructionLength)));

  ExitContext ctx{reason, qualification, *regs, h.vmcs, h.cpu, v.core, v.events, h.caps};
  ctx.hidden_base = g_info->pool_base;
  ctx.hidden_size = g_info->pool_size;
  ctx.overlay_gpa = __atomic_load_n(&h.overlay_gpa, __ATOMIC_ACQUIRE);
  ctx.remote = &v.frame->remote;
  ctx.bsp = v.bsp;
  ctx.testdev = g_info->testdev;
  ctx.apic_page = h.apic_page;
  ctx.memory = &h.memory;
  const ExitAction action = dispatch_exit(ctx);
  log_exit_events(v, ctx);
  if (reason == exit_reason::kInit && v.last_reason == exit_reason::kSipi && !v.stale_init_warned) {
    // An INIT exit right after the SIPI exit, before the AP ran: Bochs 2.7
    // keeps a delivered INIT pending (stlintel/Bochs#11, fixed later), so
    // an AP that took INIT while running never gets past its SIPI there.
    // APs that halt with interrupts off are parked in wait-for-SIPI, where
    // INIT is blocked, which avoids this for the usual INIT-SIPI-SIPI.
    v.stale_init_warned = true;
    log::error(
        "cpu %u: INIT again at the SIPI start (a pending INIT the CPU did not consume: Bochs 2.7 "
        "bug); VP %u "
        "waits for another SIPI\n",
        v.processor, v.index);
  }
  if (reason == exit_reason::kExceptionOrNmi || reason == exit_reason::kSipi) unblock_host_nmis();
  v.last_reason = reason;
  switch (action) {
    case ExitAction::kStop:
      log::error("unhandled VM exit: reason %u (%s), qualification 0x%llx, guest RIP 0x%llx\n",
                 reason, exit_reason_name(reason), (unsigned long long)qualification,
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

// entry.S found the inbox non-empty right before VMRESUME: drain it again.
// No exit happened, so there is nothing to handle and RSP/RIP stay as they are.
extern "C" GuestRegs* microhv_reenter(GuestRegs* regs) {
  prepare_entry(*current_vcpu());
  return regs;
}

extern "C" void microhv_vmresume_failed(GuestRegs* regs, uint64_t rflags) {
  const VmxStatus s = hw::status_from_flags((rflags & 1) != 0, (rflags & 0x40) != 0);
  report_vmx_failure("VMRESUME", s);
  stop_guest("VMRESUME failed", regs);
}

// ---------------------------------------------------------------- host faults

extern "C" void microhv_host_exception(HostExceptionFrame* f) {
  // Recoverable: the *_safe routines' instruction faulted (#GP; #UD for
  // XSETBV without CR4.OSXSAVE).
  struct Fixup {
    const char* insn;
    const char* fixup;
  };
  const Fixup fixups[] = {{microhv_rdmsr_insn, microhv_rdmsr_fixup},
                          {microhv_wrmsr_insn, microhv_wrmsr_fixup},
                          {microhv_xsetbv_insn, microhv_xsetbv_fixup}};
  if (f->vector == vector::kGp || f->vector == vector::kUd) {
    for (const Fixup& x : fixups) {
      if (f->rip == reinterpret_cast<uint64_t>(x.insn)) {
        f->rip = reinterpret_cast<uint64_t>(x.fixup);
        return;
      }
    }
  }
  // An NMI while the host runs (NMI exiting only covers the guest): a kick
  // or a genuine NMI for the guest, both handled before the next entry
  // (vmx/smp.hpp, host_nmi). No logging here: the interrupted code may hold
  // the log lock.
  if (f->vector == vector::kNmi) {
    Vcpu* v = current_vcpu();
    if (v != nullptr && v->frame != nullptr) {
      f->rip = host_nmi(v->frame->remote, f->rip, reinterpret_cast<uint64_t>(microhv_entry_check),
                        reinterpret_cast<uint64_t>(microhv_entry_vmresume))
                   .rip;
    }
    return;
  }
  uint64_t cr2;
  asm volatile("mov %%cr2, %0" : "=r"(cr2));
  log::error(
      "host exception: vector %llu error 0x%llx at RIP 0x%llx (CS 0x%llx RFLAGS 0x%llx RSP 0x%llx) "
      "CR2 "
      "0x%llx\n",
      (unsigned long long)f->vector, (unsigned long long)f->error, (unsigned long long)f->rip,
      (unsigned long long)f->cs, (unsigned long long)f->rflags, (unsigned long long)f->rsp,
      (unsigned long long)cr2);
  dump_regs(f->regs);
  log::error("host stopped after an exception in microhv itself\n");
  halt_forever();
}
