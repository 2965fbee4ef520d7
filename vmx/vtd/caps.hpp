// What a remapping unit can do (VER, CAP and ECAP registers, VT-d 10.4.1-
// 10.4.3) and what microhv does with it: the depth of the second-level
// tables, the page sizes, whether table writes must be flushed from the CPU
// caches, where the IOTLB and fault recording registers are. A unit that
// cannot be used gets one clear reason. Portable.
#pragma once

#include <stdint.h>

namespace microhv::vtd {

struct UnitCaps {
  uint32_t version;  // VER_REG: major 7:4, minor 3:0
  uint64_t cap, ecap;
  uint8_t sagaw;             // bit n: (n + 2)-level tables supported
  uint8_t mgaw_bits;         // inputs above 2^mgaw_bits - 1 are blocked
  uint8_t superpages;        // SLLPS: bit 0 = 2 MiB, bit 1 = 1 GiB
  uint32_t domains;          // 2^(4 + 2 * ND)
  uint32_t iotlb_reg;        // offset of IOTLB_REG (ECAP.IRO * 16 + 8)
  uint32_t fault_reg;        // offset of fault recording register 0 (CAP.FRO * 16)
  uint32_t fault_count;      // CAP.NFR + 1
  bool write_buffer_flush;   // CAP.RWBF: flush write buffers after table writes (6.8)
  bool caching_mode;         // CAP.CM: not-present entries may be cached (6.1)
  bool coherent;             // ECAP.C: page walks snoop; if not, flush table writes from caches
  bool queued_invalidation;  // ECAP.QI
  bool interrupt_remapping;  // ECAP.IR
  bool drain_reads, drain_writes;  // CAP.DRD, CAP.DWD
};

UnitCaps decode_caps(uint32_t version, uint64_t cap, uint64_t ecap);

struct UnitPlan {
  bool usable;
  char reason[160];         // why not, when !usable
  unsigned levels;          // 3 (39-bit) or 4 (48-bit) second-level tables
  unsigned max_leaf_level;  // 1: 4 KiB pages only, 2: also 2 MiB, 3: also 1 GiB
  uint64_t reach;           // devices behind the unit can address [0, reach)
  uint32_t register_bytes;  // register window: the DMAR's and every register CAP/ECAP place
};

// Decides for one unit: 4-level tables when SAGAW has them, else 3-level.
// `dmar_register_bytes`: the window the DRHD structure announces.
UnitPlan plan_unit(const UnitCaps& caps, uint32_t dmar_register_bytes);

// "4K+2M+1G pages", "4K+2M pages" or "4K pages only".
const char* page_sizes_text(unsigned max_leaf_level);

}  // namespace microhv::vtd
