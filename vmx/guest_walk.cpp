#include "vmx/guest_walk.hpp"

#include "arch/paging.hpp"
#include "arch/x86.hpp"

namespace microhv::vmx {
namespace {

constexpr uint64_t kPresent = arch::pte::kPresent;
constexpr uint64_t kLarge = arch::pte::kLarge;
constexpr uint64_t kAddr52 = arch::kPteAddrMask;

bool read_entry(GuestMemory& m, uint64_t table_gpa, uint64_t* e, uint32_t size) {
  *e = 0;
  return m.read(Gpa(table_gpa), e, size);
}

// The walk itself, on raw numbers: paging-structure entries hold them.
bool walk(GuestMemory& m, const GuestPaging& p, uint64_t linear, uint64_t* gpa) {
  if ((p.cr0 & arch::cr0::kPg) == 0) {
    *gpa = linear & 0xFFFFFFFFull;  // no paging: linear addresses are 32 bits
    if ((p.efer & arch::efer::kLma) != 0) *gpa = linear;
    return true;
  }
  uint64_t e = 0;
  if ((p.efer & arch::efer::kLma) != 0) {  // 4-level IA-32e paging
    uint64_t table = p.cr3 & kAddr52;
    for (int level = 4; level >= 1; --level) {
      const uint64_t index = (linear >> (12 + 9 * (level - 1))) & 0x1FF;
      if (!read_entry(m, table + index * 8, &e, 8) || (e & kPresent) == 0) return false;
      if (level == 1 || (level <= 3 && (e & kLarge) != 0)) {
        const uint64_t size = 1ull << (12 + 9 * (level - 1));
        *gpa = (e & kAddr52 & ~(size - 1)) | (linear & (size - 1));
        return true;
      }
      table = e & kAddr52;
    }
    return false;
  }
  if ((p.cr4 & arch::cr4::kPae) != 0) {  // PAE: 4 PDPTEs, then 2 levels of 8-byte entries
    const uint64_t pdpt = p.cr3 & 0xFFFFFFE0ull;
    if (!read_entry(m, pdpt + ((linear >> 30) & 3) * 8, &e, 8) || (e & kPresent) == 0) return false;
    uint64_t table = e & kAddr52;
    if (!read_entry(m, table + ((linear >> 21) & 0x1FF) * 8, &e, 8) || (e & kPresent) == 0)
      return false;
    if ((e & kLarge) != 0) {
      *gpa = (e & kAddr52 & ~0x1FFFFFull) | (linear & 0x1FFFFF);
      return true;
    }
    table = e & kAddr52;
    if (!read_entry(m, table + ((linear >> 12) & 0x1FF) * 8, &e, 8) || (e & kPresent) == 0)
      return false;
    *gpa = (e & kAddr52) | (linear & 0xFFF);
    return true;
  }
  // 32-bit paging: 2 levels of 4-byte entries, 4 MiB pages with CR4.PSE.
  const uint64_t pd = p.cr3 & 0xFFFFF000ull;
  if (!read_entry(m, pd + ((linear >> 22) & 0x3FF) * 4, &e, 4) || (e & kPresent) == 0) return false;
  if ((e & kLarge) != 0 && (p.cr4 & arch::cr4::kPse) != 0) {
    // PSE-36/40: bits 20:13 hold physical address bits 39:32.
    *gpa = (e & 0xFFC00000ull) | (((e >> 13) & 0xFF) << 32) | (linear & 0x3FFFFF);
    return true;
  }
  if (!read_entry(m, (e & 0xFFFFF000ull) + ((linear >> 12) & 0x3FF) * 4, &e, 4) ||
      (e & kPresent) == 0)
    return false;
  *gpa = (e & 0xFFFFF000ull) | (linear & 0xFFF);
  return true;
}

}  // namespace

bool guest_linear_to_physical(GuestMemory& m, const GuestPaging& p, uint64_t linear, Gpa* gpa) {
  uint64_t result = 0;
  if (!walk(m, p, linear, &result)) return false;
  *gpa = Gpa(result);
  return true;
}

uint32_t fetch_guest_bytes(GuestMemory& m, const GuestPaging& p, uint64_t linear, uint8_t* out,
                           uint32_t len) {
  uint32_t done = 0;
  while (done < len) {
    const uint64_t at = linear + done;
    Gpa gpa(0);
    if (!guest_linear_to_physical(m, p, at, &gpa)) break;
    uint32_t chunk = static_cast<uint32_t>(0x1000 - (at & 0xFFF));
    if (chunk > len - done) chunk = len - done;
    if (!m.read(gpa, out + done, chunk)) break;
    done += chunk;
  }
  return done;
}

}  // namespace microhv::vmx
