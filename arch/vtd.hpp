// Intel VT-d (DMA remapping) facts: register offsets and bits, the in-memory
// translation structures, and the ACPI DMAR table layout. Facts only;
// portable.
//
// Section numbers follow the Intel Virtualization Technology for Directed I/O
// Architecture Specification: rev. 2.x puts the register descriptions in
// 10.4 (rev. 3.0 and later in 11.4, same layouts); structures are chapter 9
// (9.1 root entry, 9.3 context entry, 9.8 second-level paging entries, 9.9
// fault record) and the DMAR table chapter 8. Titles are given so that
// either numbering can be found.
#pragma once

#include <stdint.h>

namespace microhv::arch::vtd {

// ------------------------------------------------------------ registers (10.4)
// Offsets from a remapping unit's register base (DRHD Register Base Address).
inline constexpr uint32_t kVerReg = 0x00;     // 10.4.1 Version (32)
inline constexpr uint32_t kCapReg = 0x08;     // 10.4.2 Capability (64)
inline constexpr uint32_t kEcapReg = 0x10;    // 10.4.3 Extended Capability (64)
inline constexpr uint32_t kGcmdReg = 0x18;    // 10.4.4 Global Command (32)
inline constexpr uint32_t kGstsReg = 0x1C;    // 10.4.5 Global Status (32)
inline constexpr uint32_t kRtaddrReg = 0x20;  // 10.4.6 Root Table Address (64)
inline constexpr uint32_t kCcmdReg = 0x28;    // 10.4.7 Context Command (64)
inline constexpr uint32_t kFstsReg = 0x34;    // 10.4.9 Fault Status (32)
inline constexpr uint32_t kFectlReg = 0x38;   // 10.4.10 Fault Event Control (32)
inline constexpr uint32_t kPmenReg = 0x64;    // Protected Memory Enable (32)
inline constexpr uint32_t kIqhReg = 0x80;     // Invalidation Queue Head (64)
inline constexpr uint32_t kIqtReg = 0x88;     // Invalidation Queue Tail (64)
// The IOTLB registers sit at ECAP.IRO * 16: IVA_REG there, IOTLB_REG 8 bytes
// later (10.4.8.1); the fault recording registers at CAP.FRO * 16, 16 bytes
// each (10.4.14, Fault Recording Registers).
inline constexpr uint32_t kIotlbRegInGroup = 8;
inline constexpr uint32_t kFaultRecordBytes = 16;

// Capability register (10.4.2).
namespace cap {
inline constexpr uint64_t kNdMask = 7;  // number of domains: 2^(4 + 2 * ND)
inline constexpr uint64_t kAfl = 1ull << 3;
inline constexpr uint64_t kRwbf = 1ull << 4;  // write buffers must be flushed (6.8)
inline constexpr uint64_t kPlmr = 1ull << 5;
inline constexpr uint64_t kPhmr = 1ull << 6;
inline constexpr uint64_t kCm = 1ull << 7;  // caching mode: not-present entries may be cached
inline constexpr unsigned kSagawShift = 8;  // 12:8, bit n: (2 + n)-level tables, (30 + 9n)-bit
inline constexpr uint64_t kSagawMask = 0x1F;
inline constexpr unsigned kMgawShift = 16;  // 21:16, maximum guest address width - 1
inline constexpr uint64_t kMgawMask = 0x3F;
inline constexpr unsigned kFroShift = 24;  // 33:24, fault recording registers at FRO * 16
inline constexpr uint64_t kFroMask = 0x3FF;
inline constexpr unsigned kSllpsShift = 34;  // 37:34, bit 0: 2 MiB, bit 1: 1 GiB pages
inline constexpr uint64_t kSllpsMask = 0xF;
inline constexpr uint64_t kPsi = 1ull << 39;
inline constexpr unsigned kNfrShift = 40;  // 47:40, number of fault recording registers - 1
inline constexpr uint64_t kNfrMask = 0xFF;
inline constexpr uint64_t kDwd = 1ull << 54;  // IOTLB invalidation can drain writes
inline constexpr uint64_t kDrd = 1ull << 55;  // ... and reads
}  // namespace cap

// SAGAW bits (10.4.2): bit 1 = 39-bit AGAW with 3-level tables, bit 2 =
// 48-bit with 4 levels. The context entry's AW field uses the same number.
constexpr uint64_t sagaw_bit_for_levels(unsigned levels) {
  return 1ull << (levels - 2);
}
constexpr unsigned address_width_for_levels(unsigned levels) {
  return 30 + 9 * (levels - 2);
}

// Extended capability register (10.4.3).
namespace ecap {
inline constexpr uint64_t kC = 1ull << 0;   // page walks snoop the CPU caches
inline constexpr uint64_t kQi = 1ull << 1;  // queued invalidation supported
inline constexpr uint64_t kDt = 1ull << 2;
inline constexpr uint64_t kIr = 1ull << 3;  // interrupt remapping supported
inline constexpr uint64_t kPt = 1ull << 6;
inline constexpr uint64_t kSc = 1ull << 7;
inline constexpr unsigned kIroShift = 8;  // 17:8, IOTLB registers at IRO * 16
inline constexpr uint64_t kIroMask = 0x3FF;
}  // namespace ecap

// Global command and status (10.4.4, 10.4.5): each command bit has a status
// bit in the same position.
namespace gcmd {
inline constexpr uint32_t kTe = 1u << 31;     // translation enable / TES
inline constexpr uint32_t kSrtp = 1u << 30;   // set root table pointer / RTPS
inline constexpr uint32_t kSfl = 1u << 29;    // set fault log / FLS
inline constexpr uint32_t kEafl = 1u << 28;   // advanced fault logging / AFLS
inline constexpr uint32_t kWbf = 1u << 27;    // write buffer flush / WBFS (set while pending)
inline constexpr uint32_t kQie = 1u << 26;    // queued invalidation enable / QIES
inline constexpr uint32_t kIre = 1u << 25;    // interrupt remapping enable / IRES
inline constexpr uint32_t kSirtp = 1u << 24;  // set interrupt remap table pointer / IRTPS
inline constexpr uint32_t kCfi = 1u << 23;    // compatibility format interrupts / CFIS
// 10.4.4: to change one command, read GSTS, clear the one-shot bits (RTPS,
// FLS, WBFS, IRTPS), set or clear the one bit, and write the result to GCMD.
inline constexpr uint32_t kPersistentMask = 0x96FFFFFFu;
}  // namespace gcmd

// Context command (10.4.7).
namespace ccmd {
inline constexpr uint64_t kIcc = 1ull << 63;  // invalidate; hardware clears it when done
inline constexpr unsigned kCirgShift = 61;    // requested granularity, 1 = global
inline constexpr unsigned kCaigShift = 59;    // actual granularity, 0 = not performed
inline constexpr uint64_t kGranularityMask = 3;
inline constexpr uint64_t kGlobal = 1;
}  // namespace ccmd

// IOTLB invalidate register (10.4.8.1).
namespace iotlb {
inline constexpr uint64_t kIvt = 1ull << 63;  // invalidate; hardware clears it when done
inline constexpr unsigned kIirgShift = 60;    // requested granularity, 1 = global
inline constexpr unsigned kIaigShift = 57;    // actual granularity, 0 = not performed
inline constexpr uint64_t kGranularityMask = 3;
inline constexpr uint64_t kGlobal = 1;
inline constexpr uint64_t kDrainReads = 1ull << 49;   // only when CAP.DRD
inline constexpr uint64_t kDrainWrites = 1ull << 48;  // only when CAP.DWD
}  // namespace iotlb

// Fault status (10.4.9) and fault event control (10.4.10).
namespace fsts {
inline constexpr uint32_t kPfo = 1u << 0;  // primary fault overflow (RW1C)
inline constexpr uint32_t kPpf = 1u << 1;  // primary pending fault (RO: some FRCD has F set)
inline constexpr uint32_t kAfo = 1u << 2;
inline constexpr uint32_t kApf = 1u << 3;
inline constexpr uint32_t kIqe = 1u << 4;
inline constexpr uint32_t kIce = 1u << 5;
inline constexpr uint32_t kIte = 1u << 6;
inline constexpr uint32_t kWriteOneToClear = kPfo | kAfo | kApf | kIqe | kIce | kIte;
inline constexpr unsigned kFriShift = 8;  // 15:8, index of the first pending record
inline constexpr uint32_t kFriMask = 0xFF;
}  // namespace fsts
namespace fectl {
inline constexpr uint32_t kIm = 1u << 31;  // fault event interrupt masked
inline constexpr uint32_t kIp = 1u << 30;
}  // namespace fectl
namespace pmen {
inline constexpr uint32_t kEpm = 1u << 31;
inline constexpr uint32_t kPrs = 1u << 0;
}  // namespace pmen

// Fault recording register (10.4.14; the record format is 9.9): 128 bits,
// read as two quadwords. Low: fault information (page address) 63:12.
// High: source id 15:0, T2 28, PRIV 29, EXE 30, PP 31, fault reason 39:32,
// PASID 59:40, address type 61:60, T1 62, F 63 (write 1 to clear).
namespace frcd {
inline constexpr uint64_t kFaultInfoMask = ~0xFFFull;
inline constexpr uint64_t kSourceIdMask = 0xFFFF;
inline constexpr uint64_t kT2 = 1ull << 28;
inline constexpr uint64_t kPriv = 1ull << 29;
inline constexpr uint64_t kExe = 1ull << 30;
inline constexpr uint64_t kPp = 1ull << 31;
inline constexpr unsigned kReasonShift = 32;
inline constexpr uint64_t kReasonMask = 0xFF;
inline constexpr unsigned kPasidShift = 40;
inline constexpr uint64_t kPasidMask = 0xFFFFF;
inline constexpr uint64_t kT1 = 1ull << 62;  // with T2 = 0: 1 = read, 0 = write
inline constexpr uint64_t kF = 1ull << 63;
// F as bit 31 of the record's last doubleword, for a 32-bit clear.
inline constexpr uint32_t kHighDwordOffset = 12;
inline constexpr uint32_t kFInHighDword = 1u << 31;
}  // namespace frcd

// Fault reasons for DMA remapping (7.1.3, "Fault Conditions and Remapping
// Hardware Behavior for Various Requests"; legacy-mode reasons 1h-Dh).
namespace fault {
inline constexpr uint8_t kRootNotPresent = 0x1;
inline constexpr uint8_t kContextNotPresent = 0x2;
inline constexpr uint8_t kContextInvalid = 0x3;
inline constexpr uint8_t kBeyondAddressWidth = 0x4;
inline constexpr uint8_t kWriteNotAllowed = 0x5;  // second-level entry has W = 0
inline constexpr uint8_t kReadNotAllowed = 0x6;   // second-level entry has R = 0
inline constexpr uint8_t kPagingEntryAccess = 0x7;
inline constexpr uint8_t kRootTableAccess = 0x8;
inline constexpr uint8_t kContextTableAccess = 0x9;
inline constexpr uint8_t kRootReserved = 0xA;
inline constexpr uint8_t kContextReserved = 0xB;
inline constexpr uint8_t kPagingEntryReserved = 0xC;
inline constexpr uint8_t kTranslationTypeBlocked = 0xD;
}  // namespace fault

// ------------------------------------------------------------ structures (chapter 9)
inline constexpr unsigned kRootEntries = 256;     // one per bus, 16 bytes each
inline constexpr unsigned kContextEntries = 256;  // one per device:function
// 9.1 root entry (legacy mode): P bit 0, context-table pointer 63:12; the
// upper quadword is reserved (0).
inline constexpr uint64_t kRootPresent = 1ull << 0;
// 9.3 context entry: low quadword P 0, FPD 1, TT 3:2 (00 = untranslated
// requests use the second-level tables), second-level table pointer 63:12;
// high quadword AW 2:0 (1 = 3-level, 2 = 4-level), domain id 23:8.
inline constexpr uint64_t kContextPresent = 1ull << 0;
inline constexpr uint64_t kContextFaultDisable = 1ull << 1;
inline constexpr unsigned kContextDidShift = 8;
constexpr uint64_t context_aw_for_levels(unsigned levels) {
  return levels - 2;
}
inline constexpr uint64_t kTableAddrMask = 0x000FFFFFFFFFF000ull;
// 9.8 second-level paging entry: R 0, W 1, X 2 (execute requests only),
// PS 7 (a 2 MiB or 1 GiB leaf in a PDE or PDPE), SNP 11 (reserved without
// ECAP.SC), address 51:12. An entry with R = W = 0 is not present.
namespace sl {
inline constexpr uint64_t kRead = 1ull << 0;
inline constexpr uint64_t kWrite = 1ull << 1;
inline constexpr uint64_t kLarge = 1ull << 7;
}  // namespace sl

// ------------------------------------------------------------ the ACPI DMAR table (chapter 8)
// 8.1: the standard 36-byte header, Host Address Width (N: addresses have
// N + 1 bits) at 36, Flags at 37, 10 reserved bytes, then the remapping
// structures from offset 48, each starting with Type (2 bytes) and Length (2).
inline constexpr uint32_t kDmarHostAddressWidth = 36;
inline constexpr uint32_t kDmarFlags = 37;
inline constexpr uint32_t kDmarStructures = 48;
inline constexpr uint8_t kDmarFlagIntrRemap = 1u << 0;
inline constexpr uint8_t kDmarFlagX2apicOptOut = 1u << 1;
inline constexpr uint8_t kDmarFlagDmaCtrlOptIn = 1u << 2;

// 8.2 remapping structure types and their fixed parts.
inline constexpr uint16_t kDrhd = 0;  // 8.3: flags 4, size 5, segment 6, base 8, scopes 16
inline constexpr uint16_t kRmrr = 1;  // 8.4: segment 6, base 8, limit 16 (inclusive), scopes 24
inline constexpr uint16_t kAtsr = 2;  // 8.5
inline constexpr uint16_t kRhsa = 3;  // 8.6
inline constexpr uint16_t kAndd = 4;  // 8.7
inline constexpr uint32_t kDrhdFixedBytes = 16;
inline constexpr uint32_t kRmrrFixedBytes = 24;
inline constexpr uint8_t kDrhdIncludePciAll = 1u << 0;
inline constexpr uint8_t kDrhdSizeMask = 0x0F;  // register set = 2^size pages (rev. 2.2+)

// 8.3.1 device scope: type 0, length 1, flags 2, reserved 3, enumeration id
// 4, start bus 5, then (device, function) pairs from 6.
inline constexpr uint32_t kScopeFixedBytes = 6;
inline constexpr uint8_t kScopeEndpoint = 1;
inline constexpr uint8_t kScopeBridge = 2;
inline constexpr uint8_t kScopeIoapic = 3;
inline constexpr uint8_t kScopeHpet = 4;
inline constexpr uint8_t kScopeAcpiDevice = 5;

}  // namespace microhv::arch::vtd
