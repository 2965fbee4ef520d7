#include "boot/efi/resident.hpp"

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/msr.hpp"
#include "arch/x86.hpp"
#include "boot/efi/capture.hpp"
#include "kernel/base/log.hpp"
#include "synic/services/testdev.hpp"
#include "vmx/ept.hpp"
#include "vmx/page_tables.hpp"

extern "C" {
extern struct ElfDyn {
  int64_t tag;
  uint64_t val;
} _DYNAMIC[];
extern char ImageBase[];
}

namespace microhv::boot {
namespace {

using vmx::CpuLaunch;
using vmx::kMaxRegions;
using vmx::LaunchInfo;
using vmx::MemRegion;
using vmx::PageAllocator;
using vmx::PageTables;
using vmx::PhysAccess;
using vmx::TableFormat;

constexpr uint64_t kHostStackPages = 8;  // 32 KiB per CPU
constexpr uint64_t kIstStackPages = 2;   // per CPU
constexpr uint64_t kTablePages = 512;    // host page tables + EPT (2 MiB)
// Per CPU besides the stacks: GDT, IDT, TSS, VMXON region, VMCS, exit
// frame, I/O bitmap A. Shared: MSR bitmap, I/O bitmap B, the hypercall and
// reference TSC overlays.
constexpr uint64_t kPerCpuPages = kHostStackPages + kIstStackPages + 7;
constexpr uint64_t kSharedPages = 4;

struct Pool {
  uint64_t base, pages, next;
  uint64_t take(uint64_t n) {
    const uint64_t p = next;
    next += n * kPageSize;
    return p;
  }
};

class BumpAllocator final : public PageAllocator {
 public:
  explicit BumpAllocator(LaunchInfo* info) : info_(info) {}
  Optional<Hpa> alloc_page() override {
    if (info_->alloc_next + kPageSize > info_->alloc_end) return kNone;
    const uint64_t p = info_->alloc_next;
    info_->alloc_next += kPageSize;
    return Hpa(p);  // the pool is zeroed
  }

