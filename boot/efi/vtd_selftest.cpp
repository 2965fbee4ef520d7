#include "boot/efi/vtd_selftest.hpp"

#include "arch/cpu.hpp"
#include "boot/efi/next_stage.hpp"
#include "boot/efi/takeover.hpp"
#include "kernel/base/log.hpp"

namespace microhv::boot {
namespace {

unsigned long long ull(uint64_t v) {
  return static_cast<unsigned long long>(v);
}

// The published table and what its poll function needs.
struct Hook {
  VtdSelftestTable table;
  vtd::ResidentVtd* vtd;
  uint64_t tsc_hz;
};

uint32_t poll(Hook& hook, vtd::FaultRecord* out, uint32_t cap) {
  const uint64_t per_us = hook.tsc_hz / 1000000 != 0 ? hook.tsc_hz / 1000000 : 1;
  return vtd::poll_faults(hook.vtd->result, hook.vtd->faults, arch::rdtsc() / per_us, out, cap);
}

uint32_t EFIAPI poll_for_next_stage(VtdSelftestTable* self, vtd::FaultRecord* out, uint32_t cap) {
  // `table` is Hook's first member.
  return poll(*reinterpret_cast<Hook*>(self), out, cap);
}

EFI_STATUS publish(EFI_BOOT_SERVICES* bs, VtdSelftestTable* table) {
  EFI_GUID guid;
  static_assert(sizeof(guid) == sizeof(kVtdSelftestGuid));
  __builtin_memcpy(&guid, &kVtdSelftestGuid, sizeof(guid));
  return bs->InstallConfigurationTable(&guid, table);
}

}  // namespace

EFI_STATUS run_vtd_selftest(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config) {
  EFI_BOOT_SERVICES* bs = st->BootServices;
  log::info(
      "vtd-selftest: the take-over stops after DMA protection (no VT-x launch); the next stage "
      "runs natively with microhv's pool as protected as the policy and the hardware allow, then "
      "microhv gives the machine back\n");
  Prepared p(bs, config.iommu);
  EFI_STATUS s = prepare_take_over(image, st, config, &p);
  if (EFI_ERROR(s)) return s;
  const vmx::LaunchInfo& info = *p.resident.info;
  vtd::ResidentVtd& vtd = p.vtd();
  p.dma.hide_dmar();

  Hook hook{};
  hook.vtd = &vtd;
  hook.tsc_hz = info.tsc_hz;
  VtdSelftestTable& t = hook.table;
  t.signature = kVtdSelftestSignature;
  t.version = 1;
  t.size = sizeof(VtdSelftestTable);
  t.pool_base = info.pool_base;
  t.pool_size = info.pool_size;
  const vtd::UnitState& unit0 = vtd.result.units[0];
  if (vtd.result.units_enabled != 0 && unit0.enabled) {
    const Optional<Hpa> root = vtd::root_for_levels(vtd.result.tables, unit0.levels);
    t.root_table = root ? root.value().value() : 0;
  }
  t.unit_count = vtd.result.unit_count;
  t.units_enabled = vtd.result.units_enabled;
  t.poll_faults = &poll_for_next_stage;
  s = publish(bs, &t);
  if (EFI_ERROR(s)) log::error("vtd-selftest: InstallConfigurationTable failed: 0x%llx\n", ull(s));
  log::info(
      "vtd-selftest: pool 0x%llx..0x%llx (%llu KiB), root table 0x%llx, %u of %u unit(s) "
      "translating\n",
      ull(t.pool_base), ull(t.pool_base + t.pool_size - 1), ull(t.pool_size >> 10),
      ull(t.root_table), t.units_enabled, t.unit_count);

  if (config.image[0] != '\0') {
    s = start_next_stage(image, st, config);
  } else {
    log::info("vtd-selftest: no next stage configured (image = ...): nothing to test with\n");
    s = EFI_SUCCESS;
  }
  publish(bs, nullptr);
  const uint32_t late = poll(hook, nullptr, 0);
  const bool translated = vtd.result.units_enabled != 0;
  give_back(p);
  log::info("vtd-selftest: %u fault(s) left at the end; %spool freed\n", late,
            translated ? "DMA remapping off again, DMAR restored, " : "");
  return s;
}

}  // namespace microhv::boot
