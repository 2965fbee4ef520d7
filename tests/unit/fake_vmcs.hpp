// A VMCS in a map, for the portable VT-x code under test: every VMWRITE is
// recorded (and counted per field), every VMREAD answered from what was
// written. A VMREAD of a field nobody wrote fails the test: a real VMCS has
// no "0 by default" a handler may rely on (after VMCLEAR its contents are
// undefined), so a test must set up every field the code reads. Fields in
// `failing` make VMREAD/VMWRITE fail, as a field the CPU does not support
// would.
#pragma once

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "vmx/vmcs_access.hpp"

namespace microhv::test {

class FakeVmcs final : public vmx::VmcsAccess {
 public:
  bool read(vmx::Field f, uint64_t* value) override {
    ++reads;
    ++reads_of[f];
    if (failing.count(f) != 0) return false;
    auto it = fields.find(f);
    if (it == fields.end()) {
      FAIL("VMREAD of VMCS field 0x" << std::hex << vmx::encoding(f) << " that was never written");
    }
    *value = it->second;
    return true;
  }
  bool write(vmx::Field f, uint64_t v) override {
    if (failing.count(f) != 0) return false;
    ++writes[f];
    fields[f] = v;
    return true;
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
  std::map<vmx::Field, int> reads_of;  // VMREADs per field
  std::set<vmx::Field> failing;
  int reads = 0;
};

}  // namespace microhv::test
