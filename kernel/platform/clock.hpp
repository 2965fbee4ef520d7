// The time source behind the partition reference time (TLFS 12.4): the
// host's TSC, read on the calling CPU. The core turns it into 100 ns units
// with the partition's scale (kernel/reference_time.hpp); reference time
// derives from the host TSC, never from a guest's view of it. Tests use a
// counter they set.
#pragma once

#include <stdint.h>

namespace microhv {

class ReferenceClock {
 public:
  virtual uint64_t read_tsc() = 0;

 protected:
  ~ReferenceClock() = default;
};

}  // namespace microhv
