#include "vmx/hw/vmcs.hpp"

#include "arch/vmx/vmcs_names.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vmx::hw {
namespace {

uint64_t read_instruction_error() {
  uint64_t e = 0;
  if (vmread(Field::kVmInstructionError, &e) != VmxStatus::kOk) return ~0ull;
  return e;
}

}  // namespace

void report_vmx_failure(const char* what, VmxStatus s, uint32_t field) {
  if (s == VmxStatus::kFailInvalid) {
    log::error("%s failed: VMfailInvalid (no current VMCS)\n", what);
    return;
  }
  const uint64_t e = read_instruction_error();
  if (field != ~0u) {
    log::error("%s of field 0x%x failed: VMfailValid, VM-instruction error %llu (%s)\n", what,
               field, static_cast<unsigned long long>(e),
               vm_instruction_error_name(static_cast<uint32_t>(e)));
  } else {
    log::error("%s failed: VMfailValid, VM-instruction error %llu (%s)\n", what,
               static_cast<unsigned long long>(e),
               vm_instruction_error_name(static_cast<uint32_t>(e)));
  }
}

bool check(VmxStatus s, const char* what) {
  if (s == VmxStatus::kOk) return true;
  report_vmx_failure(what, s);
  return false;
}

bool HwVmcs::failed(const char* what, VmxStatus s, Field f) {
  ++failures_;
  report_vmx_failure(what, s, encoding(f));
  return false;
}

void dump_vmcs() {
  log::info("VMCS dump:\n");
  for (uint32_t i = 0; i < kDumpFieldCount; ++i) {
    uint64_t v = 0;
    if (vmread(kDumpFields[i].field, &v) == VmxStatus::kOk) {
      log::info("  %s (0x%04x) = 0x%llx\n", kDumpFields[i].name, encoding(kDumpFields[i].field),
                static_cast<unsigned long long>(v));
    } else {
      log::info("  %s (0x%04x) = <unsupported>\n", kDumpFields[i].name,
                encoding(kDumpFields[i].field));
    }
  }
}

}  // namespace microhv::vmx::hw
