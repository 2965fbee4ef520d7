// The partition reference time source behind TIME_REF_COUNT (TLFS 12.4):
// 100 ns units since the partition started. The VT-x back end derives it from
// the TSC; tests use a counter they control.
#pragma once

#include <stdint.h>

namespace microhv {

class ReferenceClock {
 public:
  virtual uint64_t now_100ns() = 0;

 protected:
  ~ReferenceClock() = default;
};

}  // namespace microhv
