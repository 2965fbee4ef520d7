#include "vmx/entry_check/ept_check.hpp"

namespace microhv::vmx {
namespace {

constexpr uint64_t kRead = 1, kWrite = 2, kExecute = 4;
constexpr uint64_t kLarge = 1ull << 7;
constexpr uint64_t kAddressMask = 0x000FFFFFFFFFF000ull;

class Walker {
 public:
  Walker(PhysAccess& phys, const CapabilitySet& caps, EptCheckReport& out)
      : phys_(phys), caps_(caps), out_(out) {}

  void table(uint64_t table_hpa, unsigned level, uint64_t gpa_base) {
    const uint64_t* t = phys_.table(Hpa(table_hpa));
    const unsigned shift = 12 + 9 * (level - 1);
    for (uint64_t i = 0; i < 512; ++i) {
      const uint64_t e = t[i];
      if ((e & (kRead | kWrite | kExecute)) == 0) continue;  // not present
      ++out_.entries_checked;
      const uint64_t gpa = gpa_base + (i << shift);
      if (entry_ok(e, level, gpa) && level > 1 && (e & kLarge) == 0) {
        table(e & kAddressMask, level - 1, gpa);
      }
    }
  }

 private:
  void issue(uint64_t gpa, unsigned level, uint64_t e, const char* what) {
    if (out_.count < EptCheckReport::kMaxIssues) out_.issues[out_.count] = {gpa, level, e, what};
    ++out_.count;
  }

  // False when the entry is bad (and not descended into).
  bool entry_ok(uint64_t e, unsigned level, uint64_t gpa) {
    const uint64_t cap = caps_.msrs.ept_vpid_cap;
    const uint64_t rwx = e & 7;
    if ((rwx & kWrite) != 0 && (rwx & kRead) == 0) {
      issue(gpa, level, e, "write permission without read permission");
      return false;
    }
    if (rwx == kExecute && (cap & ept_cap::kExecuteOnly) == 0) {
      issue(gpa, level, e, "execute-only entry without EPT_VPID_CAP bit 0");
      return false;
    }
    const uint64_t addr = e & kAddressMask;
    if (caps_.maxphyaddr < 64 && (addr >> caps_.maxphyaddr) != 0) {
      issue(gpa, level, e, "address bits above MAXPHYADDR");
      return false;
    }
    const bool leaf = level == 1 || (e & kLarge) != 0;
    if (level == 4 && (e & kLarge) != 0) {
      issue(gpa, level, e, "PML4E bit 7 is reserved");
      return false;
    }
    if (!leaf) {
      if ((e & 0x78) != 0) {  // bits 6:3 reserved in a non-leaf entry
        issue(gpa, level, e, "reserved bits 6:3 set in a non-leaf entry");
        return false;
      }
      return true;
    }
    const uint64_t memtype = (e >> 3) & 7;
    if (memtype == 2 || memtype == 3 || memtype == 7) {
      issue(gpa, level, e, "reserved EPT memory type (2, 3 or 7)");
      return false;
    }
    if (level == 3 && (cap & ept_cap::kPage1G) == 0) {
      issue(gpa, level, e, "1-GByte page without EPT_VPID_CAP bit 17");
      return false;
    }
    if (level == 2 && (cap & ept_cap::kPage2M) == 0) {
      issue(gpa, level, e, "2-MByte page without EPT_VPID_CAP bit 16");
      return false;
    }
    const uint64_t size = 1ull << (12 + 9 * (level - 1));
    if ((addr & (size - 1)) != 0) {
      issue(gpa, level, e, "large-page address not aligned to the page size");
      return false;
    }
    return true;
  }

  PhysAccess& phys_;
  const CapabilitySet& caps_;
  EptCheckReport& out_;
};

}  // namespace

EptCheckReport check_ept(PhysAccess& phys, uint64_t eptp, const CapabilitySet& caps) {
  EptCheckReport report;
  Walker(phys, caps, report).table(eptp & kAddressMask, 4, 0);
  return report;
}

}  // namespace microhv::vmx
