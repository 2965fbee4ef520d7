// DMA isolation at the take-over (issue 14), as the EFI side runs it:
//
//   survey()   before microhv's pool exists: the firmware's DMAR (a
//              malformed one is logged and counts as none), the PCI
//              functions when there are remapping units, and the most pages
//              the DMA tables can take, so the pool can be sized;
//   protect()  once the pool holds the image copy and the host tables:
//              vtd::protect() with the whole pool as the one protected
//              range (the tables are in it), the identity map as far as
//              EPT's, the outcome logged; false when the policy refuses the
//              take-over (translation is then off again);
//   hide_dmar() after the launch: the DMAR renamed for the guest's ACPI
//              view when a unit translates;
//   unprotect() when microhv gives the machine back after protect().
//
// Portable: firmware tables come in as an RSDP (boot/acpi/reader.hpp),
// devices through PciConfigSpace, units through vtd::RegisterMap, and the
// memory it works in before the pool exists from the caller.
#pragma once

#include <stdint.h>

#include "boot/pci/scan.hpp"
#include "kernel/base/iommu_policy.hpp"
#include "vmx/vtd/resident.hpp"

namespace microhv::boot {

// The survey's working memory (about 20 KiB): the parsed DMAR and the PCI
// functions. The caller keeps it from survey() until protect() returns.
struct DmaSurveyMemory {
  static constexpr uint32_t kMaxFunctions = 1024;
  vtd::DmarInfo dmar;
  vtd::PciFunctionInfo functions[kMaxFunctions];
};

class DmaGuard {
 public:
  DmaGuard(IommuPolicy policy, vtd::RegisterMap& map) : policy_(policy), map_(map) {}

  // `rsdp`: the firmware's (nullptr: none). `identity_limit`: what EPT will
  // map. Returns the pages protect() may take for the tables.
  uint64_t survey(const uint8_t* rsdp, PciConfigSpace& pci, uint64_t identity_limit,
                  DmaSurveyMemory& memory);

  // `vtd` is in the pool; `alloc` hands out pages of the pool's DMA table
  // area. Also notes the units' register windows for EPT.
  bool protect(Hpa pool_base, uint64_t pool_size, uint64_t identity_limit,
               vmx::PageAllocator& alloc, vmx::PhysAccess& phys, vtd::ResidentVtd& vtd);

  // Renames the DMAR ("XMAR") when protect() left a unit translating, so
  // that an OS above microhv does not try to drive the IOMMU; says so. Reads
  // nothing in the pool (it runs as the guest). True when hidden.
  bool hide_dmar();
  // Puts the DMAR back if hide_dmar() renamed it.
  void reveal_dmar();

  // Translation off on every unit protect() turned on, through this side's
  // register accessors (the host may have bound its own).
  bool unprotect(vtd::ResidentVtd& vtd);

  IommuPolicy policy() const { return policy_; }

 private:
  IommuPolicy policy_;
  vtd::RegisterMap& map_;
  uint8_t* dmar_table_ = nullptr;  // the firmware's table (usable), for hiding
  uint32_t dmar_length_ = 0;
  bool translating_ = false;  // protect() left a unit translating
  bool hidden_ = false;
  vtd::ProtectRequest request_{};
  vtd::ProtectedRange pool_{};
};

}  // namespace microhv::boot
