// Guest suite entry: sets up memory, the IDT and the report, runs the check
// groups and powers the machine off.
//
// Load options (optional, e.g. from the EFI shell or microhv's chainloader):
//   --only=GROUP[,GROUP...]   run only these groups (fixtures still run)
//   --demo                    the SynIC demo instead of the checks (demo.cpp)
//   --bench                   the round-trip benchmark instead (bench.cpp)
//   --load                    the multi-CPU load test instead (load.cpp)
// Groups: guest cpuid msr hypercall port message seed event sint time isolation
// authority smp rep hostile.
//   --crash-at-end            after the summary, report a crash (crash MSRs)
#include <efi.h>

#include "boot/efi/mp_services.hpp"
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

EFI_SYSTEM_TABLE* g_st;
unsigned g_passed, g_failed, g_skipped;
bool g_finishing;
char g_only[128];     // comma-separated group list, empty = all
char g_options[256];  // the load options as ASCII, empty when absent or not text
const char* g_mode;   // "demo" / "bench" / "load" while one of those runs, else nullptr

// ------------------------------------------------------------------ MP services
// EFI_MP_SERVICES_PROTOCOL: microhv's one definition (boot/efi/mp_services.hpp).
using microhv::boot::EfiMpServices;
using microhv::boot::EfiProcessorInformation;

uint64_t g_tsc_hz = 1'000'000'000;  // measured in efi_main

EfiMpServices* g_mp;
unsigned g_mp_count = 1;
char g_mp_note[160] = "no MP services protocol";
EFI_EVENT g_ap_events[kMaxCpus];

// What an AP runs: the firmware calls it with the MS ABI.
struct ApStart {
  void (*fn)(void*);
  void* arg;
};
ApStart g_ap_start[kMaxCpus];
void EFIAPI ap_trampoline(void* p) {
  auto* start = static_cast<ApStart*>(p);
  start->fn(start->arg);
}

// Finds the protocol and the processors. VP index = processor number, the
// BSP must be processor 0 and the numbers below kMaxCpus must be enabled.
void discover_cpus(uint32_t* apic_ids) {
  EFI_BOOT_SERVICES* bs = g_st->BootServices;
  if (microhv::boot::locate_mp_services(bs, &g_mp) != EFI_SUCCESS || g_mp == nullptr) return;
  UINTN count = 0, enabled = 0, me = ~UINTN{0};
  EFI_STATUS s = g_mp->GetNumberOfProcessors(g_mp, &count, &enabled);
  if (s != EFI_SUCCESS || count == 0) {
    microhv::format(g_mp_note, sizeof(g_mp_note), "GetNumberOfProcessors failed (0x%lx)", s);
    return;
  }
  if (g_mp->WhoAmI(g_mp, &me) != EFI_SUCCESS || me != 0) {
    microhv::format(g_mp_note, sizeof(g_mp_note),
                    "%lu processors, but the BSP is processor %lu (not 0)", count, me);
    return;
  }
  unsigned usable = 0;
  for (UINTN i = 0; i < count && i < kMaxCpus; ++i) {
    EfiProcessorInformation info{};
    if (g_mp->GetProcessorInfo(g_mp, i, &info) != EFI_SUCCESS ||
        (info.status_flag & microhv::boot::kProcessorEnabled) == 0) {
      break;
    }
    apic_ids[i] = static_cast<uint32_t>(info.processor_id);
    ++usable;
  }
  for (unsigned i = 1; i < usable; ++i) {
    if (bs->CreateEvent(0, 0, nullptr, nullptr, &g_ap_events[i]) != EFI_SUCCESS) {
      usable = i;
      break;
    }
  }
  g_mp_count = usable == 0 ? 1 : usable;
  microhv::format(g_mp_note, sizeof(g_mp_note),
                  "MP services: %lu processors (%lu enabled), using %u", count, enabled,
                  g_mp_count);
}

// The UEFI memory map, copied before the checks.
uint8_t* g_memmap;
UINTN g_memmap_size, g_memmap_desc_size;

void read_memory_map() {
  EFI_BOOT_SERVICES* bs = g_st->BootServices;
  UINTN size = 0, key = 0, desc_size = 0;
  UINT32 desc_version = 0;
  bs->GetMemoryMap(&size, nullptr, &key, &desc_size, &desc_version);
  if (size == 0 || desc_size == 0) return;
  size += 8 * desc_size;  // the pool allocation below may add descriptors
  void* buf = nullptr;
  if (bs->AllocatePool(EfiLoaderData, size, &buf) != EFI_SUCCESS) return;
  if (bs->GetMemoryMap(&size, static_cast<EFI_MEMORY_DESCRIPTOR*>(buf), &key, &desc_size,
                       &desc_version) != EFI_SUCCESS) {
    bs->FreePool(buf);
    return;
  }
  g_memmap = static_cast<uint8_t*>(buf);
  g_memmap_size = size;
  g_memmap_desc_size = desc_size;
}

