// vmx::start: the EFI side of taking over the boot CPU.
//
// microhv.efi is an EFI application: the firmware frees its image when
// efi_main returns. So the part of microhv that must stay -- the host -- runs
// from a resident copy: one AllocatePages(EfiRuntimeServicesData) block (the
// OS keeps runtime memory) holds a relocated copy of the whole image plus
// microhv's stacks, GDT/TSS/IDT, page tables, VMXON region, VMCS, bitmaps and
// the hypercall overlay page. This file (running in the loaded image):
//   1. reads the memory map, allocates and zeroes the block,
//   2. copies the image into it and re-applies the image's relocations for
//      the new address,
//   3. builds microhv's host page tables (identity map of all memory),
//   4. captures the firmware's CPU state, and
//   5. calls microhv_virtualize (vmx/entry.S), which switches to the host
//      CR3 and stack and calls microhv_host_entry in the copy.
// When that succeeds, the firmware continues as a guest right where
// microhv_virtualize was called, which returns 0; vmx::start returns
// EFI_SUCCESS to efi_main and thus to the firmware.
#include <efi.h>

#include "arch/cpu.hpp"
#include "kernel/log.hpp"
#include "vmx/info_table.hpp"
#include "vmx/launch.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/vmcs.hpp"
#include "vmx/vmx.hpp"

extern "C" {
extern char ImageBase[];
extern struct ElfDyn {
  int64_t tag;
  uint64_t val;
} _DYNAMIC[];
}

