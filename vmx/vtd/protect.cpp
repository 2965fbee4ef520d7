#include "vmx/vtd/protect.hpp"

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {
namespace {

constexpr uint32_t kPage = 4096;
constexpr uint32_t kMaxFaultsShown = 16;

unsigned long long ull(uint64_t v) {
  return static_cast<unsigned long long>(v);
}

// The verdict for statuses other than kProtected/kOff, with the text to add.
void apply_policy(IommuPolicy policy, ProtectResult* out) {
  const bool complete =
      out->status == ProtectStatus::kProtected || out->status == ProtectStatus::kOff;
  out->take_over_allowed = complete || policy != IommuPolicy::kRequired;
  if (!out->take_over_allowed) {
    size_t n = 0;
    while (out->line[n] != '\0') ++n;
    format(out->line + n, sizeof(out->line) - n,
           "; iommu = required: not taking over the machine (set iommu = if-present to run "
           "without full DMA isolation)");
  }
}

struct FlushContext {
  RegisterMap* map;
};

void flush_page(void* ctx, Hpa page) {
  static_cast<FlushContext*>(ctx)->map->flush_cache(page, kPage);
}

// Logs and clears what firmware (or an earlier run) left in the records, so
// that the first fault microhv reports is one of its own.
void clear_stale_faults(UnitState& u) {
  FaultRecord records[kMaxFaultsShown];
  const FaultScan scan = collect_faults(*u.regs, u.caps, records, kMaxFaultsShown);
  for (uint32_t i = 0; i < scan.records && i < kMaxFaultsShown; ++i) {
    char line[200];
    describe_fault(line, sizeof(line), records[i]);
    log::info("vtd: unit 0x%llx: recorded before microhv: %s\n", ull(u.register_base.value()),
              line);
  }
}

void roll_back(ProtectResult* out) {
  for (uint32_t i = 0; i < out->unit_count; ++i) {
    UnitState& u = out->units[i];
    if (!u.usable || u.regs == nullptr) continue;
    char error[160];
    if (!disable_translation(*u.regs, error, sizeof(error))) {
      log::error("vtd: unit 0x%llx: %s\n", ull(u.register_base.value()), error);
    }
    u.enabled = false;
  }
  out->units_enabled = 0;
}

// A unit firmware left translating belongs to a pre-boot DMA protection
// driver, which may still poll or program it later; it then finds microhv's
// tables, and its accesses to the registers fault once the firmware runs as
// the guest (they are not mapped for it). Said once, so a hang or a firmware
// exception after the take-over can be traced here.
void note_firmware_state(VtdRegisters& regs, Hpa base) {
  const uint32_t gsts = regs.read32(arch::vtd::kGstsReg);
  if ((gsts & arch::vtd::gcmd::kTe) == 0) return;
  log::info(
      "vtd: unit 0x%llx: firmware left DMA translation on (GSTS 0x%08x, root table 0x%llx); "
      "microhv replaces its tables, and a firmware VT-d driver that touches the unit after the "
      "take-over faults\n",
      ull(base.value()), gsts, ull(regs.read64(arch::vtd::kRtaddrReg) & arch::vtd::kTableAddrMask));
}

// Reads each unit's capabilities and decides whether and how to use it
// (logging it unless `quiet`). Returns the number of usable units.
uint32_t survey_units(const ProtectRequest& request, RegisterMap& map, bool quiet,
                      ProtectResult* out) {
  uint32_t usable = 0;
  out->unit_count = request.dmar->unit_count;
  for (uint32_t i = 0; i < out->unit_count; ++i) {
    const RemapUnit& r = request.dmar->units[i];
    UnitState& u = out->units[i];
    u = UnitState{};
    u.register_base = r.register_base;
    u.register_bytes = r.register_pages * kPage;
    u.regs = map.unit(r.register_base, u.register_bytes);
    if (u.regs == nullptr) {
      if (!quiet) {
        log::error("vtd: unit 0x%llx: not used: its registers cannot be mapped\n",
                   ull(r.register_base.value()));
      }
      continue;
    }
    u.caps = read_caps(*u.regs);
    if (!quiet) note_firmware_state(*u.regs, r.register_base);
    const UnitPlan plan = plan_unit(u.caps, u.register_bytes);
    if (plan.usable && plan.register_bytes > u.register_bytes) {
      u.register_bytes = plan.register_bytes;
      u.regs = map.unit(r.register_base, u.register_bytes);
    }
    if (!plan.usable || u.regs == nullptr) {
      if (quiet) continue;
      log::error("vtd: unit 0x%llx: not used: %s\n", ull(r.register_base.value()),
                 plan.usable ? "its whole register window cannot be mapped" : plan.reason);
      continue;
    }
    u.usable = true;
    u.levels = plan.levels;
    u.max_leaf_level = plan.max_leaf_level;
    ++usable;
    if (quiet) continue;
    log::info(
        "vtd: unit 0x%llx (segment %u, %s): VT-d %u.%u, %u-level tables, %s, %u fault "
        "record(s)%s%s%s\n",
        ull(r.register_base.value()), r.segment,
        r.include_pci_all ? "all PCI devices" : "devices in its scope", (u.caps.version >> 4) & 0xF,
        u.caps.version & 0xF, plan.levels, page_sizes_text(plan.max_leaf_level), u.caps.fault_count,
        u.caps.coherent ? "" : ", non-coherent walks (tables flushed)",
        u.caps.write_buffer_flush ? ", write buffer flush" : "",
        u.caps.caching_mode ? ", caching mode" : "");
    if (plan.reach < request.identity_limit) {
      log::info("vtd: unit 0x%llx reaches only [0, 0x%llx): its devices' DMA above is blocked\n",
                ull(r.register_base.value()), ull(plan.reach));
    }
  }
  return usable;
}

// One set of tables for all units: as deep as the deepest walker, pages no
// larger than the smallest maximum. Sets `flush` when a walk does not snoop.
DmaTableSpec table_spec(const ProtectRequest& request, const ProtectResult& units, bool* flush) {
  DmaTableSpec spec{};
  spec.identity_limit = request.identity_limit;
  spec.protect = request.ranges;
  spec.protect_count = request.range_count;
  spec.regions = request.dmar->regions;
  spec.region_count = request.dmar->region_count;
  spec.max_leaf_level = 3;
  *flush = false;
  for (uint32_t i = 0; i < units.unit_count; ++i) {
    const UnitState& u = units.units[i];
    if (!u.usable) continue;
    if (u.max_leaf_level < spec.max_leaf_level) spec.max_leaf_level = u.max_leaf_level;
    (u.levels == 3 ? spec.need_3level_root : spec.need_4level_root) = true;
    *flush = *flush || !u.caps.coherent;
  }
  spec.levels = spec.need_4level_root ? 4 : 3;
  return spec;
}

// Whether every PCI device's DMA goes through an enabled unit; logs the
// first few that do not.
bool all_devices_covered(const ProtectRequest& request, ProtectResult* out) {
  if (request.devices == nullptr || request.device_count == 0) {
    return covers_all_pci_devices(*request.dmar);
  }
  constexpr uint32_t kMaxNamed = 8;
  for (uint32_t i = 0; i < request.device_count; ++i) {
    const PciFunctionInfo& d = request.devices[i];
    const int unit = unit_for_device(*request.dmar, request.devices, request.device_count, d);
    if (unit != kNoUnit && out->units[unit].enabled) continue;
    if (++out->uncovered_devices <= kMaxNamed) {
      log::error("vtd: PCI %04x:%02x:%02x.%u is %s: its DMA is not remapped\n", d.segment,
                 d.source_id >> 8, (d.source_id >> 3) & 0x1F, d.source_id & 7,
                 unit == kNoUnit ? "not behind any remapping unit" : "behind a unit not in use");
    }
  }
  return out->uncovered_devices == 0;
}

}  // namespace

uint64_t protect_table_pages(const ProtectRequest& request, RegisterMap& map) {
  if (request.policy == IommuPolicy::kOff || request.dmar == nullptr) return 0;
  ProtectResult survey{};
  if (survey_units(request, map, true, &survey) == 0) return 0;
  bool flush = false;
  return table_pages_needed(table_spec(request, survey, &flush));
}

void protect(const ProtectRequest& request, vmx::PageAllocator& alloc, vmx::PhysAccess& phys,
             RegisterMap& map, ProtectResult* out) {
  *out = ProtectResult{};
  if (request.policy == IommuPolicy::kOff) {
    out->status = ProtectStatus::kOff;
    format(out->line, sizeof(out->line),
           "vtd: iommu = off: DMA remapping left alone; devices can reach microhv's memory");
    apply_policy(request.policy, out);
    return;
  }
  if (request.dmar == nullptr || request.dmar->unit_count == 0) {
    out->status = ProtectStatus::kNoHardware;
    format(out->line, sizeof(out->line),
           "vtd: no DMA remapping hardware (%s): devices can reach microhv's memory",
           request.dmar == nullptr ? "no ACPI DMAR table" : "the DMAR table lists no unit");
    apply_policy(request.policy, out);
    return;
  }
  const uint32_t usable = survey_units(request, map, false, out);
  if (usable == 0) {
    out->status = ProtectStatus::kFailed;
    format(out->line, sizeof(out->line),
           "vtd: none of the %u remapping unit(s) can be used (see above): devices can reach "
           "microhv's memory",
           out->unit_count);
    apply_policy(request.policy, out);
    return;
  }

  bool flush = false;
  const DmaTableSpec spec = table_spec(request, *out, &flush);
  out->table_levels = spec.levels;
  char error[160];
  if (!build_dma_tables(spec, alloc, phys, &out->tables, error, sizeof(error))) {
    out->status = ProtectStatus::kFailed;
    format(out->line, sizeof(out->line),
           "vtd: DMA tables not built (%s): devices can reach microhv's memory", error);
    apply_policy(request.policy, out);
    return;
  }
  if (out->tables.blocked_rmrr != 0) {
    log::error(
        "vtd: %llu page(s) of firmware-reserved DMA memory (RMRR) overlap microhv's memory and "
        "stay blocked; the devices using them may fail\n",
        ull(out->tables.blocked_rmrr));
  }
  if (flush) {
    FlushContext ctx{&map};
    visit_table_pages(out->tables, spec.levels, phys, flush_page, &ctx);
  }

  for (uint32_t i = 0; i < out->unit_count; ++i) {
    UnitState& u = out->units[i];
    if (!u.usable) continue;
    clear_stale_faults(u);
    const Optional<Hpa> root = root_for_levels(out->tables, u.levels);
    if (!root) format(error, sizeof(error), "no root table for %u-level walks", u.levels);
    if (!root || !enable_translation(*u.regs, u.caps, root.value(), error, sizeof(error))) {
      log::error("vtd: unit 0x%llx: %s\n", ull(u.register_base.value()), error);
      roll_back(out);
      out->status = ProtectStatus::kFailed;
      format(out->line, sizeof(out->line),
             "vtd: unit 0x%llx could not be enabled; translation is off on all units: devices "
             "can reach microhv's memory",
             ull(u.register_base.value()));
      apply_policy(request.policy, out);
      return;
    }
    u.enabled = true;
    ++out->units_enabled;
  }

  const bool all_units = out->units_enabled == out->unit_count;
  const bool all_devices = all_devices_covered(request, out);
  out->status = all_units && all_devices ? ProtectStatus::kProtected : ProtectStatus::kPartial;
  if (out->status == ProtectStatus::kProtected) {
    format(out->line, sizeof(out->line),
           "vtd: DMA remapping on %u of %u unit(s), %u-level tables in %llu pages: devices "
           "cannot reach microhv's memory (%u range(s))",
           out->units_enabled, out->unit_count, spec.levels, ull(out->tables.pages),
           request.range_count);
  } else {
    format(out->line, sizeof(out->line),
           "vtd: DMA remapping on %u of %u unit(s), %u-level tables in %llu pages; %s can reach "
           "microhv's memory",
           out->units_enabled, out->unit_count, spec.levels, ull(out->tables.pages),
           !all_units ? "devices behind the units not used (see above)"
           : request.device_count != 0
               ? "the PCI functions named above"
               : "PCI devices outside every unit's scope (no INCLUDE_PCI_ALL unit)");
  }
  apply_policy(request.policy, out);
}

void log_protect_line(const ProtectResult& result) {
  const bool warn = !result.take_over_allowed || result.status == ProtectStatus::kFailed ||
                    result.status == ProtectStatus::kPartial;
  (warn ? log::error : log::info)("%s\n", result.line);
}

uint32_t poll_faults(ProtectResult& result, FaultLog& log, uint64_t now_us, FaultRecord* out,
                     uint32_t cap) {
  uint32_t total = 0;
  for (uint32_t i = 0; i < result.unit_count; ++i) {
    UnitState& u = result.units[i];
    if (!u.enabled || u.regs == nullptr) continue;
    FaultRecord records[kMaxFaultsShown];
    const FaultScan scan = collect_faults(*u.regs, u.caps, records, kMaxFaultsShown);
    log.report(u.register_base, scan, records, kMaxFaultsShown, now_us);
    for (uint32_t k = 0; k < scan.records && k < kMaxFaultsShown && total + k < cap; ++k) {
      out[total + k] = records[k];
    }
    total += scan.records;
  }
  return total;
}

void rebind_units(ProtectResult& result, RegisterMap& map) {
  for (uint32_t i = 0; i < result.unit_count && i < kMaxUnits; ++i) {
    UnitState& u = result.units[i];
    if (u.usable) u.regs = map.unit(u.register_base, u.register_bytes);
  }
}

bool unprotect(ProtectResult& result) {
  bool ok = true;
  for (uint32_t i = 0; i < result.unit_count; ++i) {
    UnitState& u = result.units[i];
    if (!u.enabled) continue;
    if (u.regs == nullptr) {
      log::error("vtd: unit 0x%llx: cannot reach its registers to turn translation off\n",
                 ull(u.register_base.value()));
      ok = false;
      continue;
    }
    char error[160];
    if (!disable_translation(*u.regs, error, sizeof(error))) {
      log::error("vtd: unit 0x%llx: %s\n", ull(u.register_base.value()), error);
      ok = false;
      continue;
    }
    u.enabled = false;
    --result.units_enabled;
  }
  return ok;
}

}  // namespace microhv::vtd
