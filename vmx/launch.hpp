// What the EFI side of vmx::start (running in the firmware-loaded image)
// hands to the host side (running in microhv's resident copy of the image).
// Plain data only: it crosses from one copy of the code to the other, so it
// must hold no virtual functions and no pointers into the loaded image.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "vmx/ept.hpp"

namespace microhv::vmx {

inline constexpr uint32_t kMaxRegions = 256;

struct GuestStart {
  uint64_t cr0, cr3, cr4, dr7;
  uint64_t efer, pat, debugctl, sysenter_cs, sysenter_esp, sysenter_eip, fs_base, gs_base;
  uint64_t gdtr_base, idtr_base;
  uint16_t gdtr_limit, idtr_limit;
  uint16_t cs, ss, ds, es, fs, gs, ldtr, tr;
};

struct LaunchInfo {
  // Written by microhv_virtualize (vmx/entry.S): offsets 0, 8, 16 are fixed.
  uint64_t guest_rsp;
  uint64_t guest_rip;
  uint64_t guest_rflags;
  // microhv's resident memory (EfiRuntimeServicesData): never present in EPT.
  uint64_t pool_base, pool_size;
  uint64_t image_base, image_size;  // the resident, relocated copy of microhv.efi
  uint64_t alloc_next, alloc_end;   // page allocator for page tables
  uint64_t host_cr3;
  uint64_t host_stack_top, ist_stack_top;
  uint64_t gdt_page, idt_page, tss_page;
  uint64_t vmxon_page, vmcs_page, msr_bitmap, io_bitmap_a, io_bitmap_b, overlay_page, frame_page;
  uint64_t tsc_hz;
  uint32_t phys_addr_bits;
  bool page1g;  // CPUID.80000001:EDX[26]
  GuestStart guest;
  uint64_t ept_limit;
  uint32_t region_count;
  MemRegion regions[kMaxRegions];
};
static_assert(offsetof(LaunchInfo, guest_rsp) == 0);
static_assert(offsetof(LaunchInfo, guest_rip) == 8);
static_assert(offsetof(LaunchInfo, guest_rflags) == 16);

}  // namespace microhv::vmx

extern "C" {
// vmx/entry.S. Saves the callee-saved registers and RFLAGS on the current
// (firmware) stack, records where the guest resumes into `info`, disables
// interrupts, switches to `host_cr3` and `host_rsp` and calls `entry(info)`
// (the host side in the resident copy). On success `entry` never returns: the
// guest resumes at the recorded point and this function returns 0 in the
// guest. If `entry` returns, its value is returned after the firmware CR3,
// stack and RFLAGS are restored.
uint64_t microhv_virtualize(microhv::vmx::LaunchInfo* info, uint64_t (*entry)(microhv::vmx::LaunchInfo*),
                            uint64_t host_cr3, uint64_t host_rsp);
// The host side (vmx/host_hw.cpp), called through its address in the copy.
uint64_t microhv_host_entry(microhv::vmx::LaunchInfo* info);
}
