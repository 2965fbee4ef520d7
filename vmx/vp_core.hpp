// The TLFS core as one VP's exit handlers reach it (HvCore): each call goes
// straight to the core's entry point for this VP -- hyperv_cpuid, the
// synthetic-MSR front, handle_hypercall, the test device. Portable: nothing
// in it touches hardware, and nothing passes back through the back end (the
// HYPERCALL MSR moves the hypercall overlay itself, through the partition's
// GuestPhysicalOverlays).
#pragma once

#include "synic/services/testdev.hpp"
#include "vmx/exits.hpp"

namespace microhv::vmx {

class VpCore final : public HvCore {
 public:
  // Set once, when the CPU becomes a VP; `testdev` may be null (testdev = off).
  void attach(Vp& vp, TestDevice* testdev) {
    vp_ = &vp;
    testdev_ = testdev;
  }
  Vp* vp() const { return vp_; }

  bool cpuid(uint32_t leaf, CpuidRegs* out) override;
  MsrResult read_msr(uint32_t msr, uint64_t* value) override;
  MsrResult write_msr(uint32_t msr, uint64_t value) override;
  HypercallOutcome hypercall(const HypercallRegs& regs) override;
  void testdev_write(uint32_t value) override;

 private:
  Vp* vp_ = nullptr;
  TestDevice* testdev_ = nullptr;
};

}  // namespace microhv::vmx
