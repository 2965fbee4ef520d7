#include "kernel/base/log.hpp"

namespace microhv::log {
namespace {

// The logging facility's own state: where lines go. Set once by efi_main and
// once more by the host side (vmx/hw/root.cpp) for the resident copy.
Sink g_sink = nullptr;
void* g_sink_context = nullptr;
bool g_quiet = false;

void emit(const char* prefix, const char* fmt, va_list args) {
  if (g_sink == nullptr || g_quiet) return;
  char line[512];
  size_t n = 0;
  for (const char* p = prefix; *p != '\0' && n < sizeof(line) - 1; ++p) line[n++] = *p;
  n += format(line + n, sizeof(line) - n, fmt, args);
  g_sink(g_sink_context, line, n);
}

}  // namespace

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

}  // namespace microhv::log
