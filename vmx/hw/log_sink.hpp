// The host's log sink: every CPU logs through one UART (COM1), and a lock
// keeps lines whole. The lock is bounded, so a CPU that stopped while
// holding it cannot silence the others. Innermost in the lock order.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace microhv::vmx::hw {

class SerialLog {
 public:
  // A log::Sink; `self` is the SerialLog.
  static void write(void* self, const char* text, size_t len);

 private:
  uint32_t lock_ = 0;
};

}  // namespace microhv::vmx::hw
