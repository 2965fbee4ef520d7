// microhv's configuration file on the ESP (\EFI\microhv\microhv.cfg): which
// EFI image to start once the machine is virtualized, and with what load
// options. Lines are `key = value`; `#` starts a comment.
//
//   image   = \EFI\microhv\guest_suite.efi   # next stage; none: back to the boot manager
//   options = console=ttyS0 initrd=\initrd.img
//   testdev = on                              # QEMU hyperv-testdev port (later)
#pragma once

#include <stddef.h>

namespace microhv {

struct Config {
  static constexpr size_t kMaxPath = 256;
  static constexpr size_t kMaxOptions = 512;
  char image[kMaxPath] = {};
  char options[kMaxOptions] = {};
  bool testdev = false;
};

// Parses `text` (not NUL-terminated, `len` bytes) into `out`. On a malformed
// line returns false and writes a message naming the line into `error`.
bool parse_config(const char* text, size_t len, Config* out, char* error, size_t error_cap);

}  // namespace microhv
