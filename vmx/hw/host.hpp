// The host's state: one Host shared by all CPUs and one Vcpu per logical
// processor microhv virtualizes.
//
// Where things live. The composition root (vmx/hw/root.cpp) builds the Host
// once, on the BSP, in the only static storage of the back end, and hands
// references down: every component that needs the shared state holds a
// Host& (HwInterrupts, EptOverlays), and every CPU finds its own Vcpu
// through its GS base (current_vcpu(): %gs:0, also HOST_GS_BASE in the
// VMCS), which points back to the Host. Nothing else in vmx/hw/ is global.
//
// Per CPU (Vcpu, in the Host; its pages in microhv's pool, see
// vmx/launch.hpp): host stack, IST stack, GDT + TSS, IDT, VMXON region,
// VMCS, exit frame (guest GPRs + the VP's RemoteQueue inbox), I/O bitmap A,
// pending events. Shared: host page tables, EPT, MSR bitmap, I/O bitmap B,
// the overlay pages, the core (Hypervisor, one guest partition with one VP
// per CPU, the VMBus host's service partition, the test device), the DMA
// remapping state (units, tables, fault log; VP 0 polls it).
//
// Locks, outermost first (vmx/README.md has the whole picture):
//   Hypervisor::lock     the core's one lock (hypercalls, SynIC MSRs, testdev,
//                        VMBus host; InterruptSink::raise and the overlay
//                        calls run under it)
//   Host::ept_lock       EPT changes (overlays), taken inside it
//   SerialLog            the log sink; innermost, taken with a bound
// No lock is ever held across VM entry; RemoteQueue is lock-free.
#pragma once

#include "kernel/base/spinlock.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/services/testdev.hpp"
#include "synic/services/vmbus_host.hpp"
#include "vmx/controls.hpp"
#include "vmx/entry_prep.hpp"
#include "vmx/exits.hpp"
#include "vmx/hw/apic.hpp"
#include "vmx/hw/cpu_services.hpp"
#include "vmx/hw/dma.hpp"
#include "vmx/hw/ept.hpp"
#include "vmx/hw/log_sink.hpp"
#include "vmx/hw/memory.hpp"
#include "vmx/hw/tlb.hpp"
#include "vmx/hw/vmcs.hpp"
#include "vmx/hw/vtd_hw.hpp"
#include "vmx/injection.hpp"
#include "vmx/launch.hpp"
#include "vmx/smp.hpp"
#include "vmx/tlb_flush.hpp"
#include "vmx/vp_core.hpp"
#include "vmx/vp_cpu_state.hpp"
#include "vmx/vtd/resident.hpp"

namespace microhv::vmx::hw {

// Layout fixed by vmx/hw/entry.S: the stub saves the guest GPRs at the top
// of the host stack frame HOST_RSP points into.
struct VcpuFrame {
  GuestRegs regs;           // filled by microhv_vmexit_stub; HOST_RSP = &host_stack_top
  uint64_t host_stack_top;  // offset 128, read by the stub
  RemoteQueue remote;       // offset 136: remote.work is tested by the stub before VMRESUME
  TlbInbox tlb;             // flush requests for this VP (vmx/tlb_flush.hpp)
};
static_assert(__builtin_offsetof(VcpuFrame, host_stack_top) == 128);
static_assert(__builtin_offsetof(VcpuFrame, remote) == 136);
static_assert(sizeof(VcpuFrame) <= kPageSize, "the frame is one page (vmx/launch.hpp)");

struct Host;

struct Vcpu {
  Vcpu* gs_self = nullptr;  // the host's GS base points here: %gs:0 = this Vcpu
  Host* host = nullptr;
  CpuLaunch* launch = nullptr;
  VcpuFrame* frame = nullptr;
  uint32_t index = 0;      // VP index
  uint32_t processor = 0;  // MP services processor number
  ApicId apic_id{0};
  bool bsp = false;           // IA32_APIC_BASE.BSP on this CPU
  Vp* vp = nullptr;           // set once the CPU is a VP (published with release)
  HwVmcs vmcs;                // this CPU's current VMCS
  VpCore core;                // the core as this VP's exit handlers reach it
  PendingEvents events;       // touched by this CPU only; other CPUs use frame->remote
  EntryEventState entry;      // injection armed; cached primary controls (windows, MTF)
  uint32_t pin_controls = 0;  // cached pin-based controls (the preemption timer); 0: not read yet
  VpCpuState cpu_state;       // APIC mode, MTRRs, TSC offset...: this CPU only
  bool launched = false;      // the first VM exit has been seen
  bool io_step = false;       // step_io_natively armed (MTF)
  bool apic_warned = false;
  bool kick_warned = false;
  uint16_t host_tr = 0;
  uint64_t ept_seen = 0;  // Host::ept_generation this CPU invalidated for
  uint64_t exits = 0, kicks = 0, genuine_nmis = 0, inits = 0, sipis = 0;
  uint64_t kicks_sent_to = 0;     // kicks other CPUs sent to this VP (atomic)
  uint64_t dropped_for_sipi = 0;  // SINTs dropped while it waited for SIPI (atomic)
  uint32_t last_reason = ~0u;     // basic reason of the previous exit
  uint64_t inits_received = 0;    // INITs microhv emulated for this VP
  uint64_t inits_sent = 0;        // INIT IPIs this VP sent that microhv emulated
  uint64_t sipis_split = 0;       // broadcast SIPIs this VP sent, sent per CPU instead
  bool stale_init_warned = false;
  log::DeferredLog deferred_log;  // lines logged under Hypervisor::lock, written after it
};

// Everything with a vtable or a constructor lives here and is built with
// placement new by the composition root: global constructors never run.
struct Host {
  explicit Host(LaunchInfo& launch_info) : info(launch_info), alloc(launch_info) {}