void line(const char* text) {
  serial_write(text);
  serial_write("\n");
}

void vline(const char* prefix, const char* name, const char* fmt, va_list args) {
  char detail[320];
  microhv::format(detail, sizeof(detail), fmt, args);
  char buf[420];
  microhv::format(buf, sizeof(buf), "guest: %s %s: %s", prefix, name, detail);
  line(buf);
}

[[noreturn]] void finish() {
  stop_vp1();
  g_finishing = true;
  char buf[96];
  if (g_skipped != 0) {
    microhv::format(buf, sizeof(buf), "guest: NOTE %u checks skipped (not counted)", g_skipped);
    line(buf);
  }
  microhv::format(buf, sizeof(buf), "%u passed, %u failed", g_passed, g_failed);
  line(buf);
  if (has_option("--crash-at-end")) report_crash_at_end();
  shutdown();
}

bool group_selected(const char* group) {
  if (g_only[0] == '\0') return true;
  size_t n = 0;
  while (group[n] != '\0') ++n;
  for (const char* p = g_only; *p != '\0';) {
    const char* end = p;
    while (*end != '\0' && *end != ',') ++end;
    if (static_cast<size_t>(end - p) == n && memcmp(p, group, n) == 0) return true;
    p = *end == ',' ? end + 1 : end;
  }
  return false;
}

// Takes "--only=..." from the image's load options when they are UCS-2 text.
void parse_options(EFI_HANDLE image) {
  EFI_GUID guid = EFI_LOADED_IMAGE_PROTOCOL_GUID;
  EFI_LOADED_IMAGE* li = nullptr;
  if (g_st->BootServices->HandleProtocol(image, &guid, reinterpret_cast<void**>(&li)) !=
          EFI_SUCCESS ||
      li == nullptr || li->LoadOptions == nullptr || li->LoadOptionsSize < 2 ||
      (li->LoadOptionsSize & 1) != 0) {
    return;
  }
  char text[256];
  size_t n = 0;
  const auto* w = static_cast<const CHAR16*>(li->LoadOptions);
  for (size_t i = 0; i < li->LoadOptionsSize / 2 && n + 1 < sizeof(text); ++i) {
    CHAR16 c = w[i];
    if (c == 0) break;
    if (c < 0x20 || c > 0x7E) return;  // not text (e.g. binary boot option data)
    text[n++] = static_cast<char>(c);
  }
  text[n] = '\0';
  memcpy(g_options, text, n + 1);
  option_value("--only=", g_only, sizeof(g_only));
}

}  // namespace

uint8_t* alloc_pages(size_t count) {
  EFI_PHYSICAL_ADDRESS addr = 0;
  if (g_st->BootServices->AllocatePages(AllocateAnyPages, EfiLoaderData, count, &addr) !=
      EFI_SUCCESS) {
    return nullptr;
  }
  auto* p = reinterpret_cast<uint8_t*>(addr);
  memset(p, 0, count * 4096);
  return p;
}

_EFI_SYSTEM_TABLE* system_table() {
  return g_st;
}

uint64_t tsc_hz() {
  return g_tsc_hz;
}

bool memory_type_at(uint64_t addr, uint32_t* type, uint64_t* attributes) {
  for (UINTN off = 0; g_memmap != nullptr && off + g_memmap_desc_size <= g_memmap_size;
       off += g_memmap_desc_size) {
    const auto* d = reinterpret_cast<const EFI_MEMORY_DESCRIPTOR*>(g_memmap + off);
    if (addr >= d->PhysicalStart && addr - d->PhysicalStart < d->NumberOfPages * 4096) {
      *type = d->Type;
      *attributes = d->Attribute;
      return true;
    }
  }
  return false;
}

unsigned mp_cpu_count() {
  return g_mp_count;
}

const char* mp_note() {
  return g_mp_note;
}

bool mp_start_ap(unsigned cpu, void (*fn)(void*), void* arg, char* why, size_t cap) {
  if (g_mp == nullptr || cpu == 0 || cpu >= g_mp_count) {
    microhv::format(why, cap, "no processor %u (%s)", cpu, g_mp_note);
    return false;
  }
  g_ap_start[cpu] = ApStart{fn, arg};
  EFI_STATUS s =
      g_mp->StartupThisAP(g_mp, ap_trampoline, cpu, g_ap_events[cpu], 0, &g_ap_start[cpu], nullptr);
  if (s != EFI_SUCCESS) {
    microhv::format(why, cap, "StartupThisAP(%u) failed: 0x%lx", cpu, s);
    return false;
  }
  return true;
}

