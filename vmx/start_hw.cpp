// Placeholder until the VT-x back end lands: reports VT-x and declines.
#include "kernel/log.hpp"
#include "vmx/vmx.hpp"

namespace microhv::vmx {

EFI_STATUS start(EFI_HANDLE, EFI_SYSTEM_TABLE*) {
  log::info("VT-x present; virtualization not built yet\n");
  return EFI_UNSUPPORTED;
}

}  // namespace microhv::vmx
