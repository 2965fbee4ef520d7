// EPT paging-structure checker (portable): walks the EPT an EPTP names and
// reports every entry the processor would treat as an EPT misconfiguration
// on this capability set (SDM Vol. 3C 29.3.3.1, "EPT Misconfigurations";
// rules.hpp names the edition): write without read, execute-only without
// EPT_VPID_CAP bit 0, a reserved memory type (2, 3, 7), bits set above
// MAXPHYADDR or in reserved positions, and large pages the processor does
// not support (2 MiB without bit 16, 1 GiB without bit 17). Not a VM-entry
// check -- the misconfiguration exits at the first guest access -- but
// decided by the same capability MSRs, so checked with them.
#pragma once

#include <stdint.h>

#include "vmx/entry_check/capabilities.hpp"
#include "vmx/page_tables.hpp"

namespace microhv::vmx {

struct EptIssue {
  uint64_t gpa;    // first guest-physical address the entry maps
  unsigned level;  // 4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE
  uint64_t entry;
  const char* what;
};

struct EptCheckReport {
  static constexpr uint32_t kMaxIssues = 8;
  EptIssue issues[kMaxIssues];
  uint32_t count = 0;  // all issues, also those beyond kMaxIssues
  uint64_t entries_checked = 0;
  bool ok() const { return count == 0; }
};

// `eptp` must use a 4-level walk (the only form microhv builds).
EptCheckReport check_ept(PhysAccess& phys, uint64_t eptp, const CapabilitySet& caps);

}  // namespace microhv::vmx
