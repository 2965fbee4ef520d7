#include "vmx/hw/memory.hpp"

#include "arch/cpu.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vmx::hw {

Optional<Hpa> PoolAllocator::alloc_page() {
  if (info_.alloc_next + kPageSize > info_.alloc_end) {
    log::error("out of page-table pages\n");
    return kNone;
  }
  const uint64_t p = info_.alloc_next;
  info_.alloc_next += kPageSize;
  auto* q = reinterpret_cast<uint64_t*>(p);
  for (unsigned i = 0; i < 512; ++i) q[i] = 0;
  return Hpa(p);
}

unsigned HwGuestMemory::address_bits() const {
  return ept_ != nullptr ? ept_->layout().address_bits : 0;
}

// The core calls this under Hypervisor::lock, which overlay moves also hold,
// so an overlay cannot appear between the check and the copy. The exit
// handlers' instruction fetch (no lock) may race with a move: it then reads
// the guest's own RAM, never anything else.
bool HwGuestMemory::is_ram(Gpa gpa, uint64_t len) const {
  return ept_ != nullptr && ept_->is_guest_ram(gpa, len);
}

bool HwGuestMemory::read(Gpa gpa, void* dst, uint64_t len) {
  if (!is_ram(gpa, len)) return false;
  __builtin_memcpy(dst, reinterpret_cast<const void*>(gpa.value()), len);
  return true;
}

bool HwGuestMemory::write(Gpa gpa, const void* src, uint64_t len) {
  if (!is_ram(gpa, len)) return false;
  __builtin_memcpy(reinterpret_cast<void*>(gpa.value()), src, len);
  return true;
}

bool HwGuestMemory::fetch_or_u64(Gpa gpa, uint64_t bits, uint64_t* old) {
  if ((gpa.value() & 7) != 0 || !is_ram(gpa, 8)) return false;
  *old = __atomic_fetch_or(reinterpret_cast<uint64_t*>(gpa.value()), bits, __ATOMIC_SEQ_CST);
  return true;
}

uint64_t TscClock::read_tsc() {
  return arch::rdtsc();
}

}  // namespace microhv::vmx::hw
