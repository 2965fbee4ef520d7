// Logging: printf-style formatting into a sink. On the target the sink is the
// serial port (set up in boot/); in host tests it is stderr or a buffer.
// Every line starts with "microhv: " so it is easy to find in a mixed console.
#pragma once

#include <stdarg.h>
#include <stddef.h>

namespace microhv::log {

using Sink = void (*)(const char* text, size_t len);

void set_sink(Sink sink);
void set_quiet(bool quiet);  // host tests silence expected errors

// Formats: %s %c %d %u %x %lx %lu %ld %llx %llu %p %%, with optional width and
// '0' padding (e.g. %016llx).
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace microhv::log

namespace microhv {
// Bounded formatter shared by the log and by guest programs. Always
// NUL-terminates (when cap > 0); returns the length written.
size_t format(char* out, size_t cap, const char* fmt, va_list args);
size_t format(char* out, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
}  // namespace microhv
