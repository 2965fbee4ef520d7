// Strong types for values that must never be mixed up: a guest-physical
// address is not a host-physical one, a VP index is not an APIC id. Each is a
// distinct type with explicit construction and no implicit conversion.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace microhv {

template <typename Tag, typename Rep>
class Strong {
 public:
  using rep = Rep;
  constexpr Strong() = default;
  constexpr explicit Strong(Rep v) : value_(v) {}
  constexpr Rep value() const { return value_; }
  friend constexpr bool operator==(Strong a, Strong b) { return a.value_ == b.value_; }
  friend constexpr bool operator!=(Strong a, Strong b) { return a.value_ != b.value_; }
  friend constexpr bool operator<(Strong a, Strong b) { return a.value_ < b.value_; }

 private:
  Rep value_{};
};

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kPageMask = kPageSize - 1;

// Physical addresses carry arithmetic that stays inside their own space.
template <typename Tag>
class PhysAddr : public Strong<Tag, uint64_t> {
 public:
  using Strong<Tag, uint64_t>::Strong;
  constexpr PhysAddr operator+(uint64_t off) const { return PhysAddr(this->value() + off); }
  constexpr uint64_t page_offset() const { return this->value() & kPageMask; }
  constexpr PhysAddr page_base() const { return PhysAddr(this->value() & ~kPageMask); }
  constexpr uint64_t pfn() const { return this->value() >> 12; }
  static constexpr PhysAddr from_pfn(uint64_t pfn) { return PhysAddr(pfn << 12); }
};

struct GpaTag;
struct HpaTag;
using Gpa = PhysAddr<GpaTag>;  // guest-physical address
using Hpa = PhysAddr<HpaTag>;  // host-physical address

using VpIndex = Strong<struct VpIndexTag, uint32_t>;  // TLFS virtual processor index
using ApicId = Strong<struct ApicIdTag, uint32_t>;    // local APIC id of a CPU
using PartitionId = Strong<struct PartitionIdTag, uint64_t>;
using PortId = Strong<struct PortIdTag, uint32_t>;
using ConnectionId = Strong<struct ConnectionIdTag, uint32_t>;

// A SINT number 0..15 (TLFS 11.8). Construct only through checked helpers.
using SintIndex = Strong<struct SintIndexTag, uint8_t>;

template <typename T, size_t N>
constexpr size_t array_size(const T (&)[N]) {
  return N;
}

}  // namespace microhv