  LaunchInfo& info;  // what the EFI side prepared (the pool, per-CPU pages)
  SerialLog log;
  IdentityPhys phys;
  PoolAllocator alloc;
  // The guest's physical address space and its EPT (built by the
  // composition root once the capabilities say which leaves exist).
  EptLayout layout;
  alignas(GuestEpt) unsigned char ept_storage[sizeof(GuestEpt)];
  GuestEpt* ept = nullptr;
  HwEptFaults ept_faults{*this};
  HwCpu cpu;
  HwGuestMemory memory;
  HwInterrupts interrupts{*this};
  TscClock clock;
  EptOverlays overlays{*this};
  HwTlb tlb{*this};
  Hypervisor hv;
  VmbusHost vmbus;
  alignas(TestDevice) unsigned char testdev_storage[sizeof(TestDevice)];
  TestDevice* testdev = nullptr;
  Partition* partition = nullptr;
  VmxCapabilities caps{};
  uint64_t eptp = 0;
  uint64_t invept_type = 0, invvpid_type = 0;  // single-context when supported
  InvvpidSupport invvpid{};                    // what remote TLB flushes may use
  bool mtf = false;                            // monitor trap flag (string I/O stepping)
  // The VMX-preemption timer (PINBASED_CTLS allowed-1 bit 6) and its rate
  // (IA32_VMX_MISC[4:0]): the host timer behind the synthetic timers.
  bool preemption_timer = false;
  uint8_t preemption_timer_rate = 0;
  uint32_t cpu_count = 0;
  Vcpu vcpus[kMaxCpus];
  SpinLock ept_lock;
  // The microhv page behind each overlay (OverlayId), 0: none.
  uint64_t overlay_backing[kOverlayCount] = {};
  uint64_t ept_generation = 0;           // bumped on every EPT change after launch
  Optional<Gpa> apic_page;               // the xAPIC page, read-only in EPT (writes emulated)
  log::RateLimit passthrough_logged{1};  // testdev port accesses passed to the real port
  log::RateLimit denied_logged{16};      // guest accesses EPT denies (#GP)
  log::RateLimit refused_logged{16};     // MSR accesses and APIC page forms the policy refuses
  // DMA remapping (vmx/hw/dma.hpp): the state in the pool, polled by VP 0
  // only, and this copy's register accessors.
  vtd::ResidentVtd* vtd = nullptr;
  vtd::MmioRegisterMap vtd_map{&host_delay_us};
};

// This CPU's Vcpu; nullptr before setup_cpu_locals ran on it.
inline Vcpu* current_vcpu() {
  Vcpu* v;
  asm volatile("mov %%gs:0, %0" : "=r"(v));
  return v;
}

// Logs the sixteen general-purpose registers.
void dump_registers(const GuestRegs& regs);

// Halts this CPU for good (interrupts off), after draining the serial port.
[[noreturn]] void halt_forever();

// Stops the guest (vmx/smp.hpp, stop_partition): logs why, the registers
// (when given) and a VMCS dump, marks the partition stopped, kicks the other
// VPs (each parks at its next entry) and parks this CPU. microhv stays up.
[[noreturn]] void stop_guest(Vcpu& v, const char* why, const GuestRegs* regs);

}  // namespace microhv::vmx::hw