namespace microhv::vmx {
namespace {

constexpr uint64_t kHostStackPages = 8;  // 32 KiB
constexpr uint64_t kIstStackPages = 2;
constexpr uint64_t kTablePages = 512;    // host page tables + EPT (2 MiB)

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
  Hpa alloc_page() override {
    if (info_->alloc_next + kPageSize > info_->alloc_end) return Hpa(0);
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
    const auto* d = reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(static_cast<uint8_t*>(buf) + off);
    info->regions[n++] = MemRegion{d->PhysicalStart, d->NumberOfPages * kPageSize, is_ram_type(d->Type)};
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
  constexpr int64_t kDtNull = 0, kDtSymtab = 6, kDtRela = 7, kDtRelaSz = 8, kDtRelaEnt = 9, kDtSymEnt = 11;
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
    log::error("image copy: unsupported relocation type %u at 0x%llx\n", type, (unsigned long long)r->offset);
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

template <typename T>
T read_segment(int which) {
  uint16_t v = 0;
  switch (which) {
    case 0: asm volatile("mov %%cs, %0" : "=r"(v)); break;
    case 1: asm volatile("mov %%ss, %0" : "=r"(v)); break;
    case 2: asm volatile("mov %%ds, %0" : "=r"(v)); break;
    case 3: asm volatile("mov %%es, %0" : "=r"(v)); break;
    case 4: asm volatile("mov %%fs, %0" : "=r"(v)); break;
    case 5: asm volatile("mov %%gs, %0" : "=r"(v)); break;
    case 6: asm volatile("sldt %0" : "=r"(v)); break;
    case 7: asm volatile("str %0" : "=r"(v)); break;
  }
  return static_cast<T>(v);
}

void capture_guest_state(GuestStart* g) {
  g->cr0 = arch::read_cr0();
  g->cr3 = arch::read_cr3();
  g->cr4 = arch::read_cr4();
  asm volatile("mov %%dr7, %0" : "=r"(g->dr7));
  g->efer = arch::rdmsr(msr::kEfer);
  g->pat = arch::rdmsr(msr::kPat);
  g->debugctl = arch::rdmsr(msr::kDebugctl);
  g->sysenter_cs = arch::rdmsr(msr::kSysenterCs);
  g->sysenter_esp = arch::rdmsr(msr::kSysenterEsp);
  g->sysenter_eip = arch::rdmsr(msr::kSysenterEip);
  g->fs_base = arch::rdmsr(msr::kFsBase);
  g->gs_base = arch::rdmsr(msr::kGsBase);
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } gdtr{}, idtr{};
  asm volatile("sgdt %0" : "=m"(gdtr));
  asm volatile("sidt %0" : "=m"(idtr));
  g->gdtr_base = gdtr.base;
  g->gdtr_limit = gdtr.limit;
  g->idtr_base = idtr.base;
  g->idtr_limit = idtr.limit;
  g->cs = read_segment<uint16_t>(0);
  g->ss = read_segment<uint16_t>(1);
  g->ds = read_segment<uint16_t>(2);
  g->es = read_segment<uint16_t>(3);
  g->fs = read_segment<uint16_t>(4);
  g->gs = read_segment<uint16_t>(5);
  g->ldtr = read_segment<uint16_t>(6);
  g->tr = read_segment<uint16_t>(7);
}

// After the launch, still inside vmx::start but now as the guest: prove
// from the guest side that microhv is underneath.
void guest_self_check() {
  const arch::CpuidResult v = arch::cpuid(0x40000000);
  char vendor[13];
  const uint32_t words[3] = {v.ebx, v.ecx, v.edx};
  for (int i = 0; i < 12; ++i) vendor[i] = static_cast<char>(words[i / 4] >> (8 * (i % 4)));
  vendor[12] = '\0';
  const bool hv_bit = (arch::cpuid(1).ecx & (1u << 31)) != 0;
  const bool vmx_bit = (arch::cpuid(1).ecx & (1u << 5)) != 0;
  log::info("guest: CPUID.1:ECX hypervisor=%d vmx=%d; CPUID 0x40000000: max leaf 0x%x vendor \"%s\"\n", hv_bit,
            vmx_bit, v.eax, vendor);
  // A hypercall with an unknown call code (0xFFFF) must come back as
  // HV_STATUS_INVALID_HYPERCALL_CODE (2) in RAX: the VMCALL exited to microhv.
  uint64_t rax;
  register uint64_t r8 asm("r8") = 0;
  asm volatile("vmcall" : "=a"(rax), "+r"(r8) : "c"(0xFFFFull), "d"(0ull) : "memory");
  log::info("guest: VMCALL with call code 0xffff returned 0x%llx\n", static_cast<unsigned long long>(rax));
}

// Publishes where microhv lives (vmx/info_table.hpp). Runs as the guest;
// the table itself is ordinary guest memory.
void publish_info_table(EFI_BOOT_SERVICES* bs, const InfoTable& table) {
  void* p = nullptr;
  if (EFI_ERROR(bs->AllocatePool(EfiRuntimeServicesData, sizeof(InfoTable), &p))) return;
  auto* t = static_cast<InfoTable*>(p);
  *t = table;
  EFI_GUID guid;
  static_assert(sizeof(guid) == sizeof(kInfoTableGuid));
  __builtin_memcpy(&guid, &kInfoTableGuid, sizeof(guid));
  const EFI_STATUS s = bs->InstallConfigurationTable(&guid, t);
  if (EFI_ERROR(s)) log::error("vmx: InstallConfigurationTable failed: 0x%llx\n", (unsigned long long)s);
}

}  // namespace

EFI_STATUS start(EFI_HANDLE image, EFI_SYSTEM_TABLE* st) {
  EFI_BOOT_SERVICES* bs = st->BootServices;
  EFI_GUID loaded_image_guid = LOADED_IMAGE_PROTOCOL;
  EFI_LOADED_IMAGE* li = nullptr;
  EFI_STATUS s = bs->HandleProtocol(image, &loaded_image_guid, reinterpret_cast<void**>(&li));
  if (EFI_ERROR(s)) {
    log::error("vmx: no LoadedImage protocol (status 0x%llx)\n", (unsigned long long)s);
    return s;
  }
  const uint64_t image_base = reinterpret_cast<uint64_t>(li->ImageBase);
  const uint64_t image_pages = (li->ImageSize + kPageSize - 1) / kPageSize;
  if (image_base != reinterpret_cast<uint64_t>(ImageBase)) {
    log::error("vmx: LoadedImage base 0x%llx differs from ImageBase 0x%llx\n", (unsigned long long)image_base,
               (unsigned long long)reinterpret_cast<uint64_t>(ImageBase));
    return EFI_LOAD_ERROR;
  }

  const uint64_t info_pages = (sizeof(LaunchInfo) + kPageSize - 1) / kPageSize;
  // image, info, stacks, GDT, IDT, TSS, VMXON, VMCS, MSR bitmap, 2 I/O
  // bitmaps, overlay, VP frame, tables.
  const uint64_t pages = image_pages + info_pages + kHostStackPages + kIstStackPages + 10 + kTablePages;
  EFI_PHYSICAL_ADDRESS base = 0;
  s = bs->AllocatePages(AllocateAnyPages, EfiRuntimeServicesData, pages, &base);
  if (EFI_ERROR(s)) {
    log::error("vmx: AllocatePages(%llu, EfiRuntimeServicesData) failed: 0x%llx\n", (unsigned long long)pages,
               (unsigned long long)s);
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
  info->host_stack_top = pool.take(kHostStackPages) + kHostStackPages * kPageSize;
  info->ist_stack_top = pool.take(kIstStackPages) + kIstStackPages * kPageSize;
  info->gdt_page = pool.take(1);
  info->idt_page = pool.take(1);
  info->tss_page = pool.take(1);
  info->vmxon_page = pool.take(1);
  info->vmcs_page = pool.take(1);
  info->msr_bitmap = pool.take(1);  // all zero: only MSRs outside its ranges exit
  info->io_bitmap_a = pool.take(1);  // all zero: no port I/O exits
  info->io_bitmap_b = pool.take(1);
  info->overlay_page = pool.take(1);
  info->frame_page = pool.take(1);
  info->alloc_next = pool.take(kTablePages);
  info->alloc_end = info->alloc_next + kTablePages * kPageSize;

  s = read_memory_map(bs, info);
  if (EFI_ERROR(s)) {
    log::error("vmx: GetMemoryMap failed: 0x%llx\n", (unsigned long long)s);
    bs->FreePages(base, pages);
    return s;
  }

  // The resident copy of the image.
  for (uint64_t i = 0; i < image_pages * kPageSize && i < li->ImageSize; ++i) {
    reinterpret_cast<uint8_t*>(copy)[i] = reinterpret_cast<const uint8_t*>(image_base)[i];
  }
  if (!relocate_copy(copy)) {
    bs->FreePages(base, pages);
    return EFI_LOAD_ERROR;
  }

  const uint32_t max_ext = arch::cpuid(0x80000000).eax;
  info->phys_addr_bits = max_ext >= 0x80000008 ? (arch::cpuid(0x80000008).eax & 0xFF) : 36;
  info->page1g = max_ext >= 0x80000001 && (arch::cpuid(0x80000001).edx & (1u << 26)) != 0;
  info->ept_limit = identity_limit(info->regions, info->region_count, info->phys_addr_bits);
  info->tsc_hz = measure_tsc_hz(bs);

  // Host page tables: identity map of [0, limit), 1G pages when the CPU has them.
  BumpAllocator alloc(info);
  Identity phys;
  PageTables host(TableFormat::kHost, alloc, phys, info->page1g ? 3 : 2);
  if (!host.init() || !host.map(0, 0, info->ept_limit, MapAttr{kPermRwx, arch::MemType::kWb})) {
    log::error("vmx: building host page tables failed\n");
    bs->FreePages(base, pages);
    return EFI_OUT_OF_RESOURCES;
  }
  info->host_cr3 = host.root().value();

  log::info("vmx: image 0x%llx (%llu KiB) copied to 0x%llx; pool %llu KiB EfiRuntimeServicesData; %u memory "
            "regions, identity map up to 0x%llx (%u-bit physical); TSC %llu kHz\n",
            (unsigned long long)image_base, (unsigned long long)(li->ImageSize >> 10), (unsigned long long)copy,
            (unsigned long long)(pages * 4), info->region_count, (unsigned long long)info->ept_limit,
            info->phys_addr_bits, (unsigned long long)(info->tsc_hz / 1000));

  // After the launch this code runs as the guest, for which the whole pool
  // (LaunchInfo included) is not present: keep what it needs on the stack.
  const InfoTable table{kInfoTableSignature, 1, sizeof(InfoTable), info->pool_base, info->pool_size,
                        info->overlay_page};
  capture_guest_state(&info->guest);
  const uint64_t entry = copy + (reinterpret_cast<uint64_t>(&microhv_host_entry) - image_base);
  const uint64_t status = microhv_virtualize(info, reinterpret_cast<uint64_t (*)(LaunchInfo*)>(entry),
                                             info->host_cr3, info->host_stack_top);
  if (status != 0) {
    log::error("vmx: virtualization failed (status 0x%llx); the firmware continues without microhv\n",
               (unsigned long long)status);
    bs->FreePages(base, pages);
    return status;
  }
  log::info("guest: the firmware is running as a guest of microhv\n");
  guest_self_check();
  publish_info_table(bs, table);
  return EFI_SUCCESS;
}

}  // namespace microhv::vmx
