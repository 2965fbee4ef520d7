// A set of VP indexes of one partition, one bit per VP (bit n = VP n): the
// targets of an IPI or a TLB flush. It holds VPs 0..63, which covers every
// partition (kMaxVps, kernel/partition.hpp, is checked against it).
#pragma once

#include <stdint.h>

#include "kernel/base/types.hpp"

namespace microhv {

class VpMask {
 public:
  static constexpr uint32_t kCapacity = 64;

  constexpr VpMask() = default;
  constexpr explicit VpMask(uint64_t bits) : bits_(bits) {}
  // VPs [0, count).
  static constexpr VpMask first(uint32_t count) {
    return VpMask(count >= kCapacity ? ~0ull : (1ull << count) - 1);
  }

  constexpr uint64_t bits() const { return bits_; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool has(VpIndex vp) const {
    return vp.value() < kCapacity && ((bits_ >> vp.value()) & 1) != 0;
  }
  constexpr void add(VpIndex vp) {
    if (vp.value() < kCapacity) bits_ |= 1ull << vp.value();
  }
  constexpr void remove(VpIndex vp) {
    if (vp.value() < kCapacity) bits_ &= ~(1ull << vp.value());
  }
  constexpr VpMask operator&(VpMask o) const { return VpMask(bits_ & o.bits_); }
  constexpr VpMask operator|(VpMask o) const { return VpMask(bits_ | o.bits_); }
  friend constexpr bool operator==(VpMask a, VpMask b) { return a.bits_ == b.bits_; }

  // Calls f(VpIndex) for every VP in the set, lowest first.
  template <typename F>
  void for_each(F f) const {
    for (uint64_t b = bits_; b != 0; b &= b - 1)
      f(VpIndex(static_cast<uint32_t>(__builtin_ctzll(b))));
  }

 private:
  uint64_t bits_ = 0;
};

}  // namespace microhv
