// An index from a (partition, 32-bit id) key to the slot of a fixed-size
// table (ports, connections): open addressing with linear probing and
// backward-shift deletion (no tombstones, so lookups stay short however
// often entries come and go). Twice as many buckets as slots keeps the load
// at or below 1/2; every loop is bounded by the bucket count. No
// allocation. The table stays the owner of the keys: a bucket holds a
// slot and its key's hash, and `find` confirms a hash match against the
// table's own record (`matches`), so a colliding key is never mistaken for
// another.
#pragma once

#include <stdint.h>

namespace microhv {

inline constexpr uint16_t kNoSlot = 0xFFFF;

template <uint32_t kSlots>
class SlotIndex {
 public:
  static constexpr uint32_t kBuckets = 2 * kSlots;
  static_assert((kBuckets & (kBuckets - 1)) == 0, "bucket count must be a power of two");
  static_assert(kSlots < kNoSlot, "slots are 16-bit");

  SlotIndex() {
    for (Bucket& b : buckets_) b = Bucket{};
  }

  // The slot whose record `matches(slot)` confirms, or kNoSlot.
  template <typename Matches>
  uint16_t find(const void* owner, uint32_t id, Matches matches) const {
    const uint32_t h = hash(owner, id);
    for (uint32_t i = 0, b = h & kMask; i < kBuckets; ++i, b = (b + 1) & kMask) {
      const Bucket& e = buckets_[b];
      if (e.slot == kNoSlot) return kNoSlot;
      if (e.hash == h && matches(e.slot)) return e.slot;
    }
    return kNoSlot;
  }

  // Precondition: `slot` < kSlots and not indexed (so a bucket is free).
  void insert(const void* owner, uint32_t id, uint16_t slot) {
    const uint32_t h = hash(owner, id);
    for (uint32_t i = 0, b = h & kMask; i < kBuckets; ++i, b = (b + 1) & kMask) {
      if (buckets_[b].slot == kNoSlot) {
        buckets_[b] = {h, slot};
        return;
      }
    }
  }

  // Removes `slot`, indexed under (owner, id); nothing if it is not.
  void erase(const void* owner, uint32_t id, uint16_t slot) {
    const uint32_t h = hash(owner, id);
    uint32_t b = h & kMask;
    uint32_t i = 0;
    for (; i < kBuckets && !(buckets_[b].slot == slot && buckets_[b].hash == h);
         ++i, b = (b + 1) & kMask) {
      if (buckets_[b].slot == kNoSlot) return;
    }
    if (i == kBuckets) return;
    // Backward shift: move each later entry of the run into the hole unless
    // its home bucket lies cyclically in (hole, entry].
    uint32_t hole = b;
    for (uint32_t n = 1; n < kBuckets; ++n) {
      const uint32_t next = (hole + n) & kMask;
      const Bucket& e = buckets_[next];
      if (e.slot == kNoSlot) break;
      const uint32_t home = e.hash & kMask;
      if (((next - home) & kMask) >= ((next - hole) & kMask)) {
        buckets_[hole] = e;
        hole = next;
        n = 0;
      }
    }
    buckets_[hole] = Bucket{};
  }

 private:
  static constexpr uint32_t kMask = kBuckets - 1;
  struct Bucket {
    uint32_t hash = 0;
    uint16_t slot = kNoSlot;
  };

  // Fibonacci hashing of both halves of the key; the high bits are the
  // well-mixed ones, folded down so the mask sees them.
  static uint32_t hash(const void* owner, uint32_t id) {
    const uint64_t k = (reinterpret_cast<uintptr_t>(owner) >> 3) * 0x9E3779B97F4A7C15ull ^
                       (uint64_t{id} * 0xC2B2AE3D27D4EB4Full);
    return static_cast<uint32_t>((k ^ (k >> 29)) >> 32);
  }

  Bucket buckets_[kBuckets];
};

}  // namespace microhv
