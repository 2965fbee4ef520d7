// VMX instructions (inline asm). Target-only: included from vmx/hw/ only.
// Every wrapper reports VMsucceed / VMfailInvalid (CF=1) / VMfailValid
// (ZF=1, error number in VM_INSTRUCTION_ERROR) and callers check it.
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx::hw {

enum class VmxStatus : uint8_t { kOk, kFailInvalid, kFailValid };

inline VmxStatus status_from_flags(bool cf, bool zf) {
  return cf ? VmxStatus::kFailInvalid : zf ? VmxStatus::kFailValid : VmxStatus::kOk;
}

inline VmxStatus vmxon(uint64_t region_pa) {
  bool cf, zf;
  asm volatile("vmxon %[pa]" : "=@ccc"(cf), "=@ccz"(zf) : [pa] "m"(region_pa) : "memory");
  return status_from_flags(cf, zf);
}

inline VmxStatus vmxoff() {
  bool cf, zf;
  asm volatile("vmxoff" : "=@ccc"(cf), "=@ccz"(zf) : : "memory");
  return status_from_flags(cf, zf);
}

inline VmxStatus vmclear(uint64_t vmcs_pa) {
  bool cf, zf;
  asm volatile("vmclear %[pa]" : "=@ccc"(cf), "=@ccz"(zf) : [pa] "m"(vmcs_pa) : "memory");
  return status_from_flags(cf, zf);
}

inline VmxStatus vmptrld(uint64_t vmcs_pa) {
  bool cf, zf;
  asm volatile("vmptrld %[pa]" : "=@ccc"(cf), "=@ccz"(zf) : [pa] "m"(vmcs_pa) : "memory");
  return status_from_flags(cf, zf);
}

inline VmxStatus vmwrite(Field f, uint64_t value) {
  bool cf, zf;
  asm volatile("vmwrite %[v], %[f]"
               : "=@ccc"(cf), "=@ccz"(zf)
               : [v] "rm"(value), [f] "r"(static_cast<uint64_t>(encoding(f)))
               : "memory");
  return status_from_flags(cf, zf);
}

inline VmxStatus vmread(Field f, uint64_t* value) {
  bool cf, zf;
  uint64_t v = 0;
  asm volatile("vmread %[f], %[v]"
               : "=@ccc"(cf), "=@ccz"(zf), [v] "=rm"(v)
               : [f] "r"(static_cast<uint64_t>(encoding(f)))
               : "memory");
  *value = v;
  return status_from_flags(cf, zf);
}

// INVEPT and INVVPID take a type in a register and a 16-byte descriptor in
// memory: INVEPT {EPTP, 0}, INVVPID {VPID, linear address} (SDM Vol. 3C
// 30.3). One wrapper for both.
enum class Invalidation : uint8_t { kEpt, kVpid };
struct alignas(16) InvalidationDescriptor {
  uint64_t first, second;
};

inline VmxStatus invalidate(Invalidation what, uint64_t type, InvalidationDescriptor d) {
  bool cf, zf;
  if (what == Invalidation::kEpt) {
    asm volatile("invept %[d], %[t]"
                 : "=@ccc"(cf), "=@ccz"(zf)
                 : [d] "m"(d), [t] "r"(type)
                 : "memory");
  } else {
    asm volatile("invvpid %[d], %[t]"
                 : "=@ccc"(cf), "=@ccz"(zf)
                 : [d] "m"(d), [t] "r"(type)
                 : "memory");
  }
  return status_from_flags(cf, zf);
}

// VMLAUNCH returns only on failure (the guest runs otherwise).
inline VmxStatus vmlaunch() {
  bool cf, zf;
  asm volatile("vmlaunch" : "=@ccc"(cf), "=@ccz"(zf) : : "memory");
  return status_from_flags(cf, zf);
}

}  // namespace microhv::vmx::hw
