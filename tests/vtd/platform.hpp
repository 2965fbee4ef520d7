// What the VT-d integration test needs from the machine besides microhv's
// VT-d code and ACPI lookup (boot/efi/firmware_acpi.hpp): PCI configuration
// space (mechanism #1, ports 0xCF8/0xCFC), QEMU's `edu` device and memory
// from the firmware. Test-only, target-only.
#pragma once

#include <efi.h>
#include <stddef.h>
#include <stdint.h>

#include "vmx/vtd/scope.hpp"

namespace vtdtest {

struct PciFunction {
  uint8_t bus, dev, fn;
  uint16_t source_id() const { return static_cast<uint16_t>(bus << 8 | dev << 3 | fn); }
};

// The first function with this vendor and device id on buses 0-255.
bool find_pci_function(uint16_t vendor, uint16_t device, PciFunction* out);
// Every function on buses 0-255 of segment 0, with bridges' bus ranges.
uint32_t scan_pci(microhv::vtd::PciFunctionInfo* out, uint32_t cap);
uint32_t pci_read32(const PciFunction& f, uint8_t reg);
void pci_write32(const PciFunction& f, uint8_t reg, uint32_t value);

// QEMU's educational device (QEMU docs/specs/edu.rst): a 4 KiB buffer at
// device address 0x40000 and a DMA engine programmed through BAR 0.
class Edu {
 public:
  static constexpr uint16_t kVendor = 0x1234, kDevice = 0x11e8;
  static constexpr uint64_t kBuffer = 0x40000;
  static constexpr uint32_t kBufferBytes = 4096;

  // Finds the device, enables memory decoding and bus mastering. False with
  // a reason in `why` when it is missing or does not answer.
  bool init(char* why, size_t cap);
  const PciFunction& function() const { return fn_; }
  uint64_t mmio() const { return mmio_; }
  uint32_t id() const;

  // One transfer, waiting (at most 3 s) for the engine to finish; edu runs
  // it 100 ms of virtual time after the command. False on timeout.
  bool ram_to_device(uint64_t ram, uint32_t count);
  bool device_to_ram(uint64_t ram, uint32_t count);

 private:
  bool run(uint64_t src, uint64_t dst, uint32_t count, bool to_ram);
  PciFunction fn_{};
  uint64_t mmio_ = 0;
};

// Zeroed pages from the firmware below `max_address` (0 on failure).
uint64_t allocate_pages(uint64_t pages, uint64_t max_address);

// What microhv's EPT would identity-map: the top of the UEFI memory map
// rounded up to 1 GiB, at least 4 GiB (vmx::identity_limit).
uint64_t identity_limit_from_memory_map();

void stall_us(uint32_t us);
void set_system_table(EFI_SYSTEM_TABLE* st);

}  // namespace vtdtest
