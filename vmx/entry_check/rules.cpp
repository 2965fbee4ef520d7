#include "vmx/entry_check/rules.hpp"

namespace microhv::vmx {
namespace {

constexpr RuleInfo kRules[] = {
#define MICROHV_RULE_INFO(name, section, text) {section, text},
    MICROHV_VM_ENTRY_RULES(MICROHV_RULE_INFO)
#undef MICROHV_RULE_INFO
};
static_assert(sizeof(kRules) / sizeof(kRules[0]) == static_cast<unsigned>(Rule::kCount));

constexpr const char* kNames[] = {
#define MICROHV_RULE_NAME(name, section, text) #name,
    MICROHV_VM_ENTRY_RULES(MICROHV_RULE_NAME)
#undef MICROHV_RULE_NAME
};

}  // namespace

const RuleInfo& rule_info(Rule r) {
  const auto i = static_cast<unsigned>(r);
  return kRules[i < static_cast<unsigned>(Rule::kCount) ? i : 0];
}

const char* rule_name(Rule r) {
  const auto i = static_cast<unsigned>(r);
  return i < static_cast<unsigned>(Rule::kCount) ? kNames[i] + 1 : "?";
}

}  // namespace microhv::vmx