 private:
  LaunchInfo* info_;
};

class Identity final : public PhysAccess {
 public:
  uint64_t* table(Hpa page) override { return reinterpret_cast<uint64_t*>(page.value()); }
};

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

// Reads the UEFI memory map into `info->regions` (RAM vs everything else).
EFI_STATUS read_memory_map(EFI_BOOT_SERVICES* bs, LaunchInfo* info) {
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
  for (UINTN off = 0; off + desc_size <= size && n < kMaxRegions; off += desc_size) {
    const auto* d =
        reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(static_cast<uint8_t*>(buf) + off);
    info->regions[n++] =
        MemRegion{Hpa(d->PhysicalStart), d->NumberOfPages * kPageSize, is_ram_type(d->Type)};
  }
  bs->FreePool(buf);
  info->region_count = normalize_regions(info->regions, n);
  return EFI_SUCCESS;
}

// Re-applies the image's relocations for the copy at `copy` (GNU-EFI images
// carry their ELF .rela section; crt0 applied it once for the loaded
// address). RELATIVE is what the image should contain; GLOB_DAT and 64
// against a defined symbol (e.g. an ODR-used `inline constexpr` variable)
// are resolved too, so the resident copy is right even when GNU-EFI's own
// relocator -- which skips them -- left the loaded image wrong.
bool relocate_copy(uint64_t copy) {
  constexpr int64_t kDtNull = 0, kDtSymtab = 6, kDtRela = 7, kDtRelaSz = 8, kDtRelaEnt = 9,
                    kDtSymEnt = 11;
  constexpr uint32_t kRelNone = 0, kRel64 = 1, kRelGlobDat = 6, kRelRelative = 8;
  uint64_t rela = 0, relasz = 0, relaent = 0, symtab = 0, syment = 0;
  for (const ElfDyn* d = _DYNAMIC; d->tag != kDtNull; ++d) {
    if (d->tag == kDtRela) rela = d->val;
    if (d->tag == kDtRelaSz) relasz = d->val;
    if (d->tag == kDtRelaEnt) relaent = d->val;
    if (d->tag == kDtSymtab) symtab = d->val;
    if (d->tag == kDtSymEnt) syment = d->val;
  }
  if (rela == 0 || relaent == 0) return relasz == 0;
  struct Rela {
    uint64_t offset, info;
    int64_t addend;
  };
  struct Sym {
    uint32_t name;
    uint8_t info, other;
    uint16_t shndx;
    uint64_t value, size;
  };
  const uint64_t loaded = reinterpret_cast<uint64_t>(ImageBase);
  for (uint64_t off = 0; off < relasz; off += relaent) {
    const auto* r = reinterpret_cast<const Rela*>(loaded + rela + off);
    const uint32_t type = static_cast<uint32_t>(r->info);
    auto* where = reinterpret_cast<uint64_t*>(copy + r->offset);
    if (type == kRelNone) continue;
    if (type == kRelRelative) {
      *where = copy + static_cast<uint64_t>(r->addend);
      continue;
    }
    if ((type == kRelGlobDat || type == kRel64) && symtab != 0 && syment != 0) {
      const auto* sym = reinterpret_cast<const Sym*>(loaded + symtab + (r->info >> 32) * syment);
      if (sym->shndx != 0) {
        *where = copy + sym->value + (type == kRel64 ? static_cast<uint64_t>(r->addend) : 0);
        continue;
      }
    }
    log::error("image copy: unsupported relocation type %u at 0x%llx\n", type,
               (unsigned long long)r->offset);
    return false;
  }
  return true;
}

uint64_t measure_tsc_hz(EFI_BOOT_SERVICES* bs) {
  const uint64_t t0 = arch::rdtsc();
  bs->Stall(10000);  // 10 ms
  const uint64_t t1 = arch::rdtsc();
  return (t1 - t0) * 100;
}

// The local APIC timer's input clock (what the TLFS APIC_FREQUENCY MSR
// reports and Linux uses instead of calibrating): count down from the top at
// divide-by-1, masked, for 5 ms of TSC time, with interrupts off; the
// firmware's timer registers are put back afterwards. 0 when the APIC is
// off or the count did not move.
uint64_t measure_apic_hz(uint64_t tsc_hz) {
  namespace apic = arch::apic;
  const uint64_t base = arch::rdmsr(arch::msr::kApicBase);
  if ((base & apic::base::kEnable) == 0 || tsc_hz == 0) return 0;
  const bool x2 = (base & apic::base::kX2apic) != 0;
  auto* mmio = reinterpret_cast<volatile uint32_t*>(base & apic::base::kPageMask);
  auto rd = [&](uint32_t off) -> uint32_t {
    return x2 ? static_cast<uint32_t>(arch::rdmsr(apic::x2apic_msr(off))) : mmio[off / 4];
  };
  auto wr = [&](uint32_t off, uint32_t v) {
    if (x2) {
      arch::wrmsr(apic::x2apic_msr(off), v);
    } else {
      mmio[off / 4] = v;
    }
  };
  const uint64_t flags = arch::read_rflags();
  arch::cli();
  const uint32_t lvt = rd(apic::kLvtTimer), divide = rd(apic::kTimerDivide);
  const uint32_t remaining = rd(apic::kTimerCurrentCount);
  wr(apic::kLvtTimer, lvt | apic::kLvtMasked);
  wr(apic::kTimerDivide, apic::kTimerDivideBy1);
  const uint64_t span = tsc_hz / 200;  // 5 ms
  wr(apic::kTimerInitialCount, 0xFFFFFFFFu);
  const uint64_t t0 = arch::rdtsc();
  while (arch::rdtsc() - t0 < span) {
  }
  const uint32_t left = rd(apic::kTimerCurrentCount);
  const uint64_t t1 = arch::rdtsc();
  wr(apic::kTimerDivide, divide);
  wr(apic::kTimerInitialCount, remaining);  // 0 stops it, as it was when idle
  wr(apic::kLvtTimer, lvt);
  if ((flags & arch::rflags::kIf) != 0) asm volatile("sti");
  const uint64_t counted = 0xFFFFFFFFull - left;
  if (counted == 0 || t1 == t0) return 0;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(counted) * tsc_hz / (t1 - t0));
}

}  // namespace

