// The capability matrix: VMX capability MSRs of real processors, of every
// Bochs 2.7 CPU model with VMX, and of what QEMU/KVM nested exposes for its
// named CPU models, each with where the values come from. The unit tests run
// the VM-entry checker and the feature decisions over every entry.
#pragma once

#include <stdint.h>

#include "vmx/entry_check/capabilities.hpp"

namespace microhv::vmx {

enum class CapOrigin : uint8_t { kRealCpu, kBochs, kQemuKvm };

struct MatrixEntry {
  const char* name;  // e.g. "bochs:tigerlake", "qemu-kvm:Skylake-Server"
  CapOrigin origin;
  const char* source;  // where the values come from
  CapabilitySet caps;
};

uint32_t capability_matrix_size();
const MatrixEntry& capability_matrix(uint32_t index);
// nullptr when no entry has that name.
const MatrixEntry* find_capability_set(const char* name);

}  // namespace microhv::vmx
