// What the EFI side of the take-over (boot/efi/, running in the image the
// firmware loaded) hands to the host side (vmx/hw/, running in microhv's
// resident copy of the image).
// Plain data only: it crosses from one copy of the code to the other, so it
// must hold no virtual functions and no pointers into the loaded image.
// Everything here lives in microhv's pool, which the guest cannot see.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "vmx/ept.hpp"
#include "vmx/smp.hpp"

namespace microhv::vmx {

inline constexpr uint32_t kMaxRegions = 256;

// What the host side returns to microhv_virtualize when a CPU cannot be
// virtualized: UEFI status codes (UEFI spec Appendix D), spelled out here
// because the host side does not include <efi.h>. 0 is never returned: on
// success the host side does not return at all.
namespace host_status {
inline constexpr uint64_t kUnsupported = 0x8000000000000003ull;  // EFI_UNSUPPORTED
inline constexpr uint64_t kNotReady = 0x8000000000000006ull;     // EFI_NOT_READY
inline constexpr uint64_t kDeviceError = 0x8000000000000007ull;  // EFI_DEVICE_ERROR
}  // namespace host_status

struct GuestStart {
  uint64_t cr0, cr3, cr4, dr7;
  uint64_t efer, pat, debugctl, sysenter_cs, sysenter_esp, sysenter_eip, fs_base, gs_base;
  uint64_t gdtr_base, idtr_base;
  uint16_t gdtr_limit, idtr_limit;
  uint16_t cs, ss, ds, es, fs, gs, ldtr, tr;
};

struct LaunchInfo;

// One per logical processor microhv virtualizes (index = VP index): its own
// host stack, IST stack, GDT + TSS, IDT (gates carry that CPU's CS), VMXON
// region, VMCS, exit frame and I/O bitmap A, and the firmware state captured
// on that CPU.
struct CpuLaunch {
  // Written by microhv_virtualize (vmx/hw/entry.S): offsets 0, 8, 16 are fixed.
  uint64_t guest_rsp;
  uint64_t guest_rip;
  uint64_t guest_rflags;
  uint64_t info;       // LaunchInfo* (identity-mapped in the host)
  uint32_t index;      // VP index
  uint32_t processor;  // EFI MP services processor number
  ApicId apic_id;      // from MP services (x2APIC id), checked on the CPU itself
  uint64_t host_stack_top, ist_stack_top;
  uint64_t gdt_page, idt_page, tss_page, vmxon_page, vmcs_page, frame_page, io_bitmap_a;
  GuestStart guest;
};
static_assert(offsetof(CpuLaunch, guest_rsp) == 0);
static_assert(offsetof(CpuLaunch, guest_rip) == 8);
static_assert(offsetof(CpuLaunch, guest_rflags) == 16);

struct LaunchInfo {
  // microhv's resident memory (EfiRuntimeServicesData): never present in EPT.
  uint64_t pool_base, pool_size;
  uint64_t image_base, image_size;  // the resident, relocated copy of microhv.efi
  uint64_t alloc_next, alloc_end;   // page allocator for page tables
  uint64_t host_cr3;
  uint64_t msr_bitmap, io_bitmap_b, overlay_page;
  uint64_t tsc_page;  // the page behind the reference TSC page overlay
  uint64_t tsc_hz;
  uint64_t apic_hz;         // the local APIC timer's input clock, measured like tsc_hz
  bool host_invariant_tsc;  // CPUID.80000007:EDX[8]
  uint32_t phys_addr_bits;
  bool page1g;   // CPUID.80000001:EDX[26]
  bool testdev;  // microhv.cfg `testdev = on`: port 0x3000 exits (bit set in every I/O bitmap A)
  uint32_t cpu_count;  // CpuLaunch entries prepared (VP 0 = the BSP)
  // Enabled processors microhv does not try to virtualize (beyond kMaxCpus,
  // or not healthy): INIT broadcasts reach them for real.
  uint32_t native_count;
  ApicId native_apic_ids[kMaxCpus];
  uint64_t ept_limit;  // identity_limit(): host page tables, and EPT built at take-over
  MtrrSnapshot mtrrs;  // the BSP's MTRRs at take-over (memory types for EPT and host tables)
  uint32_t region_count;
  MemRegion regions[kMaxRegions];
  CpuLaunch cpus[kMaxCpus];
};

}  // namespace microhv::vmx

extern "C" {
// vmx/hw/entry.S. Saves the callee-saved registers and RFLAGS on the current
// (firmware) stack, records where the guest resumes into `cpu`, disables
// interrupts, switches to `host_cr3` and `host_rsp` and calls `entry(cpu)`
// (the host side in the resident copy). On success `entry` never returns: the
// guest resumes at the recorded point and this function returns 0 in the
// guest. If `entry` returns, its value is returned after the firmware CR3,
// stack and RFLAGS are restored.
uint64_t microhv_virtualize(microhv::vmx::CpuLaunch* cpu,
                            uint64_t (*entry)(microhv::vmx::CpuLaunch*), uint64_t host_cr3,
                            uint64_t host_rsp);
// The host side (vmx/hw/root.cpp), called through their addresses in the
// copy: the BSP's (which also sets up everything shared) and an AP's.
uint64_t microhv_host_entry(microhv::vmx::CpuLaunch* cpu);
uint64_t microhv_ap_host_entry(microhv::vmx::CpuLaunch* cpu);
}
