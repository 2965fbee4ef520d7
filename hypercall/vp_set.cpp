#include "hypercall/vp_set.hpp"

namespace microhv {

using tlfs::Status;

Status parse_vp_set(const tlfs::VpSetHeader& header, const CallInput& in, uint32_t vp_count,
                    VpMask* out) {
  const uint64_t banks = header.valid_bank_mask;
  if (static_cast<uint32_t>(__builtin_popcountll(banks)) != in.var_qwords()) {
    return Status::kInvalidHypercallInput;
  }
  const VpMask partition = VpMask::first(vp_count);
  if (header.format == tlfs::kGenericSetAll) {
    *out = partition;
    return Status::kSuccess;
  }
  if (header.format != tlfs::kGenericSetSparse4k) return Status::kInvalidParameter;
  // Bank n's mask is the variable header qword whose index is the number of
  // set bits below bit n. Only bank 0 (VPs 0-63) can name a VP of a
  // partition (kMaxVps <= VpMask::kCapacity = 64): the other banks are
  // counted above, never read.
  static_assert(VpMask::kCapacity == tlfs::kVpsPerBank);
  uint64_t bank0 = 0;
  if ((banks & 1) != 0 && !in.var_qword(0, &bank0)) return Status::kInvalidAlignment;
  *out = VpMask(bank0) & partition;
  return Status::kSuccess;
}

}  // namespace microhv
