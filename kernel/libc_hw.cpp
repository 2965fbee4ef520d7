// The four C library routines the compiler may call on its own (struct copies,
// zero-initialisation) even with -fno-builtin. Plain byte loops.
//
// The optimize attribute stops GCC from recognising these very loops as
// memcpy/memset idioms and compiling them into calls to themselves.
// memcpy and memset are weak because GNU-EFI's libefi.a (init.o, pulled in by
// InitializeLib) defines them too; either definition is fine.
#include <stddef.h>
#include <stdint.h>

#define MICROHV_LIBC __attribute__((optimize("no-tree-loop-distribute-patterns")))

extern "C" {

MICROHV_LIBC __attribute__((weak)) void* memcpy(void* dst, const void* src, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < n; ++i) d[i] = s[i];
  return dst;
}

MICROHV_LIBC void* memmove(void* dst, const void* src, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  if (d < s) {
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
  } else {
    for (size_t i = n; i > 0; --i) d[i - 1] = s[i - 1];  // overlapping: copy from the end
  }
  return dst;
}

MICROHV_LIBC __attribute__((weak)) void* memset(void* dst, int value, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(value);
  return dst;
}

MICROHV_LIBC int memcmp(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const uint8_t*>(a);
  const auto* y = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

}  // extern "C"
