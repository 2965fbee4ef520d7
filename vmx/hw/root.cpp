// The composition root of the host side: the one place that builds the
// shared host state and wires the hypervisor together. It holds the only
// static storage of the back end (the Host); everything else gets
// references handed down from here, and each CPU finds its Vcpu (and
// through it the Host) via its GS base.
//
// microhv_host_entry runs on the BSP, in the resident copy, on microhv's own
// stack and page tables: it builds the Host, the guest's EPT, the guest
// partition and microhv's services (the VMBus host, the test device), then
// launches the firmware as the guest on this CPU. microhv_ap_host_entry runs
// on each AP later (the BSP is a guest by then) and only launches.
#include <new>

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/msr.hpp"
#include "arch/mtrr.hpp"
#include "vmx/features.hpp"
#include "vmx/hw/cpu_setup.hpp"
#include "vmx/hw/host.hpp"
#include "vmx/hw/launch.hpp"
#include "vmx/msr_policy.hpp"

namespace microhv::vmx::hw {
namespace {

constexpr PartitionId kGuestPartition{1};
constexpr PartitionId kVmbusPartition{2};

// The back end's only static storage. Global constructors never run in
// microhv: the Host is built with placement new by microhv_host_entry.
alignas(Host) unsigned char g_host_storage[sizeof(Host)];
Host* g_host = nullptr;  // set once the BSP built it; read by microhv_ap_host_entry only

// This CPU's deferred log lines (log::hold): the Vcpu its GS base names.
// The base is read from the MSR and checked against the Vcpu array instead
// of dereferencing %gs:0, so a CPU whose GS base is not (yet, or no longer)
// microhv's logs directly and never reads through the firmware's base.
log::DeferredLog* deferred_log_of_this_cpu() {
  Vcpu* const first = reinterpret_cast<Host*>(g_host_storage)->vcpus;
  const uint64_t base = arch::rdmsr(arch::msr::kGsBase);
  const uint64_t offset = base - reinterpret_cast<uint64_t>(first);
  if (base < reinterpret_cast<uint64_t>(first) || offset >= sizeof(Vcpu) * kMaxCpus ||
      offset % sizeof(Vcpu) != 0) {
    return nullptr;
  }
  Vcpu& v = first[offset / sizeof(Vcpu)];
  return v.gs_self == &v ? &v.deferred_log : nullptr;
}

// EPT/VPID features microhv cannot do without, and the optional ones.
bool adopt_capabilities(Host& h) {
  h.caps = read_capabilities();
  log_capabilities(h.caps);
  const uint64_t cap = h.caps.ept_vpid_cap;
  if ((cap & ept_cap::kPageWalk4) == 0 || (cap & ept_cap::kInvept) == 0 ||
      (cap & (ept_cap::kInveptSingle | ept_cap::kInveptAll)) == 0 ||
      (cap & ept_cap::kInvvpid) == 0) {
    log::error("EPT/VPID capabilities 0x%llx lack 4-level walks, INVEPT or INVVPID\n",
               (unsigned long long)cap);
    return false;
  }
  h.invept_type =
      (cap & ept_cap::kInveptSingle) != 0 ? invept_type::kSingleContext : invept_type::kAllContexts;
  h.invvpid_type = (cap & ept_cap::kInvvpidSingle) != 0 ? invvpid_type::kSingleContext
                                                        : invvpid_type::kAllContexts;
  h.invvpid = invvpid_support(cap, true);  // VPID is always on (compute_controls)
  const bool use_true = (h.caps.basic & kBasicTrueControls) != 0;
  h.mtf =
      control_allowed(use_true ? h.caps.true_procbased : h.caps.procbased, proc::kMonitorTrapFlag);
  // The host timer for synthetic timers (SDM 26.5.1): the VMX-preemption
  // timer and its rate, as vmx/features decides them.
  const FeatureDecision features = decide_features(h.caps);
  h.preemption_timer = features.preemption_timer;
  h.preemption_timer_rate = features.preemption_timer_rate;
  if (!features.monitor_mwait_exiting) {
    log::info(
        "VT-x cannot exit on MONITOR/MWAIT (IA32_VMX_PROCBASED_CTLS bits 29, 10): CPUID hides "
        "them, but a guest that uses them anyway may sleep through its synthetic timers\n");
  }
  return true;
}

// The firmware's MTRRs as EPT and the host tables use them (one line per
// enabled variable range; there are at most VCNT of them).
void log_mtrrs(const MtrrSnapshot& m) {
  if (!m.present) {
    log::info("MTRR: none (CPUID.1:EDX[12] clear): RAM write-back, everything else uncached\n");
    return;
  }
  log::info("MTRR: default type %llu, %s, fixed ranges %s, %u variable range(s)\n",
            (unsigned long long)(m.def_type & arch::mtrr::kDefTypeMask),
            (m.def_type & arch::mtrr::kDefEnable) != 0 ? "enabled" : "disabled (all UC)",
            (m.def_type & arch::mtrr::kDefFixedEnable) != 0 ? "on" : "off", m.var_count);
  for (uint32_t i = 0; i < m.var_count; ++i) {
    VariableRange r{};
    if (!variable_range(m, i, &r)) continue;
    log::info("MTRR: variable %u: [0x%llx, 0x%llx) type %u%s\n", i, (unsigned long long)r.start,
              (unsigned long long)r.end, r.type,
              r.contiguous ? "" : " (non-contiguous mask: the whole span is treated as matching)");
  }
}

// The guest's EPT: an identity map of the whole guest-physical space
// except microhv's memory and the DMA remapping units' registers, with the
// firmware's memory types, and the local
// APIC page read-only so that guest writes to it exit and an INIT IPI to a
// VP can be emulated instead of sent (vmx/smp.hpp).
bool build_ept(Host& h) {
  LaunchInfo& info = h.info;
  EptLayout& l = h.layout;
  l.regions = info.regions;
  l.region_count = info.region_count;
  l.mtrrs = &info.mtrrs;
  // The width the guest's CPUID reports (on_cpuid: guest_cpuid).
  l.address_bits = guest_address_bits(info.phys_addr_bits);
  l.low_limit = info.ept_limit;
  l.hide(Hpa(info.pool_base), info.pool_size);
  // The remapping units' registers: not present either, or the guest could
  // turn DMA protection off.
  if (!adopt_dma_protection(h)) return false;
  log_mtrrs(info.mtrrs);
  const unsigned leaf = ept_leaf_level(h.caps.ept_vpid_cap);
  if (leaf < 2) {
    // 4 KiB leaves only: one table per 2 MiB, about 2,000 for the first
    // 4 GiB alone -- more than microhv's 2 MiB table pool.
    log::error(
        "EPT: the processor has no 2 MiB EPT pages (IA32_VMX_EPT_VPID_CAP bit 16 clear); microhv "
        "needs 2 MiB or 1 GiB EPT pages and stays out\n");
    return false;
  }
  h.ept = new (h.ept_storage) GuestEpt(h.layout, h.alloc, h.phys, leaf);
  h.overlay_backing[static_cast<uint32_t>(OverlayId::kHypercallPage)] = info.overlay_page;
  h.ept->set_overlay_backing(OverlayId::kHypercallPage, Hpa(info.overlay_page), kPermR | kPermX);
  h.overlay_backing[static_cast<uint32_t>(OverlayId::kReferenceTscPage)] = info.tsc_page;
  h.ept->set_overlay_backing(OverlayId::kReferenceTscPage, Hpa(info.tsc_page), kPermR);
  if (!h.ept->build()) {
    log::error("building EPT failed: out of page-table pages (%llu in use)\n",
               (unsigned long long)h.ept->tables_in_use());
    return false;
  }
  h.memory.attach(*h.ept);
  h.eptp = make_eptp(h.ept->root().value(), h.caps.ept_vpid_cap);
  char extent[96];
  if (h.ept->mapped_until() == l.top()) {
    format(extent, sizeof(extent), "all of it built now");
  } else {
    format(extent, sizeof(extent), "built up to 0x%llx, MMIO above mapped on demand",
           (unsigned long long)h.ept->mapped_until());
  }
  log::info(
      "EPT: identity map of the guest's %u-bit space [0, 0x%llx), %s, %s leaves at most; %llu "
      "tables, %llu pages left in the pool; microhv's 0x%llx..0x%llx not present; EPTP 0x%llx\n",
      l.address_bits, (unsigned long long)l.top(), extent, leaf == 3 ? "1 GiB" : "2 MiB",
      (unsigned long long)h.ept->tables_in_use(), (unsigned long long)h.alloc.pages_left(),
      (unsigned long long)info.pool_base, (unsigned long long)(info.pool_base + info.pool_size - 1),
      (unsigned long long)h.eptp);

  // The APIC page is protected whatever the APIC's mode now: the guest may
  // enable its xAPIC later, and relocation is refused (vmx/apic_base.hpp),
  // so the page never moves.
  const uint64_t base = apic_base();
  const Gpa page(base & arch::apic::base::kPageMask & ((1ull << info.phys_addr_bits) - 1));
  if (h.ept->protect_apic_page(page)) {
    h.apic_page = page;
    log::info(
        "EPT: local APIC page 0x%llx read-only: guest xAPIC writes are emulated; x2APIC ICR "
        "writes exit (MSR bitmap)\n",
        (unsigned long long)page.value());
  } else {
    log::error(
        "EPT: cannot map the local APIC page 0x%llx read-only: INIT IPIs are sent as written\n",
        (unsigned long long)page.value());
  }
  return true;
}

// The guest partition on the platform the Host implements, with one VP now
// (the BSP's; each AP adds its own at its first VM exit, so the VP count is
// always the number of CPUs running as VPs), and microhv's services
// attached to it. Returns the BSP's VP, or nullptr.
Vp* create_guest(Host& h) {
  // The guest may hold what the VMBus host leaves of the port tables.
  const PartitionQuota quota{kMaxPorts - vmbus::kHostQuota.ports,
                             kMaxConnections - vmbus::kHostQuota.connections};
  const TimeBase time{h.info.tsc_hz, h.info.apic_hz};
  // Invariant TSC is not advertised yet: besides CPUID.80000007:EDX[8] it
  // needs every CPU to run one TSC, which microhv does not check.
  const PlatformTimeSupport support{h.preemption_timer, false};
  const PartitionFeatures features = restrict_features(kFullFeatures, time, support);
  const PartitionConfig config{kGuestPartition, 1, features, quota, PartitionId{0}, time};
  log::info(
      "time: TSC %llu kHz, APIC timer %llu kHz; synthetic timers %s (VMX-preemption timer%s, rate "
      "2^%u); reference TSC page %s; invariant TSC not advertised (CPUID.80000007:EDX[8] = %u, "
      "one TSC on every CPU not checked); CPUID 0x40000003 EAX 0x%x EDX 0x%x\n",
      (unsigned long long)(time.tsc_hz / 1000), (unsigned long long)(time.apic_hz / 1000),
      (features.msr_access & tlfs::cpuid::kAccessSynicTimers) != 0 ? "on" : "off",
      h.preemption_timer ? "" : " missing", h.preemption_timer_rate,
      (features.msr_access & tlfs::cpuid::kAccessPartitionReferenceTsc) != 0 ? "on" : "off",
      h.info.host_invariant_tsc ? 1u : 0u, features.msr_access, features.misc);
  h.partition = h.hv.create_partition(config, h.memory, h.interrupts, h.clock, h.overlays, h.tlb);
  if (h.partition == nullptr) return nullptr;
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
  if (h.info.testdev) {
    h.testdev = new (h.testdev_storage) TestDevice(*h.partition);
    log::info(
        "testdev: on: 32-bit OUT to port 0x%x goes to the test device (I/O bitmap), other accesses "
        "pass through\n",
        TestDevice::kIoPort);
  }
  return h.partition->vp(VpIndex(0));
}

}  // namespace
}  // namespace microhv::vmx::hw

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::vmx::hw;

