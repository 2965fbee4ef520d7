#include "vmx/vtd/caps.hpp"

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {

using namespace arch::vtd;

UnitCaps decode_caps(uint32_t version, uint64_t c, uint64_t e) {
  UnitCaps u{};
  u.version = version;
  u.cap = c;
  u.ecap = e;
  u.sagaw = static_cast<uint8_t>((c >> cap::kSagawShift) & cap::kSagawMask);
  u.mgaw_bits = static_cast<uint8_t>(((c >> cap::kMgawShift) & cap::kMgawMask) + 1);
  u.superpages = static_cast<uint8_t>((c >> cap::kSllpsShift) & cap::kSllpsMask);
  u.domains = 1u << (4 + 2 * (c & cap::kNdMask));
  u.iotlb_reg =
      static_cast<uint32_t>(((e >> ecap::kIroShift) & ecap::kIroMask) * 16) + kIotlbRegInGroup;
  u.fault_reg = static_cast<uint32_t>(((c >> cap::kFroShift) & cap::kFroMask) * 16);
  u.fault_count = static_cast<uint32_t>((c >> cap::kNfrShift) & cap::kNfrMask) + 1;
  u.write_buffer_flush = (c & cap::kRwbf) != 0;
  u.caching_mode = (c & cap::kCm) != 0;
  u.coherent = (e & ecap::kC) != 0;
  u.queued_invalidation = (e & ecap::kQi) != 0;
  u.interrupt_remapping = (e & ecap::kIr) != 0;
  u.drain_reads = (c & cap::kDrd) != 0;
  u.drain_writes = (c & cap::kDwd) != 0;
  return u;
}

UnitPlan plan_unit(const UnitCaps& caps, uint32_t dmar_register_bytes) {
  UnitPlan p{};
  // A unit that does not decode its registers (wrong DMAR address, unit
  // disabled by the platform) reads all ones.
  if (caps.version == 0xFFFFFFFFu || caps.cap == ~0ull || caps.ecap == ~0ull) {
    format(p.reason, sizeof(p.reason),
           "its registers read all ones (nothing answers at the DMAR's register base)");
    return p;
  }
  const bool three = (caps.sagaw & sagaw_bit_for_levels(3)) != 0;
  const bool four = (caps.sagaw & sagaw_bit_for_levels(4)) != 0;
  if (!three && !four) {
    format(p.reason, sizeof(p.reason),
           "supports neither 3-level (39-bit) nor 4-level (48-bit) second-level tables (SAGAW "
           "0x%x)",
           caps.sagaw);
    return p;
  }
  // 48 bits when the unit has them, as Linux and Xen choose: the tables
  // then cover any memory size; 3-level-only units reach 512 GiB.
  p.levels = four ? 4 : 3;
  // 1 GiB pages only together with 2 MiB ones (9.8: SLLPS bits 0 and 1).
  if ((caps.superpages & 3) == 3) {
    p.max_leaf_level = 3;
  } else if ((caps.superpages & 1) != 0) {
    p.max_leaf_level = 2;
  } else {
    p.max_leaf_level = 1;
  }
  const unsigned width = address_width_for_levels(p.levels);
  const unsigned bits = caps.mgaw_bits < width ? caps.mgaw_bits : width;
  p.reach = bits >= 64 ? ~0ull : 1ull << bits;

  // Every register microhv touches must lie inside the window it maps. DMAR
  // tables older than rev. 2.2 announce one page whatever the unit needs, so
  // the window grows to what CAP/ECAP place (as Linux and Xen do).
  const uint32_t fault_end = caps.fault_reg + caps.fault_count * kFaultRecordBytes;
  const uint32_t iotlb_end = caps.iotlb_reg + 8;
  uint32_t need = fault_end > iotlb_end ? fault_end : iotlb_end;
  if (need < kIqtReg + 8) need = kIqtReg + 8;
  need = (need + 0xFFF) & ~0xFFFu;
  p.register_bytes = need > dmar_register_bytes ? need : dmar_register_bytes;
  p.usable = true;
  return p;
}

const char* page_sizes_text(unsigned max_leaf_level) {
  switch (max_leaf_level) {
    case 3:
      return "4K+2M+1G pages";
    case 2:
      return "4K+2M pages";
    default:
      return "4K pages only";
  }
}

}  // namespace microhv::vtd
