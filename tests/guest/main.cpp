// Guest suite entry: sets up memory, the IDT and the report, runs the check
// groups and powers the machine off.
//
// Load options (optional, e.g. from the EFI shell or microhv's chainloader):
//   --only=GROUP[,GROUP...]   run only these groups (fixtures still run)
// Groups: guest cpuid msr hypercall port message seed event sint isolation.
#include <efi.h>

#include "kernel/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

EFI_SYSTEM_TABLE* g_st;
unsigned g_passed, g_failed, g_skipped;
bool g_finishing;
char g_only[128];  // comma-separated group list, empty = all

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
  g_finishing = true;
  cli();
  restore_idt();
  char buf[96];
  if (g_skipped != 0) {
    microhv::format(buf, sizeof(buf), "guest: NOTE %u checks skipped (not counted)", g_skipped);
    line(buf);
  }
  microhv::format(buf, sizeof(buf), "%u passed, %u failed", g_passed, g_failed);
  line(buf);
  serial_drain();
  g_st->RuntimeServices->ResetSystem(EfiResetShutdown, EFI_SUCCESS, 0, nullptr);
  for (;;) asm volatile("cli; hlt");
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
  static const char kOnly[] = "--only=";
  for (size_t i = 0; i + sizeof(kOnly) - 1 <= n; ++i) {
    if (memcmp(text + i, kOnly, sizeof(kOnly) - 1) != 0) continue;
    size_t j = 0;
    for (const char* p = text + i + sizeof(kOnly) - 1;
         *p != '\0' && *p != ' ' && j + 1 < sizeof(g_only); ++p) {
      g_only[j++] = *p;
    }
    g_only[j] = '\0';
    break;
  }
}

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

void detect_hyperv() {
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
  if (!env.hv_present) {
    note(
        "no Hyper-V interface (CPUID.1:ECX[31]=%u, 0x40000000 vendor \"%s\", 0x40000001 EAX 0x%x): "
        "checks that need it will FAIL",
        (l1.ecx >> 31) & 1, vendor, i.eax);
  }
}

}  // namespace

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
  // no boot service (their TPL restore would re-enable interrupts).
  env.hypercall_page = alloc_pages(1);
  env.in = alloc_pages(2);
  env.out = alloc_pages(1);
  env.sim = alloc_pages(1);
  env.sief = alloc_pages(1);

  line("guest: microhv guest conformance suite");
  if (g_only[0] != '\0') note("running only groups: %s", g_only);
  if (env.hypercall_page == nullptr || env.in == nullptr || env.out == nullptr ||
      env.sim == nullptr || env.sief == nullptr) {
    abort_suite("AllocatePages failed");
  }
  cli();
  if (!install_idt()) abort_suite("IDT stubs are not 16 bytes apart");
  detect_hyperv();

  struct Group {
    const char* name;
    void (*run)();
  };
  static const Group groups[] = {
      {"guest", group_guest},         {"cpuid", group_cpuid}, {"msr", group_msr},
      {"hypercall", group_hypercall}, {"port", group_port},   {"message", group_message},
      {"seed", group_seed},           {"event", group_event}, {"sint", group_sint},
      {"isolation", group_isolation},
  };
  for (const Group& g : groups) {
    if (group_selected(g.name)) g.run();
  }
  finish();
}
