// Page-table entry formats: 4-level IA-32e paging (SDM Vol. 3A 4.5) and EPT
// (SDM Vol. 3C 29.3.2). Facts only; portable.
#pragma once

#include <stdint.h>

namespace microhv::arch {

inline constexpr uint64_t kPageSize4K = 1ull << 12;
inline constexpr uint64_t kPageSize2M = 1ull << 21;
inline constexpr uint64_t kPageSize1G = 1ull << 30;
inline constexpr uint64_t kPageSize512G = 1ull << 39;
inline constexpr unsigned kEntriesPerTable = 512;
// Physical address bits 51:12 of an entry.
inline constexpr uint64_t kPteAddrMask = 0x000FFFFFFFFFF000ull;

// IA-32e paging.
namespace pte {
inline constexpr uint64_t kPresent = 1ull << 0;
inline constexpr uint64_t kWritable = 1ull << 1;
inline constexpr uint64_t kUser = 1ull << 2;
inline constexpr uint64_t kPwt = 1ull << 3;
inline constexpr uint64_t kPcd = 1ull << 4;
inline constexpr uint64_t kLarge = 1ull << 7;  // PS in a PDPTE (1G) or PDE (2M)
inline constexpr uint64_t kNoExecute = 1ull << 63;
}  // namespace pte

// EPT.
namespace ept {
inline constexpr uint64_t kRead = 1ull << 0;
inline constexpr uint64_t kWrite = 1ull << 1;
inline constexpr uint64_t kExecute = 1ull << 2;
inline constexpr uint64_t kRwx = kRead | kWrite | kExecute;
inline constexpr unsigned kMemTypeShift = 3;  // bits 5:3 of a leaf
inline constexpr uint64_t kMemTypeMask = 7ull << 3;
inline constexpr uint64_t kIgnorePat = 1ull << 6;
inline constexpr uint64_t kLarge = 1ull << 7;
}  // namespace ept

// Memory types (SDM Vol. 3A 11.3): the EPT leaf memory type replaces the
// MTRR type for guest accesses.
enum class MemType : uint8_t { kUc = 0, kWc = 1, kWt = 4, kWp = 5, kWb = 6 };

// Index of the table entry for `addr` at `level` (1 = PT, 2 = PD, 3 = PDPT, 4 = PML4).
constexpr unsigned table_index(uint64_t addr, unsigned level) {
  return static_cast<unsigned>((addr >> (12 + 9 * (level - 1))) & 0x1FF);
}
constexpr uint64_t level_page_size(unsigned level) {
  return 1ull << (12 + 9 * (level - 1));
}

}  // namespace microhv::arch
