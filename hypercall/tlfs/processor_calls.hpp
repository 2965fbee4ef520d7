// TLFS facts of the hypercalls that act on other virtual processors:
// HvCallSendSyntheticClusterIpi(Ex) and HvCallFlushVirtualAddressSpace/List
// (Ex), their flags and HV_VP_SET. Wire layouts only; the behaviour is in
// hypercall/processor_calls.cpp.
#pragma once

#include <stdint.h>

namespace microhv::tlfs {

// ---- HV_VP_SET (TLFS datatypes "HV_VP_SET"): a format, a bank mask, then
// one 64-bit mask per set bank, in bank order (bank n = VPs 64n..64n+63).
// In the *Ex hypercalls the format and the bank mask end the fixed header
// and the bank masks are the variable header.
inline constexpr uint64_t kGenericSetSparse4k = 0;
inline constexpr uint64_t kGenericSetAll = 1;
inline constexpr uint32_t kVpsPerBank = 64;

struct VpSetHeader {
  uint64_t format;
  uint64_t valid_bank_mask;
};
static_assert(sizeof(VpSetHeader) == 16);

// ---- HV_INPUT_VTL (the TargetVtl byte): 3:0 target VTL, 4 "use the target
// VTL" (else the caller's), 7:5 reserved.
namespace input_vtl {
inline constexpr uint8_t kTargetMask = 0x0F;
inline constexpr uint8_t kUseTarget = 0x10;
}  // namespace input_vtl

// ---- HvCallSendSyntheticClusterIpi 0x000B (simple; fast with RDX, R8) and
// ...Ex 0x0015 (variable header). A fixed interrupt, never an NMI.
inline constexpr uint32_t kIpiVectorMin = 0x10;
inline constexpr uint32_t kIpiVectorMax = 0xFF;

struct SendIpiInput {
  uint32_t vector;
  uint8_t target_vtl;  // HV_INPUT_VTL
  uint8_t padding[3];  // padding: ignored (TLFS "Hypercall Interface")
  uint64_t processor_mask;
};
static_assert(sizeof(SendIpiInput) == 16);

struct SendIpiExHeader {
  uint32_t vector;
  uint8_t target_vtl;
  uint8_t padding[3];
  VpSetHeader processor_set;  // bank masks follow as the variable header
};
static_assert(sizeof(SendIpiExHeader) == 24);

// ---- HvCallFlushVirtualAddressSpace 0x0002 / List 0x0003 (rep), and the
// Ex forms 0x0013 / 0x0014 (variable header; List: rep).
namespace flush_flags {
inline constexpr uint64_t kAllProcessors = 1ull << 0;            // ProcessorMask/Set ignored
inline constexpr uint64_t kAllVirtualAddressSpaces = 1ull << 1;  // AddressSpace ignored
inline constexpr uint64_t kNonGlobalMappingsOnly = 1ull << 2;    // Space calls only
// Every other bit is reserved (bit 3, the extended range format, is not
// offered: CPUID 0x40000003 does not advertise it).
inline constexpr uint64_t kDefined =
    kAllProcessors | kAllVirtualAddressSpaces | kNonGlobalMappingsOnly;
}  // namespace flush_flags

// An address space id is a CR3 value: bits 63:52 are above any physical
// address width x86-64 defines (SDM Vol. 3A 4.5), so they must be zero.
inline constexpr uint64_t kAddressSpaceReservedMask = 0xFFFull << 52;

struct FlushSpaceInput {  // also the header of FlushVirtualAddressList
  uint64_t address_space;
  uint64_t flags;
  uint64_t processor_mask;
};
static_assert(sizeof(FlushSpaceInput) == 24);

struct FlushSpaceExHeader {  // also the header of FlushVirtualAddressListEx
  uint64_t address_space;
  uint64_t flags;
  VpSetHeader processor_set;
};
static_assert(sizeof(FlushSpaceExHeader) == 32);

// A rep element of the List calls, HV_GVA range: 63:12 the first page,
// 11:0 the number of further pages (1 to 4096 pages in all).
namespace gva_range {
inline constexpr uint64_t kPageMask = ~0xFFFull;
inline constexpr uint64_t kExtraPagesMask = 0xFFF;
constexpr uint64_t page(uint64_t range) {
  return range & kPageMask;
}
constexpr uint32_t pages(uint64_t range) {
  return static_cast<uint32_t>(range & kExtraPagesMask) + 1;
}
}  // namespace gva_range

}  // namespace microhv::tlfs
