#include "kernel/base/log.hpp"

namespace microhv::log {
namespace {

// The logging facility's own state: where lines go. Set once by efi_main and
// once more by the host side (vmx/hw/root.cpp) for the resident copy.
Sink g_sink = nullptr;
void* g_sink_context = nullptr;
bool g_quiet = false;
DeferredLogLocator g_locate = nullptr;

DeferredLog* this_cpu() {
  return g_locate != nullptr ? g_locate() : nullptr;
}

void emit(const char* prefix, const char* fmt, va_list args) {
  if (g_sink == nullptr || g_quiet) return;
  char line[512];
  size_t n = 0;
  for (const char* p = prefix; *p != '\0' && n < sizeof(line) - 1; ++p) line[n++] = *p;
  n += format(line + n, sizeof(line) - n, fmt, args);
  DeferredLog* held = this_cpu();
  if (held == nullptr || held->depth == 0) {
    g_sink(g_sink_context, line, n);
    return;
  }
  if (n > DeferredLog::kCapacity - held->used) {
    ++held->dropped;
    return;
  }
  __builtin_memcpy(held->text + held->used, line, n);
  held->used += static_cast<uint32_t>(n);
}

}  // namespace

void set_deferred_log(DeferredLogLocator locate) {
  g_locate = locate;
}

void hold() {
  if (DeferredLog* held = this_cpu()) ++held->depth;
}

bool release() {
  DeferredLog* held = this_cpu();
  if (held == nullptr || held->depth == 0) return false;
  --held->depth;
  return held->depth == 0 && (held->used > 0 || held->dropped > 0);
}

void write_held() {
  DeferredLog* held = this_cpu();
  if (held == nullptr || held->depth != 0) return;
  if (held->used > 0 && g_sink != nullptr && !g_quiet) {
    g_sink(g_sink_context, held->text, held->used);
  }
  const uint32_t dropped = held->dropped;
  held->used = 0;
  held->dropped = 0;
  if (dropped > 0) error("%u log lines dropped: the per-CPU deferred log was full\n", dropped);
}

void set_sink(Sink sink, void* context) {
  g_sink = sink;
  g_sink_context = context;
}
void set_quiet(bool quiet) {
  g_quiet = quiet;
}

void info(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  emit("microhv: ", fmt, args);
  va_end(args);
}

void error(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  emit("microhv: error: ", fmt, args);
  va_end(args);
}

void stop_holding() {
  DeferredLog* held = this_cpu();
  if (held == nullptr) return;
  held->depth = 0;
  write_held();
}

}  // namespace microhv::log
