// The (partition, id) -> slot index behind port and connection lookup
// (kernel/slot_index.hpp), against a plain map under random insertions and
// removals: every key present is found at its slot, every key removed is
// gone, whatever the collisions and the order of removal. The TLFS side
// (ids unique per partition, INVALID_CONNECTION_ID / INVALID_PORT_ID for
// unknown ones) is ports_test.cpp and post_message_status_test.cpp.
#include "kernel/slot_index.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <utility>

using namespace microhv;

namespace {

constexpr uint32_t kSlots = 64;

struct Record {
  bool used = false;
  const void* owner = nullptr;
  uint32_t id = 0;
};

struct Table {
  SlotIndex<kSlots> index;
  Record records[kSlots];

  uint16_t find(const void* owner, uint32_t id) const {
    return index.find(owner, id, [&](uint16_t s) {
      return records[s].used && records[s].owner == owner && records[s].id == id;
    });
  }
};

}  // namespace

TEST_CASE("SlotIndex: finds what was inserted and forgets what was erased, under churn") {
  const uint64_t owners[3] = {};  // partitions: 8-byte aligned objects
  std::mt19937 rng(12);
  Table t;
  std::map<std::pair<const void*, uint32_t>, uint16_t> model;
  for (int step = 0; step < 20000; ++step) {
    const void* owner = &owners[rng() % 3];
    // Few distinct ids per owner: many hits, removals in the middle of runs.
    const uint32_t id = rng() % 48;
    const auto key = std::make_pair(owner, id);
    auto it = model.find(key);
    if (it == model.end() && model.size() < kSlots) {
      uint16_t slot = 0;
      while (t.records[slot].used) ++slot;
      t.records[slot] = {true, owner, id};
      t.index.insert(owner, id, slot);
      model[key] = slot;
    } else if (it != model.end()) {
      REQUIRE(t.find(owner, id) == it->second);
      t.index.erase(owner, id, it->second);
      t.records[it->second] = Record{};
      model.erase(it);
      REQUIRE(t.find(owner, id) == kNoSlot);
    }
    if (step % 97 == 0) {
      for (const auto& [k, slot] : model) REQUIRE(t.find(k.first, k.second) == slot);
    }
  }
}

TEST_CASE("SlotIndex: a full table of one owner's keys, all found; unknown keys are not") {
  const uint64_t partitions[2] = {};
  const uint64_t& owner = partitions[0];
  const uint64_t& other = partitions[1];
  Table t;
  for (uint16_t s = 0; s < kSlots; ++s) {
    t.records[s] = {true, &owner, 1000u + s};
    t.index.insert(&owner, 1000u + s, s);
  }
  for (uint16_t s = 0; s < kSlots; ++s) CHECK(t.find(&owner, 1000u + s) == s);
  CHECK(t.find(&owner, 999) == kNoSlot);
  CHECK(t.find(&other, 1000) == kNoSlot);  // same id, another partition
  // Erasing a key under which the slot is not indexed changes nothing.
  t.index.erase(&other, 1000, 0);
  CHECK(t.find(&owner, 1000) == 0);
}
