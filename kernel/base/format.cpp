// A small, bounded printf subset for freestanding code.
#include <stdint.h>

#include "kernel/base/log.hpp"

namespace microhv {
namespace {

struct Out {
  char* buf;
  size_t cap;
  size_t len = 0;
  void put(char c) {
    if (len + 1 < cap) buf[len] = c;
    ++len;
  }
};

void put_number(Out& out, uint64_t value, unsigned base, bool negative, int width, bool zero_pad) {
  char digits[24];
  int n = 0;
  do {
    unsigned d = static_cast<unsigned>(value % base);
    digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    value /= base;
  } while (value != 0);
  int total = n + (negative ? 1 : 0);
  if (negative && zero_pad) out.put('-');
  for (; total < width; ++total) out.put(zero_pad ? '0' : ' ');
  if (negative && !zero_pad) out.put('-');
  while (n > 0) out.put(digits[--n]);
}

}  // namespace

size_t format(char* buf, size_t cap, const char* fmt, va_list args) {
  Out out{buf, cap};
  for (const char* p = fmt; *p != '\0'; ++p) {
    if (*p != '%') {
      out.put(*p);
      continue;
    }
    ++p;
    bool zero_pad = false;
    int width = 0;
    if (*p == '0') {
      zero_pad = true;
      ++p;
    }
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    int longs = 0;
    while (*p == 'l') {
      ++longs;
      ++p;
    }
    if (*p == 'z') {
      longs = 2;
      ++p;
    }
    switch (*p) {
      case 'd': {
        int64_t v = longs ? va_arg(args, int64_t) : va_arg(args, int);
        bool neg = v < 0;
        put_number(out, neg ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v), 10, neg,
                   width, zero_pad);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = longs ? va_arg(args, uint64_t) : va_arg(args, unsigned);
        put_number(out, v, *p == 'u' ? 10 : 16, false, width, zero_pad);
        break;
      }
      case 'p':
        out.put('0');
        out.put('x');
        put_number(out, reinterpret_cast<uintptr_t>(va_arg(args, void*)), 16, false, 0, false);
        break;
      case 'c':
        out.put(static_cast<char>(va_arg(args, int)));
        break;
      case 's': {
        const char* s = va_arg(args, const char*);
        if (s == nullptr) s = "(null)";
        int n = 0;
        for (const char* q = s; *q != '\0'; ++q, ++n) out.put(*q);
        for (; n < width; ++n) out.put(' ');
        break;
      }
      case '%':
        out.put('%');
        break;
      case '\0':
        --p;  // trailing '%': stop at the terminator
        break;
      default:
        out.put('%');
        out.put(*p);
        break;
    }
  }
  if (cap > 0) buf[out.len < cap ? out.len : cap - 1] = '\0';
  return out.len < cap ? out.len : (cap > 0 ? cap - 1 : 0);
}

size_t format(char* out, size_t cap, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  size_t n = format(out, cap, fmt, args);
  va_end(args);
  return n;
}

}  // namespace microhv
