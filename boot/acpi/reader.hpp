// Reading the firmware's ACPI tables: is there an RSDP, which tables does
// it list, does any of them already declare a VMBus device.
#pragma once

#include "boot/acpi/encoding.hpp"

namespace microhv::acpi {

// ------------------------------------------------------------ reading tables

// Physical address to pointer (identity in microhv's boot environment).
inline const uint8_t* phys_to_ptr(uint64_t addr) {
  return reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(addr));
}

// A structurally valid RSDP: signature, checksum, and for revision >= 2 the
// extended checksum over its length.
bool rsdp_valid(const uint8_t* rsdp);

// Addresses of the tables the RSDP's XSDT lists (its RSDT when it has no
// XSDT). Returns how many there are (may exceed `cap`; only `cap` are stored),
// 0 when the root table is missing or malformed.
size_t root_entries(const uint8_t* rsdp, uint64_t* out, size_t cap);

// The first table the root table lists with this 4-character signature
// and a plausible Length (at least a header, at most 16 MiB), or nullptr.
// `length` (may be nullptr) receives its Length.
const uint8_t* find_table(const uint8_t* rsdp, const char* signature, uint32_t* length);

// The DSDT of the FADT the root table lists (0 when none).
uint64_t dsdt_address(const uint8_t* rsdp);

// True when `aml` contains Name(_HID, "<hid>") (how Hyper-V, QEMU and microhv
// declare a VMBus device).
bool aml_declares_hid(const uint8_t* aml, size_t len, const char* hid);

// True when the DSDT or any SSDT under `rsdp` declares a device with this _HID.
bool tables_declare_hid(const uint8_t* rsdp, const char* hid);

}  // namespace microhv::acpi
