#include "hypercall/cpuid.hpp"

#include "kernel/partition.hpp"

namespace microhv {
namespace {

constexpr uint32_t chars(const char (&s)[5]) {
  return static_cast<uint32_t>(static_cast<uint8_t>(s[0])) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[3])) << 24;
}

constexpr uint32_t kHighestLeaf = tlfs::cpuid::kLimitsLeaf;
constexpr uint32_t kBuildNumber = 1;
constexpr uint32_t kVersionMajorMinor = (0u << 16) | 1u;  // microhv 0.1

}  // namespace

bool hyperv_cpuid(const Partition& partition, uint32_t leaf, CpuidRegs* out) {
  if (leaf < kHvCpuidFirst || leaf > kHvCpuidLast) return false;
  *out = CpuidRegs{0, 0, 0, 0};
  const PartitionFeatures& f = partition.features();
  switch (leaf) {
    case tlfs::cpuid::kVendorLeaf:  // "Microsoft Hv"; no KVM leaves follow
      *out = {kHighestLeaf, chars("Micr"), chars("osof"), chars("t Hv")};
      break;
    case tlfs::cpuid::kInterfaceLeaf:
      out->eax = tlfs::cpuid::kHvInterfaceSignature;
      break;
    case tlfs::cpuid::kVersionLeaf:
      out->eax = kBuildNumber;
      out->ebx = kVersionMajorMinor;
      break;
    case tlfs::cpuid::kFeaturesLeaf:
      out->eax = f.msr_access;
      out->ebx = f.privileges & ~tlfs::cpuid::kCpuManagement;  // never the root
      out->edx = f.misc;
      break;
    case tlfs::cpuid::kHintsLeaf:
      // Only the hints the partition was granted: relaxed timing, and the
      // recommendations whose hypercalls it accepts (the call table gates
      // them on the same bits). Never AutoEOI deprecated (bit 9) or nested
      // (bit 12). EBX: never notify long spin waits.
      out->eax = f.hints & ~(tlfs::cpuid::kHintDeprecateAutoEoi | tlfs::cpuid::kHintNested);
      out->ebx = 0xFFFFFFFF;
      break;
    case tlfs::cpuid::kLimitsLeaf:
      out->eax = kMaxVps;
      out->ebx = kMaxVps;
      break;
    default:
      break;
  }
  return true;
}

}  // namespace microhv
