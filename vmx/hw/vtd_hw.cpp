#include "vmx/hw/vtd_hw.hpp"

#include "arch/cpu.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {

// An access outside the window is a bug in microhv (offsets come from
// CAP/ECAP and are checked by plan_unit): reads return all ones, writes are
// dropped, and it is logged.
bool MmioRegisters::inside(uint32_t offset, uint32_t width) const {
  if (offset % width == 0 && offset <= bytes_ && bytes_ - offset >= width) return true;
  log::error("vtd: register access at 0x%x (%u bytes) outside unit 0x%llx's 0x%x-byte window\n",
             offset, width, static_cast<unsigned long long>(base_), bytes_);
  return false;
}

uint32_t MmioRegisters::read32(uint32_t offset) {
  if (!inside(offset, 4)) return ~0u;
  return *reinterpret_cast<volatile uint32_t*>(base_ + offset);
}

uint64_t MmioRegisters::read64(uint32_t offset) {
  if (!inside(offset, 8)) return ~0ull;
  return *reinterpret_cast<volatile uint64_t*>(base_ + offset);
}

void MmioRegisters::write32(uint32_t offset, uint32_t value) {
  if (inside(offset, 4)) *reinterpret_cast<volatile uint32_t*>(base_ + offset) = value;
}

void MmioRegisters::write64(uint32_t offset, uint64_t value) {
  if (inside(offset, 8)) *reinterpret_cast<volatile uint64_t*>(base_ + offset) = value;
}

VtdRegisters* MmioRegisterMap::unit(Hpa base, uint32_t bytes) {
  // The register window is used through the identity map.
  for (uint32_t i = 0; i < count_; ++i) {
    if (units_[i].base() == base.value()) {
      units_[i] = MmioRegisters(base.value(), bytes, delay_);
      return &units_[i];
    }
  }
  if (count_ == kMaxUnits || base.value() == 0 || bytes == 0) return nullptr;
  units_[count_] = MmioRegisters(base.value(), bytes, delay_);
  return &units_[count_++];
}

void MmioRegisterMap::flush_cache(Hpa base, uint64_t bytes) {
  // CLFLUSH line size: CPUID.1:EBX[15:8] * 8 bytes.
  uint64_t line = ((arch::cpuid(1).ebx >> 8) & 0xFF) * 8;
  if (line == 0) line = 64;
  const uint64_t start = base.value() & ~(line - 1);
  for (uint64_t a = start; a < base.value() + bytes; a += line) {
    asm volatile("clflush (%0)" : : "r"(a) : "memory");
  }
  asm volatile("mfence" : : : "memory");
}

}  // namespace microhv::vtd
