// microhv's configuration file on the ESP (\EFI\microhv\microhv.cfg): which
// EFI image to start once the machine is virtualized, and with what load
// options. Lines are `key = value`; `#` starts a comment.
//
//   image   = \EFI\microhv\guest_suite.efi   # next stage; none: back to the boot manager
//   options = console=ttyS0 initrd=\initrd.img
//   testdev = on                              # QEMU hyperv-testdev port (later)
//   iommu   = required | if-present | off     # DMA isolation (iommu_policy.hpp)
//   vtd-selftest = on                         # test mode: see below
#pragma once

#include <stddef.h>

#include "kernel/base/iommu_policy.hpp"

namespace microhv {

struct Config {
  static constexpr size_t kMaxPath = 256;
  static constexpr size_t kMaxOptions = 512;
  char image[kMaxPath] = {};
  char options[kMaxOptions] = {};
  bool testdev = false;
  IommuPolicy iommu = kDefaultIommuPolicy;
  // A test mode (make test-vtd): microhv runs its take-over up to and
  // including DMA protection of its resident pool, then -- VT-x or not --
  // does not launch: it starts the next stage natively with the protection
  // on, and turns it off and frees the pool when that returns.
  bool vtd_selftest = false;
};

// Parses `text` (not NUL-terminated, `len` bytes) into `out`. On a malformed
// line returns false and writes a message naming the line into `error`.
bool parse_config(const char* text, size_t len, Config* out, char* error, size_t error_cap);

}  // namespace microhv
