// A VMCS in a map, for the portable VT-x code under test: every VMWRITE is
// recorded (and counted per field), every VMREAD answered from what was
// written.
#pragma once

#include <catch2/catch.hpp>
#include <map>

#include "vmx/vmcs_access.hpp"

namespace microhv::test {

class FakeVmcs final : public vmx::VmcsAccess {
 public:
  uint64_t read(vmx::Field f) override {
    ++reads;
    auto it = fields.find(f);
    return it == fields.end() ? 0 : it->second;
  }
  void write(vmx::Field f, uint64_t v) override {
    ++writes[f];
    fields[f] = v;
  }
  // The value written to `f`; fails the test when nothing was.
  uint64_t at(vmx::Field f) const {
    auto it = fields.find(f);
    if (it == fields.end())
      FAIL("VMCS field 0x" << std::hex << vmx::encoding(f) << " never written");
    return it->second;
  }

  std::map<vmx::Field, uint64_t> fields;
  std::map<vmx::Field, int> writes;
  int reads = 0;
};

}  // namespace microhv::test