bool detect_hyperv(char* why, size_t cap) {
  Cpuid l1 = cpuid(1);
  Cpuid v = cpuid(tlfs::cpuid::kVendorLeaf);
  Cpuid i = cpuid(tlfs::cpuid::kInterfaceLeaf);
  char vendor[13];
  memcpy(vendor + 0, &v.ebx, 4);
  memcpy(vendor + 4, &v.ecx, 4);
  memcpy(vendor + 8, &v.edx, 4);
  vendor[12] = '\0';
  for (char& c : vendor) {
    if (c != '\0' && (c < 0x20 || c > 0x7E)) c = '.';
  }
  env.hv_present = (l1.ecx & (1u << 31)) != 0 && memcmp(vendor, "Microsoft Hv", 12) == 0 &&
                   i.eax == tlfs::cpuid::kHvInterfaceSignature;
  microhv::format(why, cap, "CPUID.1:ECX[31]=%u, 0x40000000 vendor \"%s\", 0x40000001 EAX 0x%x",
                  (l1.ecx >> 31) & 1, vendor, i.eax);
  return env.hv_present;
}

// Words of the load options are separated by spaces; `word` must match one whole.
bool has_option(const char* word) {
  size_t n = 0;
  while (word[n] != '\0') ++n;
  for (const char* p = g_options; *p != '\0';) {
    while (*p == ' ') ++p;
    const char* end = p;
    while (*end != '\0' && *end != ' ') ++end;
    if (static_cast<size_t>(end - p) == n && n != 0 && memcmp(p, word, n) == 0) return true;
    p = end;
  }
  return false;
}

bool option_value(const char* prefix, char* out, size_t cap) {
  size_t n = 0;
  while (prefix[n] != '\0') ++n;
  for (const char* p = g_options; *p != '\0';) {
    while (*p == ' ') ++p;
    const char* end = p;
    while (*end != '\0' && *end != ' ') ++end;
    if (static_cast<size_t>(end - p) >= n && memcmp(p, prefix, n) == 0) {
      size_t j = 0;
      for (const char* q = p + n; q < end && j + 1 < cap; ++q) out[j++] = *q;
      if (cap > 0) out[j] = '\0';
      return true;
    }
    p = end;
  }
  return false;
}

uint64_t option_number(const char* prefix, uint64_t fallback, uint64_t lo, uint64_t hi) {
  char text[24];
  if (!option_value(prefix, text, sizeof(text)) || text[0] == '\0') return fallback;
  uint64_t v = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9' || v > (hi - (*p - '0')) / 10) return fallback;
    v = v * 10 + static_cast<uint64_t>(*p - '0');
  }
  return v < lo ? fallback : v;
}

void say(const char* text) {
  serial_write(text);
  serial_write("\n");
}

[[noreturn]] void shutdown() {
  g_finishing = true;
  cli();
  restore_idt();
  serial_drain();
  g_st->RuntimeServices->ResetSystem(EfiResetShutdown, EFI_SUCCESS, 0, nullptr);
  for (;;) asm volatile("cli; hlt");
}

// ------------------------------------------------------------------ report
void pass(const char* name) {
  ++g_passed;
  char buf[160];
  microhv::format(buf, sizeof(buf), "guest: PASS %s", name);
  line(buf);
}

void fail(const char* name, const char* fmt, ...) {
  ++g_failed;
  va_list args;
  va_start(args, fmt);
  vline("FAIL", name, fmt, args);
  va_end(args);
}

void skip(const char* name, const char* why) {
  ++g_skipped;
  char buf[320];
  microhv::format(buf, sizeof(buf), "guest: SKIP %s: %s", name, why);
  line(buf);
}

void note(const char* fmt, ...) {
  char detail[320];
  va_list args;
  va_start(args, fmt);
  microhv::format(detail, sizeof(detail), fmt, args);
  va_end(args);
  char buf[340];
  microhv::format(buf, sizeof(buf), "guest: NOTE %s", detail);
  line(buf);
}

bool check(const char* name, bool ok, const char* fmt, ...) {
  if (ok) {
    pass(name);
    return true;
  }
  ++g_failed;
  va_list args;
  va_start(args, fmt);
  vline("FAIL", name, fmt, args);
  va_end(args);
  return false;
}

bool check_hv(const char* name, bool ok, const char* fmt, ...) {
  if (ok && !env.hv_present) {
    fail(name, "no Hyper-V interface in CPUID (the access itself behaved as expected)");
    return false;
  }
  if (ok) {
    pass(name);
    return true;
  }
  ++g_failed;
  va_list args;
  va_start(args, fmt);
  vline("FAIL", name, fmt, args);
  va_end(args);
  return false;
}