// The BSP: everything shared, then its own VMX.
extern "C" uint64_t microhv_host_entry(CpuLaunch* cpu) {
  LaunchInfo& info = *reinterpret_cast<LaunchInfo*>(cpu->info);
  Host& h = *new (g_host_storage) Host(info);
  // This copy's own sink: the loaded image's code goes away when efi_main
  // returns to the firmware.
  log::set_sink(&SerialLog::write, &h.log);
  log::set_deferred_log(&deferred_log_of_this_cpu);
  h.cpu_count = info.cpu_count;
  Vcpu& v = h.vcpus[0];

  setup_cpu_locals(h, v, *cpu);
  load_host_descriptors(v, *cpu);
  log::info(
      "host: resident at 0x%llx (%llu KiB), own CR3 0x%llx, GDT 0x%llx, TSS selector 0x%x, IDT "
      "0x%llx; %u CPU slot(s)\n",
      (unsigned long long)info.pool_base, (unsigned long long)(info.pool_size >> 10),
      (unsigned long long)info.host_cr3, (unsigned long long)cpu->gdt_page, v.host_tr,
      (unsigned long long)cpu->idt_page, h.cpu_count);

  if (!adopt_capabilities(h)) {
    restore_firmware_descriptors(*cpu);
    return host_status::kUnsupported;
  }
  if (!build_ept(h)) {
    restore_firmware_descriptors(*cpu);
    return host_status::kDeviceError;
  }
  // Default deny: every MSR access exits except what the policy passes through.
  build_msr_bitmap(reinterpret_cast<uint8_t*>(info.msr_bitmap));
  Vp* vp = create_guest(h);
  if (vp == nullptr) {
    log::error("creating the root partition failed\n");
    restore_firmware_descriptors(*cpu);
    return host_status::kDeviceError;
  }
  v.core.attach(*vp, h.testdev);
  __atomic_store_n(&v.vp, vp, __ATOMIC_RELEASE);
  __atomic_store_n(&g_host, &h, __ATOMIC_RELEASE);
  return launch_this_cpu(v, *cpu);
}

// An AP, started by the BSP (then already a guest) through MP services.
extern "C" uint64_t microhv_ap_host_entry(CpuLaunch* cpu) {
  Host* h = __atomic_load_n(&g_host, __ATOMIC_ACQUIRE);
  if (h == nullptr || cpu->index == 0 || cpu->index >= h->cpu_count) {
    return host_status::kNotReady;
  }
  Vcpu& v = h->vcpus[cpu->index];
  setup_cpu_locals(*h, v, *cpu);
  load_host_descriptors(v, *cpu);
  return launch_this_cpu(v, *cpu);
}
