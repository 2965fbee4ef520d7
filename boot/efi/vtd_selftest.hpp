// microhv.cfg `vtd-selftest = on` (make test-vtd): the take-over runs up to
// and including DMA protection of microhv's real resident pool, then stops
// short of the launch -- under QEMU TCG there is no VT-x to launch with --
// and starts the next stage natively while the protection is on. That stage
// (tests/vtd/) finds the table below, programs a DMA device at the pool and
// at ordinary memory and asks microhv for the faults; when it returns,
// microhv polls once more, turns translation off, puts the DMAR back, frees
// the pool and returns to the firmware. Target-only.
#pragma once

#include <efi.h>
#include <stdint.h>

#include "kernel/base/config.hpp"
#include "vmx/info_table.hpp"
#include "vmx/vtd/faults.hpp"

namespace microhv::boot {

// {6d696372-6f68-7600-4d49-800000000002}: an EFI configuration table while
// the next stage runs.
static constexpr vmx::InfoTableGuid kVtdSelftestGuid{
    0x6d696372, 0x6f68, 0x7600, {0x4d, 0x49, 0x80, 0, 0, 0, 0, 2}};
static constexpr uint64_t kVtdSelftestSignature = 0x5453445456484D4Dull;  // "MMHVTDST"

struct VtdSelftestTable {
  uint64_t signature;             // kVtdSelftestSignature
  uint32_t version;               // 1
  uint32_t size;                  // sizeof(VtdSelftestTable)
  uint64_t pool_base, pool_size;  // microhv's resident pool: no device may reach any of it
  uint64_t root_table;            // the root table unit 0 walks (in the pool), 0 if none
  uint32_t unit_count, units_enabled;
  // Polls every translating unit's fault records as the host does (microhv
  // logs each fault), copies the first `cap` into `out`, returns how many.
  uint32_t(EFIAPI* poll_faults)(VtdSelftestTable* self, vtd::FaultRecord* out, uint32_t cap);
};

// Runs the self-test as described above; returns the status for efi_main to
// hand to the firmware (the policy's refusal, or the next stage's status).
EFI_STATUS run_vtd_selftest(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config);

}  // namespace microhv::boot