[[noreturn]] void abort_suite(const char* why) {
  if (g_finishing) {
    for (;;) asm volatile("cli; hlt");
  }
  if (g_mode != nullptr) {  // demo or bench: no checks, no summary
    char buf[400];
    microhv::format(buf, sizeof(buf), "%s: FAILED: %s", g_mode, why);
    line(buf);
    shutdown();
  }
  fail("suite-aborted", "%s", why);
  finish();
}

}  // namespace guest

extern "C" EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE* st) {
  using namespace guest;
  g_st = st;
  st->BootServices->SetWatchdogTimer(0, 0, 0, nullptr);
  parse_options(image);

  // All allocation happens here: the checks run with interrupts off and call
  // no boot service (their TPL restore would re-enable interrupts); only the
  // smp group starts its AP through MP services.
  env.hypercall_page = alloc_pages(1);
  env.in = alloc_pages(2);
  env.out = alloc_pages(1);
  env.sim = alloc_pages(1);
  env.sief = alloc_pages(1);
  env.time_pages = alloc_pages(3);
  env.tlb_pages = alloc_pages(kTlbPages);
  uint32_t apic_ids[kMaxCpus] = {};
  discover_cpus(apic_ids);
  bool cpu_pages_ok = true;
  for (unsigned i = 0; i < g_mp_count; ++i) {
    CpuPages& p = env.cpu[i];
    p.sim = alloc_pages(1);
    p.sief = alloc_pages(1);
    p.in = alloc_pages(1);
    p.out = alloc_pages(1);
    cpu_pages_ok = cpu_pages_ok && p.sim != nullptr && p.sief != nullptr && p.in != nullptr &&
                   p.out != nullptr;
  }
  read_memory_map();
  {
    // TSC rate against the firmware's Stall (a calibrated busy wait; under
    // Bochs both count emulated time).
    const uint64_t t0 = rdtsc();
    st->BootServices->Stall(10000);
    const uint64_t t1 = rdtsc();
    if (t1 - t0 >= 10'000) g_tsc_hz = (t1 - t0) * 100;
  }

  if (has_option("--demo")) g_mode = "demo";
  if (has_option("--bench")) g_mode = "bench";
  if (has_option("--load")) g_mode = "load";
  if (g_mode == nullptr) {
    line("guest: microhv guest conformance suite");
    if (g_only[0] != '\0') note("running only groups: %s", g_only);
  }
  if (env.hypercall_page == nullptr || env.in == nullptr || env.out == nullptr ||
      env.sim == nullptr || env.sief == nullptr || env.time_pages == nullptr ||
      env.tlb_pages == nullptr || !cpu_pages_ok) {
    abort_suite("AllocatePages failed");
  }
  cli();
  if (!install_idt()) abort_suite("IDT stubs are not 16 bytes apart");
  set_cpus(g_mp_count, apic_ids);
  if (g_mp_count > 1 && this_cpu() != 0) {
    abort_suite("the BSP's local APIC ID is not MP-services processor 0's");
  }
  if (g_mode != nullptr && g_mode[0] == 'd') run_demo();
  if (g_mode != nullptr && g_mode[0] == 'l') run_load();
  if (g_mode != nullptr) run_bench();
  {
    char why[160];
    if (!detect_hyperv(why, sizeof(why))) {
      note("no Hyper-V interface (%s): checks that need it will FAIL", why);
    }
  }

  struct Group {
    const char* name;
    void (*run)();
  };
  static const Group groups[] = {
      {"guest", group_guest},
      {"cpuid", group_cpuid},
      {"msr", group_msr},
      {"hypercall", group_hypercall},
      {"port", group_port},
      {"message", group_message},
      {"seed", group_seed},
      {"event", group_event},
      {"sint", group_sint},
      {"time", group_time},
      {"isolation", group_isolation},
      {"authority", group_authority},
      {"smp", group_smp},
      {"rep", group_rep},
      {"hostile", group_hostile_memory},
      // Last: the x2APIC check leaves the APIC in x2APIC mode.
      {"hostile", group_hostile_cpu},
      {"hostile", group_hostile_apic},
  };
  for (const Group& g : groups) {
    if (!group_selected(g.name)) continue;
    // VP 1 goes back to the firmware before the hostile group: that group
    // leaves VP 0's APIC in x2APIC mode, and OVMF's AP code, returning from
    // VP 1's procedure afterwards, then triple-faulted VP 1.
    if (g.run == group_hostile_cpu) stop_vp1();
    g.run();
  }
  finish();
}
