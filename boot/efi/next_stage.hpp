// The configuration file and the next boot stage: after microhv has
// virtualized the machine, the firmware (now a guest) starts the EFI image
// named in \EFI\microhv\microhv.cfg, with its load options. Without one,
// control goes back to the firmware's boot manager.
#pragma once

#include <efi.h>

#include "kernel/base/config.hpp"

namespace microhv::boot {

// Reads the configuration from the volume microhv was loaded from. A missing
// file is not an error (`out` stays empty); a malformed one is logged and
// ignored.
void read_config(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, Config* out);

// LoadImage + StartImage of config.image from microhv's own volume. Returns
// what the image returned (an OS loader does not return).
EFI_STATUS start_next_stage(EFI_HANDLE image, EFI_SYSTEM_TABLE* st, const Config& config);

}  // namespace microhv::boot