EFI_STATUS build_resident(EFI_BOOT_SERVICES* bs, const EFI_LOADED_IMAGE& li, MpPlan& plan,
                          bool testdev, Resident* out) {
  const uint64_t image_base = reinterpret_cast<uint64_t>(li.ImageBase);
  const uint64_t image_pages = (li.ImageSize + kPageSize - 1) / kPageSize;
  const uint64_t info_pages = (sizeof(LaunchInfo) + kPageSize - 1) / kPageSize;
  const uint64_t pages =
      image_pages + info_pages + plan.count * kPerCpuPages + kSharedPages + kTablePages;
  EFI_PHYSICAL_ADDRESS base = 0;
  EFI_STATUS s = bs->AllocatePages(AllocateAnyPages, EfiRuntimeServicesData, pages, &base);
  if (EFI_ERROR(s)) {
    log::error("vmx: AllocatePages(%llu, EfiRuntimeServicesData) failed: 0x%llx\n",
               (unsigned long long)pages, (unsigned long long)s);
    return s;
  }
  auto* bytes = reinterpret_cast<uint8_t*>(base);
  for (uint64_t i = 0; i < pages * kPageSize; ++i) bytes[i] = 0;

  Pool pool{base, pages, base};
  const uint64_t copy = pool.take(image_pages);
  auto* info = reinterpret_cast<LaunchInfo*>(pool.take(info_pages));
  info->pool_base = base;
  info->pool_size = pages * kPageSize;
  info->image_base = copy;
  info->image_size = image_pages * kPageSize;
  info->msr_bitmap = pool.take(1);   // generated from the MSR policy by the host side
  info->io_bitmap_b = pool.take(1);  // all zero: ports 0x8000-0xFFFF never exit
  info->overlay_page = pool.take(1);
  info->tsc_page = pool.take(1);
  info->testdev = testdev;
  info->cpu_count = plan.count;
  info->native_count = plan.native_count;
  for (uint32_t i = 0; i < plan.native_count; ++i)
    info->native_apic_ids[i] = ApicId(plan.native_apic_ids[i]);
  for (uint32_t i = 0; i < plan.count; ++i) {
    CpuLaunch& c = info->cpus[i];
    c.info = reinterpret_cast<uint64_t>(info);
    c.index = i;
    c.processor = plan.cpu[i].processor;
    c.apic_id = ApicId(plan.cpu[i].apic_id);
    c.host_stack_top = pool.take(kHostStackPages) + kHostStackPages * kPageSize;
    c.ist_stack_top = pool.take(kIstStackPages) + kIstStackPages * kPageSize;
    c.gdt_page = pool.take(1);
    c.idt_page = pool.take(1);
    c.tss_page = pool.take(1);
    c.vmxon_page = pool.take(1);
    c.vmcs_page = pool.take(1);
    c.frame_page = pool.take(1);
    c.io_bitmap_a = pool.take(1);  // ports 0-0x7FFF: only the test device port may exit
    if (testdev) {
      reinterpret_cast<uint8_t*>(c.io_bitmap_a)[TestDevice::kIoPort / 8] |=
          1u << (TestDevice::kIoPort % 8);
    }
    plan.cpu[i].cpu_launch = reinterpret_cast<uint64_t>(&c);
    plan.cpu[i].host_stack_top = c.host_stack_top;
  }
  info->alloc_next = pool.take(kTablePages);
  info->alloc_end = info->alloc_next + kTablePages * kPageSize;

  s = read_memory_map(bs, info);
  if (EFI_ERROR(s)) {
    log::error("vmx: GetMemoryMap failed: 0x%llx\n", (unsigned long long)s);
    bs->FreePages(base, pages);
    return s;
  }

  // The resident copy of the image.
  for (uint64_t i = 0; i < image_pages * kPageSize && i < li.ImageSize; ++i) {
    reinterpret_cast<uint8_t*>(copy)[i] = reinterpret_cast<const uint8_t*>(image_base)[i];
  }
  if (!relocate_copy(copy)) {
    bs->FreePages(base, pages);
    return EFI_LOAD_ERROR;
  }

  const uint32_t max_ext = arch::cpuid(0x80000000).eax;
  info->phys_addr_bits = max_ext >= 0x80000008 ? (arch::cpuid(0x80000008).eax & 0xFF) : 36;
  info->page1g =
      max_ext >= 0x80000001 && (arch::cpuid(0x80000001).edx & arch::cpuid_ext1_edx::kPage1G) != 0;
  info->ept_limit = identity_limit(info->regions, info->region_count, info->phys_addr_bits);
  info->tsc_hz = measure_tsc_hz(bs);
  capture_firmware_mtrrs(&info->mtrrs, info->phys_addr_bits);
  info->apic_hz = measure_apic_hz(info->tsc_hz);
  info->host_invariant_tsc =
      max_ext >= 0x80000007 && (arch::cpuid(0x80000007).edx & (1u << 8)) != 0;

  // Host page tables: identity map of [0, limit), 1G pages when the CPU has
  // them, but no large page across two MTRR types (SDM Vol. 3A 12.11.9).
  BumpAllocator alloc(info);
  Identity phys;
  PageTables host(TableFormat::kHost, alloc, phys, info->page1g ? 3 : 2);
  if (!host.init() || !vmx::map_host_identity(host, info->mtrrs, info->ept_limit)) {
    log::error("vmx: building host page tables failed\n");
    bs->FreePages(base, pages);
    return EFI_OUT_OF_RESOURCES;
  }
  info->host_cr3 = host.root().value();
  const uint64_t host_tables = host.tables_allocated();

  log::info(
      "vmx: image 0x%llx (%llu KiB) copied to 0x%llx; pool %llu KiB EfiRuntimeServicesData for %u "
      "CPU(s); %u "
      "memory regions, identity map up to 0x%llx (%u-bit physical) in %llu tables; TSC %llu kHz, "
      "APIC timer %llu kHz, CPUID.80000007:EDX[8] (invariant TSC) %u\n",
      (unsigned long long)image_base, (unsigned long long)(li.ImageSize >> 10),
      (unsigned long long)copy, (unsigned long long)(pages * 4), plan.count, info->region_count,
      (unsigned long long)info->ept_limit, info->phys_addr_bits, (unsigned long long)host_tables,
      (unsigned long long)(info->tsc_hz / 1000), (unsigned long long)(info->apic_hz / 1000),
      info->host_invariant_tsc ? 1u : 0u);

  *out = Resident{base, pages, copy, image_base, info};
  return EFI_SUCCESS;
}

void free_resident(EFI_BOOT_SERVICES* bs, const Resident& r) {
  bs->FreePages(r.base, r.pages);
}

}  // namespace microhv::boot
