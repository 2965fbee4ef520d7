// The four C library routines the compiler may call on its own (struct copies,
// zero-initialisation) even with -fno-builtin, and that guest-memory copies
// use. memcpy and memset move 8 bytes per step with REP MOVSQ/STOSQ (DF is
// clear: the SysV ABI guarantees it at calls, and VM exit loads host RFLAGS
// with DF = 0): message delivery copies 256-byte blocks, and a byte loop made
// a delivered PostMessage cost 13 CPUID exits under Bochs.
//
// The optimize attribute stops GCC from recognising the remaining loops as
// memmove/memcmp idioms and compiling them into calls to themselves.
#include <stddef.h>
#include <stdint.h>

#define MICROHV_LIBC __attribute__((optimize("no-tree-loop-distribute-patterns")))

extern "C" {

void* memcpy(void* dst, const void* src, size_t n) {
  void* d = dst;
  size_t qwords = n / 8, bytes = n % 8;
  asm volatile("rep movsq\n\tmov %[bytes], %%rcx\n\trep movsb"
               : "+D"(d), "+S"(src), "+c"(qwords)
               : [bytes] "r"(bytes)
               : "memory");
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

void* memset(void* dst, int value, size_t n) {
  void* d = dst;
  uint64_t pattern = 0x0101010101010101ull * static_cast<uint8_t>(value);
  size_t qwords = n / 8, bytes = n % 8;
  asm volatile("rep stosq\n\tmov %[bytes], %%rcx\n\trep stosb"
               : "+D"(d), "+c"(qwords)
               : "a"(pattern), [bytes] "r"(bytes)
               : "memory");
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
