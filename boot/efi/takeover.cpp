// vmx::start: the EFI side of taking over the machine: the boot CPU first,
// then every other enabled logical processor (one VP each).
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
// microhv_virtualize was called, which returns 0. Still in vmx::start, but
// now as the guest, the BSP asks EFI_MP_SERVICES_PROTOCOL to run
// ap_virtualize on each AP in turn (StartupThisAP with a WaitEvent: the
// call returns at once and the BSP polls with a bounded wait), which
// captures that AP's state and calls microhv_virtualize with the AP's own
// host stack, entering microhv_ap_host_entry. An AP that does not come up
// in time is named in an error and it and the remaining APs stay
// unvirtualized; the BSP always goes on. vmx::start returns EFI_SUCCESS to
// efi_main and thus to the firmware.
#include "boot/efi/takeover.hpp"

#include <efi.h>

#include <new>

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/msr.hpp"
#include "arch/vmx/vmcs.hpp"
#include "arch/x86.hpp"
#include "boot/efi/mp_services.hpp"
#include "boot/mp/ap_handshake.hpp"
#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/base/log.hpp"
#include "synic/services/testdev.hpp"
#include "vmx/info_table.hpp"
#include "vmx/launch.hpp"
#include "vmx/page_tables.hpp"

extern "C" {
extern char ImageBase[];
extern struct ElfDyn {
  int64_t tag;
  uint64_t val;
} _DYNAMIC[];
}

