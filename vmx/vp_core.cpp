#include "vmx/vp_core.hpp"

#include "hypercall/cpuid.hpp"
#include "hypercall/hypercall.hpp"
#include "hypercall/msr.hpp"
#include "kernel/partition.hpp"

namespace microhv::vmx {

bool VpCore::cpuid(uint32_t leaf, CpuidRegs* out) {
  return hyperv_cpuid(vp_->partition(), leaf, out);
}

MsrResult VpCore::read_msr(uint32_t msr, uint64_t* value) {
  return read_synthetic_msr(*vp_, msr, value);
}

MsrResult VpCore::write_msr(uint32_t msr, uint64_t value) {
  return write_synthetic_msr(*vp_, msr, value);
}

HypercallOutcome VpCore::hypercall(const HypercallRegs& regs) {
  return handle_hypercall(*vp_, regs);
}

void VpCore::testdev_write(uint32_t value) {
  if (testdev_ != nullptr) testdev_->write_from(vp_->index(), value);
}

}  // namespace microhv::vmx
