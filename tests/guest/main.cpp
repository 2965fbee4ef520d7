// Guest suite entry: sets up memory, the IDT and the report, runs the check
// groups and powers the machine off.
//
// Load options (optional, e.g. from the EFI shell or microhv's chainloader):
//   --only=GROUP[,GROUP...]   run only these groups (fixtures still run)
//   --demo                    the SynIC demo instead of the checks (demo.cpp)
//   --bench                   the round-trip benchmark instead (bench.cpp)
// Groups: guest cpuid msr hypercall port message seed event sint isolation.
#include <efi.h>

#include "kernel/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

EFI_SYSTEM_TABLE* g_st;
unsigned g_passed, g_failed, g_skipped;
bool g_finishing;
char g_only[128];     // comma-separated group list, empty = all
char g_options[256];  // the load options as ASCII, empty when absent or not text
const char* g_mode;   // "demo" / "bench" while one of those runs, else nullptr

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
  char buf[96];
  if (g_skipped != 0) {
    microhv::format(buf, sizeof(buf), "guest: NOTE %u checks skipped (not counted)", g_skipped);
    line(buf);
  }
  microhv::format(buf, sizeof(buf), "%u passed, %u failed", g_passed, g_failed);
  line(buf);
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

}  // namespace

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
  // no boot service (their TPL restore would re-enable interrupts).
  env.hypercall_page = alloc_pages(1);
  env.in = alloc_pages(2);
  env.out = alloc_pages(1);
  env.sim = alloc_pages(1);
  env.sief = alloc_pages(1);

  if (has_option("--demo")) g_mode = "demo";
  if (has_option("--bench")) g_mode = "bench";
  if (g_mode == nullptr) {
    line("guest: microhv guest conformance suite");
    if (g_only[0] != '\0') note("running only groups: %s", g_only);
  }
  if (env.hypercall_page == nullptr || env.in == nullptr || env.out == nullptr ||
      env.sim == nullptr || env.sief == nullptr) {
    abort_suite("AllocatePages failed");
  }
  cli();
  if (!install_idt()) abort_suite("IDT stubs are not 16 bytes apart");
  if (g_mode != nullptr && g_mode[0] == 'd') run_demo();
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
