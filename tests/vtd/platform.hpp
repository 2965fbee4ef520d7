// What the VT-d integration test needs from the machine besides microhv's
// pieces it shares (PCI configuration space, boot/efi/pci_config.hpp; ACPI
// lookup, boot/efi/firmware_acpi.hpp): QEMU's `edu` device and memory from
// the firmware. Test-only, target-only.
#pragma once

#include <efi.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/efi/pci_config.hpp"

namespace vtdtest {

// QEMU's educational device (QEMU docs/specs/edu.rst): a 4 KiB buffer at
// device address 0x40000 and a DMA engine programmed through BAR 0. Its DMA
// addresses are masked to 28 bits (edu's default dma_mask).
class Edu {
 public:
  static constexpr uint16_t kVendor = 0x1234, kDevice = 0x11e8;
  static constexpr uint64_t kBuffer = 0x40000;
  static constexpr uint32_t kBufferBytes = 4096;
  static constexpr uint64_t kReach = 1ull << 28;

  explicit Edu(EFI_BOOT_SERVICES* bs) : bs_(bs), pci_(bs) {}
  // Finds the device, enables memory decoding and bus mastering. False with
  // a reason in `why` when it is missing or does not answer.
  bool init(char* why, size_t cap);
  const microhv::boot::PciAddress& function() const { return fn_; }
  uint64_t mmio() const { return mmio_; }
  uint32_t id() const;

  // One transfer, waiting (at most 3 s) for the engine to finish; edu runs
  // it 100 ms of virtual time after the command. False on timeout.
  bool ram_to_device(uint64_t ram, uint32_t count);
  bool device_to_ram(uint64_t ram, uint32_t count);

 private:
  bool run(uint64_t src, uint64_t dst, uint32_t count, bool to_ram);
  EFI_BOOT_SERVICES* bs_;
  microhv::boot::PortPciConfig pci_;
  microhv::boot::PciAddress fn_{};
  uint64_t mmio_ = 0;
};

// Zeroed pages from the firmware below `max_address` (0 on failure).
uint64_t allocate_pages(EFI_BOOT_SERVICES* bs, uint64_t pages, uint64_t max_address);

}  // namespace vtdtest
