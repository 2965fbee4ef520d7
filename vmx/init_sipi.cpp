#include "vmx/init_sipi.hpp"

#include "arch/vmx/vmcs.hpp"

namespace microhv::vmx {

ResetState init_state(uint64_t old_cr0, uint32_t signature, bool bsp) {
  ResetState s{};
  s.cr0 = kCr0AfterInit | (old_cr0 & kCr0CdNw);
  s.cr3 = 0;
  s.cr4 = 0;
  s.efer = 0;
  s.rflags = 0x2;
  s.rip = 0xFFF0;
  s.rsp = 0;
  s.rdx = signature;
  s.dr7 = kDr7AfterInit;
  // Present, read/write (code: execute/read), accessed.
  s.cs = RealModeSegment{0xF000, 0xFFFF0000, 0xFFFF, 0x9B};
  s.data = RealModeSegment{0, 0, 0xFFFF, 0x93};
  s.ldtr = RealModeSegment{0, 0, 0xFFFF, 0x82};
  // VM entry wants a busy TSS in TR (type 11); nothing uses it in real mode.
  s.tr = RealModeSegment{0, 0, 0xFFFF, 0x8B};
  s.gdtr_base = 0;
  s.gdtr_limit = 0xFFFF;
  s.idtr_base = 0;
  s.idtr_limit = 0xFFFF;
  s.activity = bsp ? activity::kActive : activity::kWaitForSipi;
  return s;
}

}  // namespace microhv::vmx
