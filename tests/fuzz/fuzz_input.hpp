// The input of every fuzz target: a little program read front to back.
// Missing bytes read as zero, so every input is a valid program.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace microhv::fuzz {

struct Reader {
  const uint8_t* data;
  size_t size;

  template <typename T>
  T take() {
    T v{};
    const size_t n = size < sizeof(T) ? size : sizeof(T);
    std::memcpy(&v, data, n);
    data += n;
    size -= n;
    return v;
  }
  // One of `n` choices.
  uint32_t pick(uint32_t n) { return take<uint8_t>() % n; }
  bool flag() { return (take<uint8_t>() & 1) != 0; }
  bool empty() const { return size == 0; }
};

// An oracle's verdict: the input found a bug. abort() is what libFuzzer
// reports as a crash, with the input saved.
[[noreturn]] inline void bug(const char* what) {
  std::fprintf(stderr, "fuzz oracle: %s\n", what);
  std::abort();
}

inline void expect(bool ok, const char* what) {
  if (!ok) bug(what);
}

}  // namespace microhv::fuzz
