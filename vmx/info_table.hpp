// The EFI configuration table microhv publishes once the firmware runs as
// its guest, so guest-side tests can find microhv's memory without a
// hypercall (e.g. to check that it is unreachable: EPT maps it not-present,
// an access gets #GP). Look it up in SystemTable->ConfigurationTable by
// kInfoTableGuid. Portable (no EFI headers): the suite may include it.
#pragma once

#include <stdint.h>

namespace microhv::vmx {

// {6d6963726f68-7600-4d49-8000-000000000001}
struct InfoTableGuid {
  uint32_t data1;
  uint16_t data2, data3;
  uint8_t data4[8];
};
// `static`, not `inline`: see the GLOB_DAT note in vmx/page_tables.hpp.
static constexpr InfoTableGuid kInfoTableGuid{
    0x6d696372, 0x6f68, 0x7600, {0x4d, 0x49, 0x80, 0, 0, 0, 0, 1}};

struct InfoTable {
  uint64_t signature;  // kInfoTableSignature
  uint32_t version;    // 1
  uint32_t size;       // sizeof(InfoTable)
  uint64_t hv_base;    // microhv's resident memory (EfiRuntimeServicesData), not present in EPT
  uint64_t hv_size;
  uint64_t hypercall_overlay_page;  // host-physical page behind the hypercall page (not in EPT)
};
static constexpr uint64_t kInfoTableSignature = 0x0056484F5243494Dull;  // "MICROHV\0"

}  // namespace microhv::vmx
