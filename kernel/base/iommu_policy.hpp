// `iommu = required | if-present | off` in microhv.cfg: what microhv does
// about DMA isolation when it takes over the machine (the VT-d back end,
// vmx/vtd/protect.hpp, applies it). Here, below the config parser, so that
// kernel/base/config can read the key without reaching up into vmx/.
//   required    take over only with every remapping unit translating and
//               every PCI device behind one; otherwise refuse and return to
//               the firmware;
//   if-present  (default) use what there is, and say in one line what is
//               left unprotected (on machines without VT-d: everything);
//   off         leave the remapping hardware alone.
// Portable.
#pragma once

#include <stddef.h>

namespace microhv {

enum class IommuPolicy : unsigned char { kRequired, kIfPresent, kOff };

inline constexpr IommuPolicy kDefaultIommuPolicy = IommuPolicy::kIfPresent;

// Exactly one of the three words (no surrounding space: the config parser
// trims). False for anything else, `out` unchanged.
bool parse_iommu_policy(const char* text, size_t len, IommuPolicy* out);

const char* iommu_policy_name(IommuPolicy policy);

}  // namespace microhv
