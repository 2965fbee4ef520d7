// Comparing a length-delimited piece of text (a config key or value, not
// NUL-terminated) with a word. Portable, freestanding.
#pragma once

#include <stddef.h>

namespace microhv {

// True when [text, text + len) is exactly `word` (NUL-terminated).
constexpr bool text_equals(const char* text, size_t len, const char* word) {
  size_t i = 0;
  for (; word[i] != '\0'; ++i) {
    if (i >= len || text[i] != word[i]) return false;
  }
  return i == len;
}

}  // namespace microhv
