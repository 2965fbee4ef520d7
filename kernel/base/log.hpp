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

// Lines a CPU logs inside a critical section (held()) wait in that CPU's
// DeferredLog and are written when the section ends (release()). The serial
// port is polled: written under the core's lock, a line a guest provoked
// would stretch the section every other CPU spins on. Bounded: lines that
// do not fit are counted and reported as dropped.
struct DeferredLog {
  static constexpr uint32_t kCapacity = 1024;
  char text[kCapacity];
  uint32_t used = 0;
  uint32_t dropped = 0;  // lines that did not fit
  uint32_t depth = 0;    // nested hold()s
};
// Finds the calling CPU's DeferredLog; nullptr when it has none (before the
// host has per-CPU state, and in host tests unless a test installs one):
// then lines are written at once.
using DeferredLogLocator = DeferredLog* (*)();
void set_deferred_log(DeferredLogLocator locate);
// The critical section of the calling CPU starts: its lines are kept.
void hold();
// It ends: true when the outermost one ended with lines kept, which the
// caller writes with write_held() once it has dropped its lock.
bool release();
void write_held();
// The calling CPU will never leave its critical section (microhv stops it
// after a fault in the host): writes what it kept and logs directly from
// now on, so the report of the fault is not held back.
void stop_holding();

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
