#include "vmx/vtd/scope.hpp"

#include "arch/vtd.hpp"

namespace microhv::vtd {
namespace {

using namespace arch::vtd;

constexpr uint32_t kMaxHops = kMaxScopePath;

const PciFunctionInfo* find(const PciFunctionInfo* all, uint32_t count, uint16_t segment,
                            uint16_t source_id) {
  for (uint32_t i = 0; i < count; ++i) {
    if (all[i].segment == segment && all[i].source_id == source_id) return &all[i];
  }
  return nullptr;
}

uint16_t make_sid(unsigned bus, uint8_t dev, uint8_t fn) {
  return static_cast<uint16_t>(bus << 8 | (dev & 0x1F) << 3 | (fn & 7));
}

// The function a scope path ends at: start at the start bus, and follow
// each hop but the last through that bridge's secondary bus (8.3.1). False
// when a bridge on the way is missing or the path is longer than kept.
bool resolve(const DeviceScope& s, uint16_t segment, const PciFunctionInfo* all, uint32_t count,
             uint16_t* target) {
  if (s.hops == 0 || s.hops > kMaxHops) return false;
  unsigned bus = s.start_bus;
  for (unsigned h = 0; h + 1 < s.hops; ++h) {
    const PciFunctionInfo* bridge =
        find(all, count, segment, make_sid(bus, s.path[h][0], s.path[h][1]));
    if (bridge == nullptr || !bridge->bridge) return false;
    bus = bridge->secondary_bus;
  }
  *target = make_sid(bus, s.path[s.hops - 1][0], s.path[s.hops - 1][1]);
  return true;
}

bool scope_covers(const DeviceScope& s, uint16_t segment, const PciFunctionInfo* all,
                  uint32_t count, const PciFunctionInfo& device) {
  if (s.type != kScopeEndpoint && s.type != kScopeBridge) return false;
  uint16_t target = 0;
  if (!resolve(s, segment, all, count, &target)) return false;
  if (target == device.source_id) return true;
  if (s.type != kScopeBridge) return false;
  const PciFunctionInfo* bridge = find(all, count, segment, target);
  const unsigned bus = device.source_id >> 8;
  return bridge != nullptr && bridge->bridge && bus >= bridge->secondary_bus &&
         bus <= bridge->subordinate_bus;
}

}  // namespace

int unit_for_device(const DmarInfo& info, const PciFunctionInfo* all, uint32_t count,
                    const PciFunctionInfo& device) {
  int catch_all = kNoUnit;
  for (uint32_t u = 0; u < info.unit_count; ++u) {
    const RemapUnit& unit = info.units[u];
    if (unit.segment != device.segment) continue;
    if (unit.include_pci_all) {
      catch_all = static_cast<int>(u);
      continue;
    }
    for (uint32_t i = 0; i < unit.scope_count; ++i) {
      const DeviceScope& s = info.scopes[unit.first_scope + i];
      if (scope_covers(s, unit.segment, all, count, device)) return static_cast<int>(u);
    }
  }
  return catch_all;
}

}  // namespace microhv::vtd
