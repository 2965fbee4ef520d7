// Turning one remapping unit on and off, over a small register interface so
// the sequence runs against a fake register file on the host.
//
// Enable (VT-d 10.4.4-10.4.8 and 6.5.1, 6.8), each wait bounded:
//   1. quiesce what firmware may have left on: refuse a unit with interrupt
//      remapping enabled; turn queued invalidation off once its queue is
//      empty (register-based invalidation must not be used while it is on,
//      6.5.2, queued invalidation); mask the fault event interrupt
//      (10.4.10: microhv polls the fault records);
//   2. flush the write buffers if CAP.RWBF (6.8), so the tables written by
//      the CPU are visible to the unit;
//   3. write RTADDR (legacy mode) and issue GCMD.SRTP, wait for GSTS.RTPS;
//   4. global context-cache invalidation through CCMD, wait for ICC = 0;
//   5. global IOTLB invalidation through IOTLB_REG, wait for IVT = 0 -- always
//      after the context cache, since IOTLB entries are tagged with what the
//      context cache held (6.5.1);
//   6. GCMD.TE, wait for GSTS.TES;
//   7. protected memory regions firmware left enabled are turned off
//      (PMEN.EPM = 0, wait for PMEN.PRS = 0), on units that have them.
// Every GCMD write is GSTS with the one-shot bits cleared plus or minus the
// one command bit (10.4.4).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kernel/base/types.hpp"
#include "vmx/vtd/caps.hpp"

namespace microhv::vtd {

// One unit's register set (offsets from its register base).
class VtdRegisters {
 public:
  virtual uint32_t read32(uint32_t offset) = 0;
  virtual uint64_t read64(uint32_t offset) = 0;
  virtual void write32(uint32_t offset, uint32_t value) = 0;
  virtual void write64(uint32_t offset, uint64_t value) = 0;
  // Waits about `us` microseconds between two polls of a bounded wait.
  virtual void delay_us(uint32_t us) = 0;

 protected:
  ~VtdRegisters() = default;
};

// The platform side: a unit's registers by DRHD base, and cache maintenance.
class RegisterMap {
 public:
  // The register set of the unit at `base`, `bytes` long; nullptr when it
  // cannot be reached.
  virtual VtdRegisters* unit(Hpa base, uint32_t bytes) = 0;
  // Writes [base, base + bytes) back from the CPU caches to memory (for
  // units whose page walks do not snoop, ECAP.C = 0).
  virtual void flush_cache(Hpa base, uint64_t bytes) = 0;

 protected:
  ~RegisterMap() = default;
};

inline constexpr uint32_t kWaitTimeoutUs = 1'000'000;  // per step, as Linux and Xen allow
inline constexpr uint32_t kPollIntervalUs = 10;

UnitCaps read_caps(VtdRegisters& regs);

// Runs the enable sequence above with `root_table` as RTADDR. On failure
// writes what went wrong into `error` and returns false; translation may be
// left off or on (call disable_translation).
bool enable_translation(VtdRegisters& regs, const UnitCaps& caps, Hpa root_table, char* error,
                        size_t error_cap);

// Clears GCMD.TE and waits for GSTS.TES = 0. After it, the unit's devices
// reach memory untranslated again.
bool disable_translation(VtdRegisters& regs, char* error, size_t error_cap);

}  // namespace microhv::vtd
