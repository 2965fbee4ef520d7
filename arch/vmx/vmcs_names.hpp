// Names for diagnostics (portable).
#pragma once

#include <stdint.h>

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx {

struct FieldName {
  Field field;
  const char* name;
};
// The fields printed by a VMCS dump, in print order.
extern const FieldName kDumpFields[];
extern const uint32_t kDumpFieldCount;

}  // namespace microhv::vmx
