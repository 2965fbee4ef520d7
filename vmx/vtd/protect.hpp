// DMA isolation in one call: from the parsed DMAR table, the ranges devices
// must not reach (microhv's memory) and the policy, build the tables, turn
// on translation on every usable remapping unit, and say in one line what
// is protected and what is not. The take-over (phase B) calls protect()
// before launching the guest, poll_faults() from the host, and unprotect()
// if it gives up after protect() succeeded. Portable: hardware comes in
// through RegisterMap, memory through PageAllocator/PhysAccess.
#pragma once

#include <stdint.h>

#include "kernel/base/iommu_policy.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/vtd/caps.hpp"
#include "vmx/vtd/dmar.hpp"
#include "vmx/vtd/faults.hpp"
#include "vmx/vtd/scope.hpp"
#include "vmx/vtd/tables.hpp"
#include "vmx/vtd/unit.hpp"

namespace microhv::vtd {

enum class ProtectStatus : unsigned char {
  kProtected,   // every unit translates and every PCI device is behind one
  kPartial,     // some units translate; the line names what is left out
  kNoHardware,  // no DMAR table, or one without remapping units
  kFailed,      // remapping hardware present but nothing translates (all rolled back)
  kOff,         // iommu = off
};

struct ProtectRequest {
  const DmarInfo* dmar = nullptr;  // nullptr: the firmware publishes no DMAR table
  const ProtectedRange* ranges = nullptr;
  uint32_t range_count = 0;
  uint64_t identity_limit = 0;  // devices may reach [0, limit) minus the ranges
  IommuPolicy policy = kDefaultIommuPolicy;
  // The PCI functions present (a configuration-space scan), to tell whether
  // each one is behind an enabled unit. Without them, coverage is judged
  // from the DMAR alone: every segment needs an INCLUDE_PCI_ALL unit.
  const PciFunctionInfo* devices = nullptr;
  uint32_t device_count = 0;
};

struct UnitState {
  Hpa register_base;
  uint32_t register_bytes;  // the register window (the guest must not map it)
  VtdRegisters* regs;       // nullptr when the unit's registers could not be mapped
  UnitCaps caps;
  unsigned levels;          // table depth it walks (when usable)
  unsigned max_leaf_level;  // largest page it supports (when usable)
  bool usable;
  bool enabled;
};

struct ProtectResult {
  ProtectStatus status;
  bool take_over_allowed;  // the policy's verdict
  uint32_t unit_count;
  uint32_t units_enabled;
  uint32_t uncovered_devices;  // listed PCI functions not behind an enabled unit
  UnitState units[kMaxUnits];
  DmaTables tables;
  unsigned table_levels;
  char line[320];  // one log line, without the "microhv: " prefix and newline
};

// How many pages protect() may take from its allocator for this request on
// this hardware (reads the units' capabilities; logs nothing), so the caller
// can size the pool -- which must itself be one of the protected ranges: a
// device that could write the tables could undo the protection.
uint64_t protect_table_pages(const ProtectRequest& request, RegisterMap& map);

void protect(const ProtectRequest& request, vmx::PageAllocator& alloc, vmx::PhysAccess& phys,
             RegisterMap& map, ProtectResult* out);

// Logs result.line at the level it deserves: an error when the take-over
// is refused, or when remapping hardware is there but does not keep every
// device out; otherwise (protected, no hardware, iommu = off) information.
void log_protect_line(const ProtectResult& result);

// Reads, logs (rate-limited through `log`) and clears the fault records of
// every enabled unit, copying the first `cap` records into `out` (may be
// nullptr). Returns how many faults were found.
uint32_t poll_faults(ProtectResult& result, FaultLog& log, uint64_t now_us,
                     FaultRecord* out = nullptr, uint32_t cap = 0);

// Turns translation off again on every enabled unit; false if one refused.
bool unprotect(ProtectResult& result);

// Points every unit's register accessor at `map`'s. The accessors belong to
// whoever runs the code: protect() ran with the EFI side's, the host runs
// from its own copy of microhv, so it rebinds the result it finds in the
// pool before touching a unit (and the EFI side rebinds back before
// unprotect() after a failed launch). A unit `map` cannot reach is left
// without an accessor: polling and unprotect() skip it.
void rebind_units(ProtectResult& result, RegisterMap& map);

}  // namespace microhv::vtd