namespace microhv::vmx {
namespace {

using boot::ApHandshake;
using boot::EfiApProcedure;
using boot::EfiMpServices;
using boot::EfiProcessorInformation;

constexpr uint64_t kHostStackPages = 8;  // 32 KiB per CPU
constexpr uint64_t kIstStackPages = 2;   // per CPU
constexpr uint64_t kTablePages = 512;    // host page tables + EPT (2 MiB)
// Per CPU besides the stacks: GDT, IDT, TSS, VMXON region, VMCS, exit
// frame, I/O bitmap A. Shared: MSR bitmap, I/O bitmap B, hypercall overlay.
constexpr uint64_t kPerCpuPages = kHostStackPages + kIstStackPages + 7;
constexpr uint64_t kSharedPages = 3;

// Bounded waits for an AP (guest time; Stall() based).
constexpr uint64_t kApStartTimeoutUs = 2000000;  // virtualized and checked in
constexpr uint64_t kApIdleTimeoutUs = 2000000;   // MP services accepts a new procedure for the AP
constexpr uint64_t kPollUs = 500;

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
    const auto* d =
        reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(static_cast<uint8_t*>(buf) + off);
    info->regions[n++] =
        MemRegion{d->PhysicalStart, d->NumberOfPages * kPageSize, is_ram_type(d->Type)};
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

template <typename T>
T read_segment(int which) {
  uint16_t v = 0;
  switch (which) {
    case 0:
      asm volatile("mov %%cs, %0" : "=r"(v));
      break;
    case 1:
      asm volatile("mov %%ss, %0" : "=r"(v));
      break;
    case 2:
      asm volatile("mov %%ds, %0" : "=r"(v));
      break;
    case 3:
      asm volatile("mov %%es, %0" : "=r"(v));
      break;
    case 4:
      asm volatile("mov %%fs, %0" : "=r"(v));
      break;
    case 5:
      asm volatile("mov %%gs, %0" : "=r"(v));
      break;
    case 6:
      asm volatile("sldt %0" : "=r"(v));
      break;
    case 7:
      asm volatile("str %0" : "=r"(v));
      break;
  }
  return static_cast<T>(v);
}

void capture_guest_state(GuestStart* g) {
  g->cr0 = arch::read_cr0();
  g->cr3 = arch::read_cr3();
  g->cr4 = arch::read_cr4();
  asm volatile("mov %%dr7, %0" : "=r"(g->dr7));
  g->efer = arch::rdmsr(arch::msr::kEfer);
  g->pat = arch::rdmsr(arch::msr::kPat);
  g->debugctl = arch::rdmsr(arch::msr::kDebugctl);
  g->sysenter_cs = arch::rdmsr(arch::msr::kSysenterCs);
  g->sysenter_esp = arch::rdmsr(arch::msr::kSysenterEsp);
  g->sysenter_eip = arch::rdmsr(arch::msr::kSysenterEip);
  g->fs_base = arch::rdmsr(arch::msr::kFsBase);
  g->gs_base = arch::rdmsr(arch::msr::kGsBase);
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

// CPUID.1:ECX.hypervisor as 0 or 1.
uint32_t hypervisor_bit() {
  return (arch::cpuid(1).ecx & arch::cpuid1_ecx::kHypervisor) != 0 ? 1 : 0;
}

// After the launch, still inside vmx::start but now as the guest: prove
// from the guest side that microhv is underneath.
void guest_self_check() {
  const arch::CpuidResult v = arch::cpuid(tlfs::cpuid::kVendorLeaf);
  char vendor[13];
  const uint32_t words[3] = {v.ebx, v.ecx, v.edx};
  for (int i = 0; i < 12; ++i) vendor[i] = static_cast<char>(words[i / 4] >> (8 * (i % 4)));
  vendor[12] = '\0';
  const bool hv_bit = (arch::cpuid(1).ecx & arch::cpuid1_ecx::kHypervisor) != 0;
  const bool vmx_bit = (arch::cpuid(1).ecx & arch::cpuid1_ecx::kVmx) != 0;
  log::info(
      "guest: CPUID.1:ECX hypervisor=%d vmx=%d; CPUID 0x40000000: max leaf 0x%x vendor \"%s\"\n",
      hv_bit, vmx_bit, v.eax, vendor);
  // A hypercall with an unknown call code (0xFFFF) must come back as
  // HV_STATUS_INVALID_HYPERCALL_CODE (2) in RAX: the VMCALL exited to microhv.
  uint64_t rax;
  register uint64_t r8 asm("r8") = 0;
  asm volatile("vmcall" : "=a"(rax), "+r"(r8) : "c"(0xFFFFull), "d"(0ull) : "memory");
  log::info("guest: VMCALL with call code 0xffff returned 0x%llx\n",
            static_cast<unsigned long long>(rax));
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
  if (EFI_ERROR(s))
    log::error("vmx: InstallConfigurationTable failed: 0x%llx\n", (unsigned long long)s);
}

// ---------------------------------------------------------------- MP services

// What the BSP needs about each CPU once it runs as the guest (the pool is
// not present for it then): kept on its stack.
struct CpuPlan {
  uint32_t processor;  // MP services processor number
  uint32_t apic_id;
  uint64_t cpu_launch;  // CpuLaunch* in the pool (only the AP itself, natively, touches it)
  uint64_t host_stack_top;
};
struct MpPlan {
  EfiMpServices* mp = nullptr;
  uint32_t processors = 1;  // as MP services counts them
  uint32_t count = 1;       // CPUs microhv will try to virtualize (VP 0 .. count-1)
  uint64_t host_cr3 = 0, ap_entry = 0;
  CpuPlan cpu[kMaxCpus];
  uint32_t native_count = 0;  // enabled processors left out (see LaunchInfo::native_apic_ids)
  uint32_t native_apic_ids[kMaxCpus];
};

uint32_t own_apic_id() {
  if (arch::cpuid(0).eax >= 0xB && arch::cpuid(0xB, 0).ebx != 0) return arch::cpuid(0xB, 0).edx;
  return arch::cpuid(1).ebx >> 24;
}

// Which CPUs there are and which VP each one becomes (vmx/smp.hpp).
void discover_cpus(EFI_BOOT_SERVICES* bs, MpPlan* plan) {
  plan->count = 1;
  plan->cpu[0] = CpuPlan{0, own_apic_id(), 0, 0};
  EfiMpServices* mp = nullptr;
  EFI_STATUS s = boot::locate_mp_services(bs, &mp);
  if (EFI_ERROR(s) || mp == nullptr) {
    log::info("vmx: no EFI_MP_SERVICES_PROTOCOL (0x%llx): virtualizing the boot CPU only\n",
              (unsigned long long)s);
    return;
  }
  UINTN total = 0, enabled = 0, bsp = 0;
  s = mp->GetNumberOfProcessors(mp, &total, &enabled);
  if (!EFI_ERROR(s)) s = mp->WhoAmI(mp, &bsp);
  if (EFI_ERROR(s) || total == 0) {
    log::error("vmx: MP services: GetNumberOfProcessors/WhoAmI failed (0x%llx): boot CPU only\n",
               (unsigned long long)s);
    return;
  }
  constexpr uint32_t kMaxProcessors = 256;
  const uint32_t n = total > kMaxProcessors ? kMaxProcessors : static_cast<uint32_t>(total);
  uint32_t flags[kMaxProcessors];
  uint32_t apic[kMaxProcessors];
  uint32_t vp_of[kMaxProcessors];
  for (uint32_t p = 0; p < n; ++p) {
    EfiProcessorInformation pi{};
    if (EFI_ERROR(mp->GetProcessorInfo(mp, p, &pi))) {
      flags[p] = 0;
      apic[p] = 0;
      continue;
    }
    flags[p] = pi.status_flag;
    apic[p] = static_cast<uint32_t>(pi.processor_id);
  }
  const uint32_t count =
      boot::assign_vp_indexes(flags, n, static_cast<uint32_t>(bsp), kMaxCpus, vp_of);
  if (count == 0) return;
  for (uint32_t p = 0; p < n; ++p) {
    if (vp_of[p] != boot::kNoVp) {
      plan->cpu[vp_of[p]] = CpuPlan{p, apic[p], 0, 0};
    } else if ((flags[p] & boot::kProcessorEnabled) != 0 && plan->native_count < kMaxCpus) {
      plan->native_apic_ids[plan->native_count++] = apic[p];
    }
  }
  plan->mp = mp;
  plan->processors = n;
  plan->count = count;
  log::info(
      "vmx: MP services: %llu processors (%llu enabled), BSP is processor %llu: %u VP(s)%s\n",
      (unsigned long long)total, (unsigned long long)enabled, (unsigned long long)bsp, count,
      bsp == 0 ? ", VP index = processor number" : "; BSP = VP 0, the others in processor order");
}

// Runs on an AP, called by MP services (natively: the AP is not virtualized
// yet, so it may touch microhv's pool). Captures its state and virtualizes
// it; from microhv_virtualize's return on it is a guest, for which the pool
// is gone: only the handshake (guest memory) is written after that.
void EFIAPI ap_virtualize(void* argument) {
  auto* h = static_cast<ApHandshake*>(argument);
  if (!boot::ap_begin(*h)) return;  // the BSP gave up on this AP already
  auto* cpu = reinterpret_cast<CpuLaunch*>(h->cpu_launch);
  capture_guest_state(&cpu->guest);
  const uint64_t status = microhv_virtualize(
      cpu, reinterpret_cast<uint64_t (*)(CpuLaunch*)>(h->entry), h->host_cr3, h->host_stack_top);
  uint32_t vp_index = boot::kNoVp, hv_bit = 0;
  if (status == 0) {
    // As the guest: VP_INDEX (synthetic MSR, exits to microhv) and CPUID.
    vp_index = static_cast<uint32_t>(arch::rdmsr(tlfs::msr::kVpIndex));
    hv_bit = hypervisor_bit();
  }
  boot::ap_finish(*h, status, vp_index, hv_bit);
}

// Runs on an AP that is already a guest, when the firmware starts it again
// (with INIT-SIPI-SIPI under OVMF's HLT-loop AP mode): what it sees.
void EFIAPI ap_probe(void* argument) {
  auto* h = static_cast<ApHandshake*>(argument);
  if (!boot::ap_begin(*h)) return;
  boot::ap_finish(*h, 0, static_cast<uint32_t>(arch::rdmsr(tlfs::msr::kVpIndex)), hypervisor_bit());
}

template <typename Done>
bool wait_until(EFI_BOOT_SERVICES* bs, uint64_t timeout_us, Done done) {
  for (uint64_t t = 0;; t += kPollUs) {
    if (done()) return true;
    if (t >= timeout_us) return false;
    bs->Stall(kPollUs);
  }
}

enum class ApResult { kOk, kFailed };

// One AP through StartupThisAP without blocking on it: with a WaitEvent the
// call returns as soon as the AP has been woken, then the BSP polls the
// handshake with a bound. MP services itself notices the procedure's end
// only from a periodic timer, so a second StartupThisAP on the same AP may
// find it busy for a while (EFI_NOT_READY): that is retried, also bounded.
// The handshake and the event are leaked on purpose: MP services signals
// the event later, and an AP that missed its deadline may still write the
// handshake.
ApResult run_on_ap(EFI_BOOT_SERVICES* bs, const MpPlan& plan, uint32_t vp, EfiApProcedure procedure,
                   const char* what, ApHandshake** out) {
  const CpuPlan& c = plan.cpu[vp];
  *out = nullptr;
  void* mem = nullptr;
  EFI_EVENT event = nullptr;
  EFI_STATUS s = bs->AllocatePool(EfiBootServicesData, sizeof(ApHandshake), &mem);
  if (!EFI_ERROR(s)) s = bs->CreateEvent(0, 0, nullptr, nullptr, &event);
  if (EFI_ERROR(s)) {
    log::error("cpu %u (APIC ID %u): %s: no memory/event for the handshake (0x%llx)\n", c.processor,
               c.apic_id, what, (unsigned long long)s);
    return ApResult::kFailed;
  }
  auto* h = new (mem) ApHandshake{};
  h->cpu_launch = c.cpu_launch;
  h->entry = plan.ap_entry;
  h->host_cr3 = plan.host_cr3;
  h->host_stack_top = c.host_stack_top;
  uint64_t busy_us = 0;
  wait_until(bs, kApIdleTimeoutUs, [&] {
    s = plan.mp->StartupThisAP(plan.mp, procedure, c.processor, event, 0, h, nullptr);
    if (s != EFI_NOT_READY) return true;
    busy_us += kPollUs;
    return false;
  });
  if (EFI_ERROR(s)) {
    log::error("cpu %u (APIC ID %u): %s: StartupThisAP failed: 0x%llx%s\n", c.processor, c.apic_id,
               what, (unsigned long long)s, s == EFI_NOT_READY ? " (the AP stayed busy)" : "");
    bs->CloseEvent(event);
    bs->FreePool(mem);
    return ApResult::kFailed;
  }
  if (!wait_until(bs, kApStartTimeoutUs, [&] { return boot::ap_done(*h); })) {
    if (boot::bsp_abandon(*h)) {
      log::error(
          "cpu %u (APIC ID %u): %s: the AP did not start microhv's procedure within %llu ms; it "
          "stays as it "
          "is\n",
          c.processor, c.apic_id, what, (unsigned long long)(kApStartTimeoutUs / 1000));
    } else {
      log::error(
          "cpu %u (APIC ID %u): %s: the AP started but did not finish within %llu ms; it stays as "
          "it is\n",
          c.processor, c.apic_id, what, (unsigned long long)(kApStartTimeoutUs / 1000));
    }
    return ApResult::kFailed;
  }
  if (busy_us != 0) {
    log::info("cpu %u: %s: MP services reported the AP busy for %llu us first\n", c.processor, what,
              (unsigned long long)busy_us);
  }
  *out = h;
  return ApResult::kOk;
}

// Virtualizes APs one at a time, in VP order, so each becomes the next VP.
// Stops at the first failure: later VP indexes would no longer match.
uint32_t virtualize_aps(EFI_BOOT_SERVICES* bs, const MpPlan& plan) {
  uint32_t up = 1;
  for (uint32_t vp = 1; vp < plan.count; ++vp) {
    const CpuPlan& c = plan.cpu[vp];
    ApHandshake* h = nullptr;
    if (run_on_ap(bs, plan, vp, ap_virtualize, "virtualizing", &h) != ApResult::kOk) break;
    if (h->status != 0) {
      log::error(
          "cpu %u (APIC ID %u): virtualization failed on the AP (status 0x%llx, see its log lines "
          "above); it "
          "runs natively\n",
          c.processor, c.apic_id, (unsigned long long)h->status);
      bs->FreePool(h);
      break;
    }
    const bool ok = h->vp_index == vp && h->hv_bit == 1;
    (ok ? log::info : log::error)(
        "guest: cpu %u runs above microhv: VP_INDEX %u, CPUID.1:ECX hypervisor=%u\n", c.processor,
        h->vp_index, h->hv_bit);
    bs->FreePool(h);
    ++up;
  }
  if (up < plan.count) {
    log::error(
        "vmx: only %u of %u processors virtualized; processors from cpu %u on run natively\n", up,
        plan.count, plan.cpu[up].processor);
  }
  return up;
}

// Each virtualized AP once more through MP services: under OVMF this wakes
// the AP with INIT-SIPI-SIPI, which now exits to microhv (INIT -> wait for
// SIPI -> real mode at the SIPI vector): the same path an OS takes to start
// its APs. The AP must come back as the same VP.
void probe_restarted_aps(EFI_BOOT_SERVICES* bs, const MpPlan& plan, uint32_t up) {
  for (uint32_t vp = 1; vp < up; ++vp) {
    const CpuPlan& c = plan.cpu[vp];
    ApHandshake* h = nullptr;
    if (run_on_ap(bs, plan, vp, ap_probe, "restart probe", &h) != ApResult::kOk) continue;
    const bool ok = h->vp_index == vp && h->hv_bit == 1;
    (ok ? log::info : log::error)(
        "guest: cpu %u started again by MP services runs above microhv: VP_INDEX %u, "
        "CPUID.1:ECX hypervisor=%u\n",
        c.processor, h->vp_index, h->hv_bit);
    bs->FreePool(h);
  }
}

// microhv.cfg `testdev = on`: one command the test device accepts and undoes
// (SINT route create + destroy for VP 0 SINT 0) and a byte read that must
// pass through to the real port.
void testdev_self_check() {
  constexpr uint32_t kRouteCreate = static_cast<uint32_t>(TestDevice::Control::kSintRouteCreate)
                                    << 16;
  constexpr uint32_t kRouteDestroy = static_cast<uint32_t>(TestDevice::Control::kSintRouteDestroy)
                                     << 16;
  arch::outl(TestDevice::kIoPort, kRouteCreate);
  arch::outl(TestDevice::kIoPort, kRouteDestroy);
  const uint8_t b = arch::inb(TestDevice::kIoPort);
  log::info("guest: testdev: 32-bit OUTs to port 0x3000 accepted; a 1-byte IN from it read 0x%x\n",
            b);
}

}  // namespace

EFI_STATUS start(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config) {
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
    log::error("vmx: LoadedImage base 0x%llx differs from ImageBase 0x%llx\n",
               (unsigned long long)image_base,
               (unsigned long long)reinterpret_cast<uint64_t>(ImageBase));
    return EFI_LOAD_ERROR;
  }

