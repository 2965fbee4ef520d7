// The VMCS as one VM exit sees it: a field is read from the CPU at most
// once per exit while it stays in the table below (the exit path and the
// handlers read RIP, the instruction length, interruptibility, RFLAGS and
// CR0 more than once). Writes go through and update the kept value. begin_exit() forgets
// everything: a VM entry and exit change the guest fields and the exit
// information (SDM Vol. 3C 28.2, 28.3).
//
// Failures are as in VmcsAccess: a failed VMREAD is reported by `Inner`,
// returns false and caches nothing; a failed VMWRITE drops the kept value,
// so the next read asks the CPU again.
//
// `Inner` is the concrete accessor (vmx/hw/vmcs.hpp's final HwVmcs on the
// machine, a fake in the host tests), so the inner calls are direct.
#pragma once

#include <stdint.h>

#include "vmx/vmcs_access.hpp"

namespace microhv::vmx {

// A direct-mapped table of 32 entries, each tagged with the field's
// encoding and the exit it was read in (begin_exit() starts a new exit, so
// nothing is ever cleared). Fields that share an entry just evict each
// other: the table keeps values, it never decides them. The multiplier
// gives the fields the exit path and the handlers read (exit information,
// RIP, RSP, RFLAGS, interruptibility, activity, CR0/CR4 and their masks and
// shadows, EFER, CS/SS access rights) an entry each (unit-tested).
inline constexpr uint32_t kVmcsCacheEntries = 32;
constexpr uint32_t vmcs_cache_index(Field f) {
  return (encoding(f) * 0x74B31BFBu) >> 27;  // multiplicative hashing: the top 5 bits
}

template <class Inner>
class CachedVmcs final : public VmcsAccess {
 public:
  void begin_exit() {
    if (++exit_ == 0) {  // wrapped: old tags could look current
      for (Entry& e : entries_) e.exit = 0;
      exit_ = 1;
    }
  }

  bool read(Field f, uint64_t* value) override {
    Entry& e = entries_[vmcs_cache_index(f)];
    if (e.exit == exit_ && e.field == f) {
      *value = e.value;
      return true;
    }
    if (!inner_.read(f, value)) return false;
    e = Entry{f, exit_, *value};
    return true;
  }

  bool write(Field f, uint64_t value) override {
    Entry& e = entries_[vmcs_cache_index(f)];
    if (!inner_.write(f, value)) {
      if (e.field == f) e.exit = 0;
      return false;
    }
    e = Entry{f, exit_, value};
    return true;
  }

  Inner& inner() { return inner_; }

 private:
  struct Entry {
    Field field;
    uint32_t exit;  // 0: never valid
    uint64_t value;
  };
  Inner inner_{};
  uint32_t exit_ = 1;
  Entry entries_[kVmcsCacheEntries] = {};
};

}  // namespace microhv::vmx
