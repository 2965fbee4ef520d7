// The one way the portable core touches guest memory, and the guest's view
// of it. Every access names a guest-physical range; an implementation
// refuses (returns false) any range that is not entirely RAM the guest owns
// and sees as RAM: hypervisor memory, MMIO, the local APIC page and overlay
// pages (the hypercall page: the guest sees the overlay there, not the RAM
// under it) are never reachable through it. The VT-x back end implements it
// on top of the identity map and the guest's EPT; host tests use a fake
// that records every write.
#pragma once

#include "kernel/base/types.hpp"

namespace microhv {

class GuestMemory {
 public:
  // The guest's physical address width (CPUID.80000008:EAX[7:0] as the
  // guest sees it; SDM Vol. 3A 4.1.4 MAXPHYADDR): no GPA at or above
  // 2^address_bits() exists for it.
  virtual unsigned address_bits() const = 0;
  bool within_width(Gpa gpa) const {
    return address_bits() >= 64 || (gpa.value() >> address_bits()) == 0;
  }
  virtual bool is_ram(Gpa gpa, uint64_t len) const = 0;
  virtual bool read(Gpa gpa, void* dst, uint64_t len) = 0;
  virtual bool write(Gpa gpa, const void* src, uint64_t len) = 0;
  // Atomically ORs `bits` into the 8-byte-aligned qword at `gpa` and returns
  // its previous value in `old`: SIEF flags and MessagePending must not race
  // with the guest clearing them (TLFS 11.9.3, 11.10.2).
  virtual bool fetch_or_u64(Gpa gpa, uint64_t bits, uint64_t* old) = 0;

 protected:
  ~GuestMemory() = default;
};

}  // namespace microhv
