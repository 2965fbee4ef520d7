// HV_VP_SET parsing (TLFS datatypes "HV_VP_SET"): the bank mask against the
// variable header, bank order, the "all" format, VPs past the partition.
#include "hypercall/vp_set.hpp"

#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {

// A VP set as an Ex hypercall carries it: 24 bytes of fixed header (the
// last 16 are format and bank mask), then the bank masks.
struct SetCall {
  FakeMemory memory{4};
  Status parse(uint64_t format, uint64_t bank_mask, std::initializer_list<uint64_t> banks,
               uint32_t vp_count, VpMask* out, int var_qwords = -1) {
    uint32_t i = 0;
    for (uint64_t b : banks) memory.store<uint64_t>(0x1000 + 24 + 8 * i++, b);
    const uint32_t var = var_qwords < 0 ? i : static_cast<uint32_t>(var_qwords);
    CallInput in(memory, Gpa(0x1000), {24, var, 0, 0});
    return parse_vp_set({format, bank_mask}, in, vp_count, out);
  }
};

}  // namespace

TEST_CASE("VP set: sparse bank 0 names VPs 0-63 bit by bit") {
  SetCall c;
  VpMask m;
  REQUIRE(c.parse(tlfs::kGenericSetSparse4k, 1, {0x21}, 8, &m) == Status::kSuccess);
  CHECK(m.bits() == 0x21);  // VPs 0 and 5 (the TLFS example's bank 0)
}

TEST_CASE("VP set: the k-th bank mask belongs to the k-th set bank; absent banks have none") {
  // TLFS example {0, 5, 130}: bank mask 0x5, banks {0x21, 0x04}.
  SetCall c;
  VpMask m;
  REQUIRE(c.parse(tlfs::kGenericSetSparse4k, 0x5, {0x21, 0x04}, 64, &m) == Status::kSuccess);
  CHECK(m.bits() == 0x21);  // VP 130 does not exist (at most 64 VPs): ignored
  // Without bank 0 in the mask, the first qword is bank 2's: no VP here.
  REQUIRE(c.parse(tlfs::kGenericSetSparse4k, 0x4, {0xFF}, 64, &m) == Status::kSuccess);
  CHECK(m.empty());
  // A set bank whose mask is 0 is valid and names nobody.
  REQUIRE(c.parse(tlfs::kGenericSetSparse4k, 0x1, {0}, 64, &m) == Status::kSuccess);
  CHECK(m.empty());
}

TEST_CASE("VP set: VP indexes at or past the partition's VP count are ignored") {
  SetCall c;
  VpMask m;
  REQUIRE(c.parse(tlfs::kGenericSetSparse4k, 1, {~0ull}, 2, &m) == Status::kSuccess);
  CHECK(m.bits() == 0x3);
  REQUIRE(c.parse(tlfs::kGenericSetSparse4k, 1, {1ull << 63}, 63, &m) == Status::kSuccess);
  CHECK(m.empty());
}

TEST_CASE("VP set: the variable header must hold exactly one qword per set bank") {
  SetCall c;
  VpMask m;
  CHECK(c.parse(tlfs::kGenericSetSparse4k, 0x3, {1}, 8, &m) == Status::kInvalidHypercallInput);
  CHECK(c.parse(tlfs::kGenericSetSparse4k, 0x1, {1, 2}, 8, &m) == Status::kInvalidHypercallInput);
  CHECK(c.parse(tlfs::kGenericSetSparse4k, 0x1, {}, 8, &m) == Status::kInvalidHypercallInput);
  CHECK(c.parse(tlfs::kGenericSetSparse4k, ~0ull, {}, 8, &m, 63) == Status::kInvalidHypercallInput);
  // All 64 banks: 64 qwords, only bank 0 can matter.
  CHECK(c.parse(tlfs::kGenericSetSparse4k, ~0ull, {0x6}, 8, &m, 64) == Status::kSuccess);
  CHECK(m.bits() == 0x6);
}

TEST_CASE("VP set: format 1 is every VP; other formats are INVALID_PARAMETER") {
  SetCall c;
  VpMask m;
  REQUIRE(c.parse(tlfs::kGenericSetAll, 0, {}, 3, &m) == Status::kSuccess);
  CHECK(m.bits() == 0x7);
  REQUIRE(c.parse(tlfs::kGenericSetAll, 0, {}, 64, &m) == Status::kSuccess);
  CHECK(m.bits() == ~0ull);
  // The bank mask and the variable header still have to agree.
  CHECK(c.parse(tlfs::kGenericSetAll, 1, {}, 3, &m) == Status::kInvalidHypercallInput);
  for (uint64_t format : {2ull, 3ull, 1ull << 63}) {
    CHECK(c.parse(format, 1, {1}, 3, &m) == Status::kInvalidParameter);
  }
}

TEST_CASE("VP mask: first(n), membership, and the set bits visited in order") {
  STATIC_REQUIRE(VpMask::first(0).empty());
  STATIC_REQUIRE(VpMask::first(3).bits() == 0x7);
  STATIC_REQUIRE(VpMask::first(64).bits() == ~0ull);
  STATIC_REQUIRE(VpMask::first(200).bits() == ~0ull);
  VpMask m(0x8000000000000005ull);
  CHECK(m.has(VpIndex(0)));
  CHECK_FALSE(m.has(VpIndex(1)));
  CHECK(m.has(VpIndex(63)));
  CHECK_FALSE(m.has(VpIndex(64)));
  std::vector<uint32_t> seen;
  m.for_each([&](VpIndex v) { seen.push_back(v.value()); });
  CHECK(seen == std::vector<uint32_t>{0, 2, 63});
}
