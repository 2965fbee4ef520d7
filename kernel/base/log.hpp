// Logging: printf-style formatting into a sink. On the target the sink is the
// serial port (boot/efi/efi_main.cpp, then the host's locked one in vmx/hw/);
// host tests set none. Every line starts with "microhv: " so it is easy to
// find in a mixed console.
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

namespace microhv::log {

// `context` is what set_sink was given (e.g. the sink's lock).
using Sink = void (*)(void* context, const char* text, size_t len);

void set_sink(Sink sink, void* context = nullptr);
void set_quiet(bool quiet);  // host tests silence expected errors

// Formats: %s %c %d %u %x %lx %lu %ld %llx %llu %p %%, with optional width and
// '0' padding (e.g. %016llx).
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// For lines a guest can trigger as often as it likes: lets the first
// `limit` through (counted across CPUs) and then none, so a guest looping on
// a refused operation cannot flood the serial port or slow microhv down.
// The owner of the event holds one: `if (refused_.allow()) log::error(...)`;
// the line should say that later ones are not logged.
class RateLimit {
 public:
  explicit constexpr RateLimit(uint32_t limit) : limit_(limit) {}
  bool allow() { return __atomic_fetch_add(&seen_, 1u, __ATOMIC_RELAXED) < limit_; }
  // allow(), and whether this is the last line let through (so it can say
  // that later ones are not logged).
  bool allow(bool* last) {
    const uint32_t n = __atomic_fetch_add(&seen_, 1u, __ATOMIC_RELAXED);
    *last = n + 1 == limit_;
    return n < limit_;
  }
  // allow(), and whether this is the last line let through (so it can say
  // that later ones are not logged).
  bool allow(bool* last) {
    const uint32_t n = __atomic_fetch_add(&seen_, 1u, __ATOMIC_RELAXED);
    *last = n + 1 == limit_;
    return n < limit_;
  }
  uint32_t seen() const { return __atomic_load_n(&seen_, __ATOMIC_RELAXED); }

 private:
  uint32_t limit_;
  uint32_t seen_ = 0;
};

}  // namespace microhv::log

namespace microhv {
// Bounded formatter shared by the log and by guest programs. Always
// NUL-terminates (when cap > 0); returns the length written.
size_t format(char* out, size_t cap, const char* fmt, va_list args);
size_t format(char* out, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
}  // namespace microhv
