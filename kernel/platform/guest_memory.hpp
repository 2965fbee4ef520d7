// The one way the portable core touches guest memory. Every access names a
// guest-physical range; an implementation refuses (returns false) any range
// that is not entirely RAM owned by the guest, so hypervisor memory and MMIO
// are never reachable through it. The VT-x back end implements it on top of
// the identity map; host tests use a fake that records every write.
#pragma once

#include "kernel/base/types.hpp"

namespace microhv {

class GuestMemory {
 public:
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
