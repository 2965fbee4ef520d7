#include "vmx/hw/log_sink.hpp"

#include "arch/cpu.hpp"
#include "arch/serial.hpp"

namespace microhv::vmx::hw {

void SerialLog::write(void* self, const char* text, size_t len) {
  uint32_t& lock = static_cast<SerialLog*>(self)->lock_;
  bool locked = false;
  for (uint32_t i = 0; i < (1u << 22); ++i) {
    if (__atomic_load_n(&lock, __ATOMIC_RELAXED) == 0 &&
        __atomic_exchange_n(&lock, 1u, __ATOMIC_ACQUIRE) == 0) {
      locked = true;
      break;
    }
    arch::pause();
  }
  serial::write(text, len);
  if (locked) __atomic_store_n(&lock, 0u, __ATOMIC_RELEASE);
}

}  // namespace microhv::vmx::hw
