#include "vmx/mtrr.hpp"

#include "arch/msr.hpp"

namespace microhv::vmx {
namespace {

namespace msr = arch::msr;
namespace mtrr = arch::msr::mtrr;

// Index into MtrrState::fixed, or -1.
int fixed_index(uint32_t m) {
  if (m == msr::kMtrrFix64k00000) return 0;
  if (m == msr::kMtrrFix16k80000) return 1;
  if (m == msr::kMtrrFix16kA0000) return 2;
  if (m >= msr::kMtrrFix4kC0000 && m <= msr::kMtrrFix4kC0000 + 7) {
    return 3 + static_cast<int>(m - msr::kMtrrFix4kC0000);
  }
  return -1;
}

bool type_ok(const MtrrState& m, uint64_t type) {
  if (type == 1 && (m.cap & mtrr::kCapWc) == 0) return false;
  return mtrr::valid_type(type);
}

uint64_t above_maxphyaddr(const CpuFacts& f) {
  return f.phys_addr_bits >= 64 ? 0 : ~0ull << f.phys_addr_bits;
}

uint32_t variable_count(const MtrrState& m) {
  return static_cast<uint32_t>(m.cap & mtrr::kCapVcntMask);
}

// Index into MtrrState::var for PHYSBASEn/PHYSMASKn with n < VCNT, or -1.
int variable_index(const MtrrState& m, uint32_t msr_index) {
  if (msr_index < msr::kMtrrPhysBase0) return -1;
  const uint32_t i = msr_index - msr::kMtrrPhysBase0;
  if (i / 2 >= variable_count(m)) return -1;
  return static_cast<int>(i);
}

}  // namespace

bool mtrr_read(const MtrrState& m, const CpuFacts& f, uint32_t msr_index, uint64_t* value) {
  if (!f.mtrr) return false;
  if (msr_index == msr::kMtrrCap) {
    *value = m.cap;
    return true;
  }
  if (msr_index == msr::kMtrrDefType) {
    *value = m.def_type;
    return true;
  }
  const int fi = fixed_index(msr_index);
  if (fi >= 0) {
    if ((m.cap & mtrr::kCapFixed) == 0) return false;
    *value = m.fixed[fi];
    return true;
  }
  const int vi = variable_index(m, msr_index);
  if (vi < 0) return false;
  *value = m.var[vi];
  return true;
}

bool mtrr_write(MtrrState& m, const CpuFacts& f, uint32_t msr_index, uint64_t v) {
  if (!f.mtrr || msr_index == msr::kMtrrCap) return false;
  if (msr_index == msr::kMtrrDefType) {
    uint64_t reserved = ~(mtrr::kDefTypeMask | mtrr::kDefFixedEnable | mtrr::kDefEnable);
    if ((m.cap & mtrr::kCapFixed) == 0) reserved |= mtrr::kDefFixedEnable;
    if ((v & reserved) != 0 || !type_ok(m, v & mtrr::kDefTypeMask)) return false;
    m.def_type = v;
    return true;
  }
  const int fi = fixed_index(msr_index);
  if (fi >= 0) {
    if ((m.cap & mtrr::kCapFixed) == 0) return false;
    for (unsigned byte = 0; byte < 8; ++byte) {
      if (!type_ok(m, (v >> (8 * byte)) & 0xFF)) return false;
    }
    m.fixed[fi] = v;
    return true;
  }
  const int vi = variable_index(m, msr_index);
  if (vi < 0) return false;
  const bool is_mask = (vi & 1) != 0;
  // PHYSBASE: type in 7:0, 11:8 reserved; PHYSMASK: valid in 11, 10:0 reserved.
  const uint64_t reserved = above_maxphyaddr(f) | (is_mask ? 0x7FFull : 0xF00ull);
  if ((v & reserved) != 0) return false;
  if (!is_mask && !type_ok(m, v & 0xFF)) return false;
  m.var[vi] = v;
  return true;
}

void capture_mtrrs(CpuServices& cpu, CpuFacts& f, MtrrState& m) {
  m = MtrrState{};
  uint64_t cap = 0;
  if (!f.mtrr || !cpu.rdmsr(msr::kMtrrCap, &cap)) {
    f.mtrr = false;
    return;
  }
  uint64_t vcnt = cap & mtrr::kCapVcntMask;
  if (vcnt > kMaxVariableMtrrs) vcnt = kMaxVariableMtrrs;
  m.cap = (cap & ~(mtrr::kCapSmrr | mtrr::kCapVcntMask)) | vcnt;
  uint64_t v = 0;
  if (cpu.rdmsr(msr::kMtrrDefType, &v)) m.def_type = v;
  static constexpr uint32_t kFixed[mtrr::kFixedCount] = {
      msr::kMtrrFix64k00000,    msr::kMtrrFix16k80000,    msr::kMtrrFix16kA0000,
      msr::kMtrrFix4kC0000,     msr::kMtrrFix4kC0000 + 1, msr::kMtrrFix4kC0000 + 2,
      msr::kMtrrFix4kC0000 + 3, msr::kMtrrFix4kC0000 + 4, msr::kMtrrFix4kC0000 + 5,
      msr::kMtrrFix4kC0000 + 6, msr::kMtrrFix4kC0000 + 7};
  if ((cap & mtrr::kCapFixed) != 0) {
    for (uint32_t i = 0; i < mtrr::kFixedCount; ++i) {
      if (cpu.rdmsr(kFixed[i], &v)) m.fixed[i] = v;
    }
  }
  for (uint32_t i = 0; i < 2 * vcnt; ++i) {
    if (cpu.rdmsr(msr::kMtrrPhysBase0 + i, &v)) m.var[i] = v;
  }
}

}  // namespace microhv::vmx
