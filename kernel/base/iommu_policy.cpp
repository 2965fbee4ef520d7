#include "kernel/base/iommu_policy.hpp"

#include "kernel/base/text.hpp"

namespace microhv {

bool parse_iommu_policy(const char* text, size_t len, IommuPolicy* out) {
  if (text == nullptr) return false;
  if (text_equals(text, len, "required")) {
    *out = IommuPolicy::kRequired;
  } else if (text_equals(text, len, "if-present")) {
    *out = IommuPolicy::kIfPresent;
  } else if (text_equals(text, len, "off")) {
    *out = IommuPolicy::kOff;
  } else {
    return false;
  }
  return true;
}

const char* iommu_policy_name(IommuPolicy policy) {
  switch (policy) {
    case IommuPolicy::kRequired:
      return "required";
    case IommuPolicy::kOff:
      return "off";
    case IommuPolicy::kIfPresent:
      break;
  }
  return "if-present";
}

}  // namespace microhv
