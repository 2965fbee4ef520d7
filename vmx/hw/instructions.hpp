// VMX instructions (inline asm). Target-only: include from *_hw.cpp only.
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

struct alignas(16) InveptDescriptor {
  uint64_t eptp, reserved;
};
struct alignas(16) InvvpidDescriptor {
  uint64_t vpid, linear_address;
};

inline VmxStatus invept(uint64_t type, uint64_t eptp) {
  InveptDescriptor d{eptp, 0};
  bool cf, zf;
  asm volatile("invept %[d], %[t]"
               : "=@ccc"(cf), "=@ccz"(zf)
               : [d] "m"(d), [t] "r"(type)
               : "memory");
  return status_from_flags(cf, zf);
}

inline VmxStatus invvpid(uint64_t type, uint16_t vpid) {
  InvvpidDescriptor d{vpid, 0};
  bool cf, zf;
  asm volatile("invvpid %[d], %[t]"
               : "=@ccc"(cf), "=@ccz"(zf)
               : [d] "m"(d), [t] "r"(type)
               : "memory");
  return status_from_flags(cf, zf);
}

// VMLAUNCH returns only on failure (the guest runs otherwise).
inline VmxStatus vmlaunch() {
  bool cf, zf;
  asm volatile("vmlaunch" : "=@ccc"(cf), "=@ccz"(zf) : : "memory");
  return status_from_flags(cf, zf);
}

}  // namespace microhv::vmx::hw
