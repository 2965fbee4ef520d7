// Memory as the host sees it: everything is identity-mapped (the host page
// tables map [0, limit) one to one), so a host-physical address is a
// pointer. Page-table pages come from the tail of microhv's pool; guest
// memory is reached through the EPT layout, which refuses what the guest
// does not own. Also the TSC-based reference clock.
#pragma once

#include "kernel/platform/clock.hpp"
#include "kernel/platform/guest_memory.hpp"
#include "vmx/guest_ept.hpp"
#include "vmx/launch.hpp"
#include "vmx/page_tables.hpp"

namespace microhv::vmx::hw {

class IdentityPhys final : public PhysAccess {
 public:
  uint64_t* table(Hpa page) override { return reinterpret_cast<uint64_t*>(page.value()); }
};

// Zeroed pages from [info.alloc_next, info.alloc_end). Only the BSP's set-up
// and overlay moves (under the EPT lock) allocate.
class PoolAllocator final : public PageAllocator {
 public:
  explicit PoolAllocator(LaunchInfo& info) : info_(info) {}
  Optional<Hpa> alloc_page() override;
  uint64_t pages_left() const { return (info_.alloc_end - info_.alloc_next) / kPageSize; }

 private:
  LaunchInfo& info_;
};

// GuestMemory on the identity map, refusing anything that is not RAM the
// guest sees as RAM (GuestEpt::is_guest_ram: microhv's memory, MMIO, the
// xAPIC page and overlay pages are not). Attached once the EPT is built.
class HwGuestMemory final : public GuestMemory {
 public:
  void attach(const GuestEpt& ept) { ept_ = &ept; }
  unsigned address_bits() const override;
  bool is_ram(Gpa gpa, uint64_t len) const override;
  bool read(Gpa gpa, void* dst, uint64_t len) override;
  bool write(Gpa gpa, const void* src, uint64_t len) override;
  bool fetch_or_u64(Gpa gpa, uint64_t bits, uint64_t* old) override;

 private:
  const GuestEpt* ept_ = nullptr;
};

// The reference clock's source: this CPU's TSC (the core scales it to
// 100 ns units with the rate measured by the EFI side).
class TscClock final : public ReferenceClock {
 public:
  uint64_t read_tsc() override;
};

}  // namespace microhv::vmx::hw
