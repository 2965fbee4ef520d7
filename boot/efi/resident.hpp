// microhv's resident block. microhv.efi is an EFI application: the firmware
// frees its image when efi_main returns. So the part of microhv that must
// stay -- the host -- runs from a resident copy: one
// AllocatePages(EfiRuntimeServicesData) block (the OS keeps runtime memory)
// holds a relocated copy of the whole image plus microhv's stacks,
// GDT/TSS/IDT, page tables, VMXON region, VMCS, bitmaps and overlay page,
// described by the vmx::LaunchInfo at its start. The guest never sees it:
// it is not present in EPT.
#pragma once

#include <efi.h>
#include <stdint.h>

#include "boot/efi/ap_bringup.hpp"
#include "vmx/launch.hpp"
#include "vmx/page_tables.hpp"

namespace microhv::boot {

// Pages from [*next, end) of the (zeroed) pool, one at a time.
class BumpPages final : public vmx::PageAllocator {
 public:
  BumpPages(uint64_t* next, uint64_t end) : next_(next), end_(end) {}
  Optional<Hpa> alloc_page() override;

 private:
  uint64_t* next_;
  uint64_t end_;
};

// Memory as the firmware maps it: one to one.
class IdentityPhys final : public vmx::PhysAccess {
 public:
  uint64_t* table(Hpa page) override { return reinterpret_cast<uint64_t*>(page.value()); }
};

struct Resident {
  EFI_PHYSICAL_ADDRESS base = 0;
  uint64_t pages = 0;
  uint64_t copy = 0;        // where the relocated copy of the image starts
  uint64_t image_base = 0;  // where the firmware loaded the image
  vmx::LaunchInfo* info = nullptr;
  // The copy's address of something in the loaded image (e.g. a function).
  uint64_t in_copy(const void* loaded) const {
    return copy + (reinterpret_cast<uint64_t>(loaded) - image_base);
  }
};

// Allocates and zeroes the block for plan.count CPUs, lays out LaunchInfo and
// every CPU's pages (and records each CPU's launch pointers in `plan`), the
// DMA remapping state and `dma_table_pages` for its tables, reads the UEFI
// memory map, copies and relocates the image, measures the TSC and builds
// the host page tables (identity map of [0, limit), 1 GiB pages when the CPU
// has them). On failure logs why, frees the block and returns the error.
EFI_STATUS build_resident(EFI_BOOT_SERVICES* bs, const EFI_LOADED_IMAGE& li, MpPlan& plan,
                          bool testdev, uint64_t dma_table_pages, Resident* out);

void free_resident(EFI_BOOT_SERVICES* bs, const Resident& r);

}  // namespace microhv::boot
