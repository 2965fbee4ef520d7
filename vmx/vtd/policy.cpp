#include "vmx/vtd/policy.hpp"

namespace microhv::vtd {
namespace {

bool equals(const char* text, size_t len, const char* word) {
  size_t i = 0;
  for (; word[i] != '\0'; ++i) {
    if (i >= len || text[i] != word[i]) return false;
  }
  return i == len;
}

}  // namespace

bool parse_iommu_policy(const char* text, size_t len, IommuPolicy* out) {
  if (text == nullptr) return false;
  if (equals(text, len, "required")) {
    *out = IommuPolicy::kRequired;
  } else if (equals(text, len, "if-present")) {
    *out = IommuPolicy::kIfPresent;
  } else if (equals(text, len, "off")) {
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

}  // namespace microhv::vtd
