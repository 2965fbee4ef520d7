// VT-d registers on the target: plain volatile MMIO on the identity map
// (the DRHD register pages are uncached through the MTRRs, as all MMIO), and
// CLFLUSH for tables that units with non-coherent walks read. Target-only.
#pragma once

#include <stdint.h>

#include "vmx/vtd/dmar.hpp"
#include "vmx/vtd/unit.hpp"

namespace microhv::vtd {

// Waits about `us` microseconds (EFI Stall before the take-over, the TSC in
// the host).
using DelayFn = void (*)(uint32_t us);

class MmioRegisters final : public VtdRegisters {
 public:
  MmioRegisters() = default;
  MmioRegisters(uint64_t base, uint32_t bytes, DelayFn delay)
      : base_(base), bytes_(bytes), delay_(delay) {}

  uint32_t read32(uint32_t offset) override;
  uint64_t read64(uint32_t offset) override;
  void write32(uint32_t offset, uint32_t value) override;
  void write64(uint32_t offset, uint64_t value) override;
  void delay_us(uint32_t us) override { delay_(us); }

  uint64_t base() const { return base_; }
  uint32_t bytes() const { return bytes_; }

 private:
  bool inside(uint32_t offset, uint32_t width) const;

  uint64_t base_ = 0;
  uint32_t bytes_ = 0;
  DelayFn delay_ = nullptr;
};

class MmioRegisterMap final : public RegisterMap {
 public:
  explicit MmioRegisterMap(DelayFn delay) : delay_(delay) {}
  VtdRegisters* unit(Hpa base, uint32_t bytes) override;
  void flush_cache(Hpa base, uint64_t bytes) override;

 private:
  DelayFn delay_;
  MmioRegisters units_[kMaxUnits];
  uint32_t count_ = 0;
};

}  // namespace microhv::vtd