  // Kept on the stack: after the launch this code runs as the guest.
  MpPlan plan;
  discover_cpus(bs, &plan);

  const uint64_t info_pages = (sizeof(LaunchInfo) + kPageSize - 1) / kPageSize;
  const uint64_t pages =
      image_pages + info_pages + plan.count * kPerCpuPages + kSharedPages + kTablePages;
  EFI_PHYSICAL_ADDRESS base = 0;
  s = bs->AllocatePages(AllocateAnyPages, EfiRuntimeServicesData, pages, &base);
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
  info->msr_bitmap = pool.take(1);   // only MSRs outside its ranges, and x2APIC ICR writes, exit
  info->io_bitmap_b = pool.take(1);  // all zero: ports 0x8000-0xFFFF never exit
  info->overlay_page = pool.take(1);
  info->testdev = config.testdev;
  info->cpu_count = plan.count;
  info->native_count = plan.native_count;
  for (uint32_t i = 0; i < plan.native_count; ++i)
    info->native_apic_ids[i] = plan.native_apic_ids[i];
  // WRMSR to the x2APIC ICR exits (write bitmap for MSRs 0-0x1FFF at byte
  // 0x800), so INIT IPIs to VPs can be emulated.
  constexpr uint32_t kIcr = arch::apic::kX2apicIcrMsr;
  reinterpret_cast<uint8_t*>(info->msr_bitmap)[0x800 + kIcr / 8] |= 1u << (kIcr % 8);
  for (uint32_t i = 0; i < plan.count; ++i) {
    CpuLaunch& c = info->cpus[i];
    c.info = reinterpret_cast<uint64_t>(info);
    c.index = i;
    c.processor = plan.cpu[i].processor;
    c.apic_id = plan.cpu[i].apic_id;
    c.host_stack_top = pool.take(kHostStackPages) + kHostStackPages * kPageSize;
    c.ist_stack_top = pool.take(kIstStackPages) + kIstStackPages * kPageSize;
    c.gdt_page = pool.take(1);
    c.idt_page = pool.take(1);
    c.tss_page = pool.take(1);
    c.vmxon_page = pool.take(1);
    c.vmcs_page = pool.take(1);
    c.frame_page = pool.take(1);
    c.io_bitmap_a = pool.take(1);  // ports 0-0x7FFF: only the test device port may exit
    if (config.testdev) {
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
  for (uint64_t i = 0; i < image_pages * kPageSize && i < li->ImageSize; ++i) {
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

  log::info(
      "vmx: image 0x%llx (%llu KiB) copied to 0x%llx; pool %llu KiB EfiRuntimeServicesData for %u "
      "CPU(s); %u "
      "memory regions, identity map up to 0x%llx (%u-bit physical); TSC %llu kHz\n",
      (unsigned long long)image_base, (unsigned long long)(li->ImageSize >> 10),
      (unsigned long long)copy, (unsigned long long)(pages * 4), plan.count, info->region_count,
      (unsigned long long)info->ept_limit, info->phys_addr_bits,
      (unsigned long long)(info->tsc_hz / 1000));

  // After the launch this code runs as the guest, for which the whole pool
  // (LaunchInfo included) is not present: keep what it needs on the stack.
  const InfoTable table{kInfoTableSignature, 1, sizeof(InfoTable), info->pool_base, info->pool_size,
                        info->overlay_page};
  plan.host_cr3 = info->host_cr3;
  plan.ap_entry = copy + (reinterpret_cast<uint64_t>(&microhv_ap_host_entry) - image_base);
  CpuLaunch* bsp = &info->cpus[0];
  capture_guest_state(&bsp->guest);
  const uint64_t entry = copy + (reinterpret_cast<uint64_t>(&microhv_host_entry) - image_base);
  const uint64_t status = microhv_virtualize(bsp, reinterpret_cast<uint64_t (*)(CpuLaunch*)>(entry),
                                             info->host_cr3, bsp->host_stack_top);
  if (status != 0) {
    log::error(
        "vmx: virtualization failed (status 0x%llx); the firmware continues without microhv\n",
        (unsigned long long)status);
    bs->FreePages(base, pages);
    return status;
  }
  log::info("guest: the firmware is running as a guest of microhv\n");
  guest_self_check();
  if (plan.mp != nullptr && plan.count > 1) {
    const uint32_t up = virtualize_aps(bs, plan);
    log::info("guest: %u of %u processor(s) run above microhv as VP 0-%u\n", up, plan.processors,
              up - 1);
    probe_restarted_aps(bs, plan, up);
  }
  if (config.testdev) testdev_self_check();
  publish_info_table(bs, table);
  return EFI_SUCCESS;
}

}  // namespace microhv::vmx
