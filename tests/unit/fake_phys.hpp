// Host-physical memory for the page-table builders (vmx/page_tables.hpp):
// numbered 4 KiB pages at fake addresses from `base` up, zeroed when handed
// out, every page recorded; `limit` makes the allocator run dry. A table
// address that was never handed out fails the test.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "vmx/page_tables.hpp"

namespace microhv::test {

class FakePhys : public vmx::PhysAccess, public vmx::PageAllocator {
 public:
  explicit FakePhys(size_t limit = 4096, uint64_t base = 0x100000000ull)
      : limit_(limit), base_(base) {}
  Optional<Hpa> alloc_page() override {
    if (pages.size() >= limit_) return kNone;
    const uint64_t hpa = base_ + pages.size() * 4096;
    pages.emplace(hpa, std::vector<uint64_t>(512, 0));
    return Hpa(hpa);
  }
  uint64_t* table(Hpa page) override {
    auto it = pages.find(page.value());
    // FAIL only on a miss: this is the walkers' hot path, and a REQUIRE per
    // table access would dominate the test's run time.
    if (it == pages.end()) FAIL("page-table access to 0x" << std::hex << page.value() << ", never handed out");
    return it->second.data();
  }
  bool has(uint64_t hpa) const { return pages.count(hpa) != 0; }
  std::map<uint64_t, std::vector<uint64_t>> pages;

 private:
  size_t limit_;
  uint64_t base_;
};

}  // namespace microhv::test
