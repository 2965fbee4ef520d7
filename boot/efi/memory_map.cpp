#include "boot/efi/memory_map.hpp"

#include "arch/cpu.hpp"
#include "vmx/launch.hpp"

namespace microhv::boot {
namespace {

bool is_ram_type(UINT32 type) {
  switch (type) {
    case EfiLoaderCode:
    case EfiLoaderData:
    case EfiBootServicesCode:
    case EfiBootServicesData:
    case EfiRuntimeServicesCode:
    case EfiRuntimeServicesData:
    case EfiConventionalMemory:
    case EfiACPIReclaimMemory:
    case EfiACPIMemoryNVS:
      return true;
    default:
      return false;
  }
}

}  // namespace

EFI_STATUS read_memory_map(EFI_BOOT_SERVICES* bs, vmx::MemRegion* out, uint32_t cap,
                           uint32_t* count) {
  *count = 0;
  UINTN size = 0, key = 0, desc_size = 0;
  UINT32 version = 0;
  EFI_STATUS s = bs->GetMemoryMap(&size, nullptr, &key, &desc_size, &version);
  if (s != EFI_BUFFER_TOO_SMALL) return s;
  size += 8 * desc_size;
  void* buf = nullptr;
  s = bs->AllocatePool(EfiLoaderData, size, &buf);
  if (EFI_ERROR(s)) return s;
  s = bs->GetMemoryMap(&size, static_cast<EFI_MEMORY_DESCRIPTOR*>(buf), &key, &desc_size, &version);
  if (EFI_ERROR(s)) {
    bs->FreePool(buf);
    return s;
  }
  uint32_t n = 0;
  for (UINTN off = 0; off + desc_size <= size && n < cap; off += desc_size) {
    const auto* d =
        reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(static_cast<uint8_t*>(buf) + off);
    out[n++] =
        vmx::MemRegion{Hpa(d->PhysicalStart), d->NumberOfPages * kPageSize, is_ram_type(d->Type)};
  }
  bs->FreePool(buf);
  *count = vmx::normalize_regions(out, n);
  return EFI_SUCCESS;
}

uint32_t physical_address_bits() {
  const uint32_t max_ext = arch::cpuid(0x80000000).eax;
  return max_ext >= 0x80000008 ? (arch::cpuid(0x80000008).eax & 0xFF) : 36;
}

uint64_t current_identity_limit(EFI_BOOT_SERVICES* bs) {
  void* buf = nullptr;
  constexpr uint32_t kCap = vmx::kMaxRegions;
  if (EFI_ERROR(bs->AllocatePool(EfiLoaderData, kCap * sizeof(vmx::MemRegion), &buf))) {
    return 4ull << 30;
  }
  auto* regions = static_cast<vmx::MemRegion*>(buf);
  uint32_t n = 0;
  const uint64_t limit = EFI_ERROR(read_memory_map(bs, regions, kCap, &n))
                             ? 4ull << 30
                             : vmx::identity_limit(regions, n, physical_address_bits());
  bs->FreePool(buf);
  return limit;
}

}  // namespace microhv::boot
