// The ACPI DMAR table (VT-d spec chapter 8): which DMA remapping units exist
// (DRHD), which devices each one covers (device scopes, INCLUDE_PCI_ALL) and
// which memory firmware-owned devices keep using (RMRR). Other structures
// (ATSR, RHSA, ANDD, SATC and future types) are skipped by their length.
//
// The table comes from firmware, so every length and bound is checked before
// a byte is read; a malformed table is refused as a whole with one message
// saying what is wrong and where. Limits that are microhv's own (how many
// units it keeps) are refused with a message that says so. Portable.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kernel/base/types.hpp"

namespace microhv::vtd {

inline constexpr uint32_t kMaxUnits = 64;
inline constexpr uint32_t kMaxReservedRegions = 64;
inline constexpr uint32_t kMaxScopes = 512;
inline constexpr uint32_t kMaxScopePath = 4;  // hops kept per scope (the rest are counted)

// 8.3.1: a device, bridge, I/O APIC, HPET or ACPI device: start_bus plus a
// path of (device, function) hops through PCI-PCI bridges.
struct DeviceScope {
  uint8_t type;            // arch::vtd::kScope*
  uint8_t enumeration_id;  // I/O APIC id, HPET number, ACPI device number
  uint8_t start_bus;
  uint8_t hops;                    // path length; only the first kMaxScopePath are kept
  uint8_t path[kMaxScopePath][2];  // (device, function)
  uint16_t source_id() const;      // bus:dev.fn of a one-hop scope, else 0xFFFF
};

// 8.3: one remapping unit.
struct RemapUnit {
  Hpa register_base;
  uint32_t register_pages;  // 2^Size pages (Size 0 in tables older than rev. 2.2: one page)
  uint16_t segment;
  bool include_pci_all;  // covers every PCI device of the segment not listed by another unit
  uint32_t first_scope, scope_count;  // into DmarInfo::scopes
};

// 8.4: memory a device keeps using across the hand-off (USB legacy, graphics
// stolen memory): it must stay identity-mapped for the devices in scope.
struct ReservedRegion {
  uint64_t base;
  uint64_t limit;  // last byte; [base, limit] rounded out to whole pages
  uint16_t segment;
  uint32_t first_scope, scope_count;
};

struct DmarInfo {
  uint8_t address_bits;  // host address width + 1 (DMA addresses have this many bits)
  uint8_t flags;         // arch::vtd::kDmarFlag*
  uint32_t unit_count;
  RemapUnit units[kMaxUnits];
  uint32_t region_count;
  ReservedRegion regions[kMaxReservedRegions];
  uint32_t scope_count;
  DeviceScope scopes[kMaxScopes];
  uint32_t skipped_structures;  // ATSR, RHSA, ANDD, ... (not needed to isolate DMA)
  uint32_t rounded_regions;     // RMRRs whose bounds were not page-aligned (rounded out)
};

// Parses the DMAR table at `table`, of which `available` bytes may be read
// (the table's own Length must fit in them). On success fills `out` and
// returns true; otherwise writes a message into `error` ("DMAR: ..." without
// a trailing newline) and returns false, leaving `out` empty.
bool parse_dmar(const uint8_t* table, size_t available, DmarInfo* out, char* error,
                size_t error_cap);

// True when every PCI segment that has a unit also has an INCLUDE_PCI_ALL
// unit, i.e. no PCI device of those segments bypasses remapping. Devices of a
// segment without any unit are not covered either way.
bool covers_all_pci_devices(const DmarInfo& info);

// Hides the table from an OS: the signature becomes "XMAR" and the checksum
// is fixed, so the table stays valid ACPI that no driver looks for (Xen does
// the same for its dom0). `available`: bytes that may be touched; the
// table's own Length must fit. False (nothing changed) when it is not a DMAR
// table.
bool hide_dmar(uint8_t* table, size_t available);

// Undoes hide_dmar ("XMAR" back to "DMAR", checksum fixed) when microhv
// gives the machine back without launching (vtd-selftest). False, nothing
// changed, when it is not a hidden DMAR table.
bool reveal_dmar(uint8_t* table, size_t available);

}  // namespace microhv::vtd
