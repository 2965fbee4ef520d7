// Host stand-ins for VT-d hardware: a remapping unit's register file that
// behaves as the VT-d specification describes (GSTS follows GCMD, the
// invalidation busy bits clear after a few polls, fault records with F
// write-1-to-clear), memory for the tables, and a walker that translates a
// DMA request through root, context and second-level entries the way the
// hardware does (9.1, 9.3, 9.8). Every register write is logged so tests
// can assert the order of the enable sequence.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"
#include "tests/unit/fake_phys.hpp"
#include "vmx/page_tables.hpp"
#include "vmx/vtd/scope.hpp"
#include "vmx/vtd/unit.hpp"

namespace microhv::vtd::test {

namespace hw = arch::vtd;

struct RegWrite {
  uint32_t offset;
  uint64_t value;
  unsigned width;
  uint32_t changed = 0;  // GCMD: the bits that differ from GSTS minus its one-shot bits
};

class FakeUnit final : public VtdRegisters {
 public:
  FakeUnit(uint64_t cap, uint64_t ecap, uint32_t version = 0x10)
      : ver(version), cap(cap), ecap(ecap) {
    frcd.resize(((cap >> hw::cap::kNfrShift) & hw::cap::kNfrMask) + 1);
  }

  uint32_t iotlb_reg() const {
    return static_cast<uint32_t>(((ecap >> hw::ecap::kIroShift) & hw::ecap::kIroMask) * 16 + 8);
  }
  uint32_t fault_reg() const {
    return static_cast<uint32_t>(((cap >> hw::cap::kFroShift) & hw::cap::kFroMask) * 16);
  }

  // Register file ------------------------------------------------------
  uint32_t read32(uint32_t off) override {
    ++reads;
    switch (off) {
      case hw::kVerReg:
        return ver;
      case hw::kGstsReg:
        tick();
        return gsts;
      case hw::kFstsReg:
        return fsts_value();
      case hw::kFectlReg:
        return fectl;
      case hw::kPmenReg:
        return pmen;
      default:
        return static_cast<uint32_t>(read64(off & ~7u) >> (off & 4 ? 32 : 0));
    }
  }

  uint64_t read64(uint32_t off) override {
    ++reads;
    if (off == hw::kCapReg) return cap;
    if (off == hw::kEcapReg) return ecap;
    if (off == hw::kRtaddrReg) return rtaddr;
    if (off == hw::kCcmdReg) {
      if (ccmd_busy > 0 && --ccmd_busy == 0) complete_ccmd();
      return ccmd;
    }
    if (off == iotlb_reg()) {
      if (iotlb_busy > 0 && --iotlb_busy == 0) complete_iotlb();
      return iotlb;
    }
    if (off == hw::kIqhReg) return iqh;
    if (off == hw::kIqtReg) return iqt;
    if (off >= fault_reg() && off < fault_reg() + frcd.size() * 16) {
      const size_t i = (off - fault_reg()) / 16;
      return (off - fault_reg()) % 16 == 0 ? frcd[i].low : frcd[i].high;
    }
    return 0;
  }

  void write32(uint32_t off, uint32_t v) override {
    log.push_back({off, v, 4, off == hw::kGcmdReg ? v ^ (gsts & hw::gcmd::kPersistentMask) : 0});
    if (off == hw::kGcmdReg) return gcmd_write(v);
    if (off == hw::kFectlReg) {
      fectl = v & hw::fectl::kIm;
      return;
    }
    if (off == hw::kPmenReg) {
      // 10.4.16: PRS follows EPM (here at once, or never when stuck).
      if ((cap & (hw::cap::kPlmr | hw::cap::kPhmr)) == 0) return;  // read-only then
      pmen = (v & hw::pmen::kEpm) | ((v & hw::pmen::kEpm) != 0 || stuck_pmen ? hw::pmen::kPrs : 0);
      pmen_off_after_te = (pmen & hw::pmen::kEpm) == 0 && translating();
      return;
    }
    if (off == hw::kFstsReg) {
      pfo = pfo && (v & hw::fsts::kPfo) == 0;
      return;
    }
    if (off >= fault_reg() && off < fault_reg() + frcd.size() * 16 &&
        (off - fault_reg()) % 16 == hw::frcd::kHighDwordOffset && (v & hw::frcd::kFInHighDword)) {
      frcd[(off - fault_reg()) / 16].high &= ~hw::frcd::kF;  // F is write-1-to-clear
    }
  }

  void write64(uint32_t off, uint64_t v) override {
    log.push_back({off, v, 8});
    if (off == hw::kRtaddrReg) {
      rtaddr = v;
    } else if (off == hw::kCcmdReg && (v & hw::ccmd::kIcc) != 0) {
      ccmd = v;
      ccmd_busy = stuck_ccmd ? -1 : latency;
      if (ccmd_busy == 0) complete_ccmd();
      ccmd_after_root = (gsts & hw::gcmd::kSrtp) != 0 && root_latched == rtaddr;
    } else if (off == iotlb_reg() && (v & hw::iotlb::kIvt) != 0) {
      iotlb = v;
      iotlb_busy = latency;
      if (iotlb_busy == 0) complete_iotlb();
      iotlb_after_context = context_invalidated;
    }
  }

  void delay_us(uint32_t us) override { waited_us += us; }

  // Faults -------------------------------------------------------------
  // Records a fault the way hardware does: in the next free record, or
  // sets PFO when it is still full.
  void record_fault(uint16_t sid, uint64_t addr, uint8_t reason, bool read) {
    if (pfo) return;
    auto& r = frcd[next_fault];
    if ((r.high & hw::frcd::kF) != 0) {
      pfo = true;
      return;
    }
    r.low = addr & ~0xFFFull;
    r.high = hw::frcd::kF | (read ? hw::frcd::kT1 : 0) |
             static_cast<uint64_t>(reason) << hw::frcd::kReasonShift | sid;
    r.sequence = ++recorded;
    next_fault = (next_fault + 1) % frcd.size();
  }

  // Model state --------------------------------------------------------
  uint32_t ver;
  uint64_t cap, ecap;
  uint32_t gsts = 0, fectl = 0;
  uint32_t pmen = 0;        // protected memory: EPM 31, PRS 0
  bool stuck_pmen = false;  // PRS stays set
  bool pmen_off_after_te = false;
  uint64_t rtaddr = 0, root_latched = 0, ccmd = 0, iotlb = 0, iqh = 0, iqt = 0;
  int ccmd_busy = 0, iotlb_busy = 0;
  int latency = 2;            // polls before a command completes
  bool stuck_ccmd = false;    // the context invalidation never completes
  uint32_t stuck_status = 0;  // GSTS bits that never follow GCMD
  bool refuse_iotlb = false;  // IAIG reads 0
  bool context_invalidated = false, ccmd_after_root = false, iotlb_after_context = false;
  bool gcmd_rule_broken = false;  // a GCMD write changed more than the one bit
  bool pfo = false;
  struct Record {
    uint64_t low = 0, high = 0;
    uint64_t sequence = 0;  // when it was recorded
  };
  std::vector<Record> frcd;
  size_t next_fault = 0;
  uint64_t recorded = 0;
  std::vector<RegWrite> log;
  uint64_t reads = 0, waited_us = 0;

  bool translating() const { return (gsts & hw::gcmd::kTe) != 0; }

 private:
  struct Pending {
    uint32_t bit;
    bool set;
    int polls;
  };
  std::vector<Pending> pending_;

  // 10.4.4: software writes GSTS (one-shot bits cleared) with one bit changed.
  void gcmd_write(uint32_t v) {
    const uint32_t expected = gsts & hw::gcmd::kPersistentMask;
    const uint32_t changed = v ^ expected;
    if (changed == 0 || (changed & (changed - 1)) != 0) gcmd_rule_broken = true;
    for (uint32_t bit : {hw::gcmd::kTe, hw::gcmd::kQie, hw::gcmd::kIre, hw::gcmd::kCfi}) {
      if (((v ^ gsts) & bit) != 0) pending_.push_back({bit, (v & bit) != 0, latency});
    }
    if ((v & hw::gcmd::kSrtp) != 0) {
      root_latched = rtaddr;
      gsts &= ~hw::gcmd::kSrtp;  // RTPS clears on the write, sets when latched
      context_invalidated = false;
      pending_.push_back({hw::gcmd::kSrtp, true, latency});
    }
    if ((v & hw::gcmd::kWbf) != 0) {
      gsts |= hw::gcmd::kWbf;  // WBFS: set while the flush is pending
      pending_.push_back({hw::gcmd::kWbf, false, latency});
    }
    tick(0);
  }

  void tick(int polls = 1) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if ((stuck_status & it->bit) != 0) {
        ++it;
        continue;
      }
      it->polls -= polls;
      if (it->polls <= 0) {
        gsts = it->set ? gsts | it->bit : gsts & ~it->bit;
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void complete_ccmd() {
    const uint64_t granularity = (ccmd >> hw::ccmd::kCirgShift) & 3;
    ccmd = (ccmd & ~hw::ccmd::kIcc) | granularity << hw::ccmd::kCaigShift;
    context_invalidated = ccmd_after_root;
  }
  void complete_iotlb() {
    const uint64_t granularity = refuse_iotlb ? 0 : (iotlb >> hw::iotlb::kIirgShift) & 3;
    iotlb = (iotlb & ~hw::iotlb::kIvt) | granularity << hw::iotlb::kIaigShift;
  }

  // PPF while any record has F; FRI the oldest of them.
  uint32_t fsts_value() const {
    uint32_t v = pfo ? hw::fsts::kPfo : 0;
    const Record* oldest = nullptr;
    for (size_t i = 0; i < frcd.size(); ++i) {
      if ((frcd[i].high & hw::frcd::kF) != 0 &&
          (oldest == nullptr || frcd[i].sequence < oldest->sequence)) {
        oldest = &frcd[i];
        v = (v & ~(hw::fsts::kFriMask << hw::fsts::kFriShift)) | hw::fsts::kPpf |
            static_cast<uint32_t>(i) << hw::fsts::kFriShift;
      }
    }
    return v;
  }
};

// The table memory of the VT-d tests: above 8 GiB, so that tables and the
// ranges they protect never share an address by accident.
class FakeMemory final : public microhv::test::FakePhys {
 public:
  explicit FakeMemory(size_t limit = 1u << 20, uint64_t base = 0x200000000ull)
      : FakePhys(limit, base) {}
};

// Collects microhv's log lines while it lives.
class LogCapture {
 public:
  LogCapture() {
    lines().clear();
    log::set_sink([](void*, const char* text, size_t len) { lines().emplace_back(text, len); });
  }
  ~LogCapture() { log::set_sink(nullptr); }
  static std::vector<std::string>& lines() {
    static std::vector<std::string> captured;
    return captured;
  }
  static bool has(const std::string& part) {
    for (const auto& l : lines()) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

// Register sets by base address, and the pages flushed from the caches.
class FakeMap final : public RegisterMap {
 public:
  VtdRegisters* unit(Hpa base, uint32_t bytes) override {
    requested[base.value()] = bytes;
    auto it = units.find(base.value());
    return it == units.end() ? nullptr : it->second;
  }
  void flush_cache(Hpa base, uint64_t bytes) override {
    for (uint64_t a = base.value() & ~0xFFFull; a < base.value() + bytes; a += 4096) {
      flushed.insert(a);
    }
  }
  std::map<uint64_t, FakeUnit*> units;
  std::map<uint64_t, uint32_t> requested;  // base -> window asked for
  std::set<uint64_t> flushed;
};

// Captured from QEMU 7.2 (Debian 12), q35 with -device intel-iommu (aw-bits
// 39, the default) and -device edu, under OVMF: build/vtd_test.efi dumps the
// DMAR it finds through the EFI configuration table to COM1
// ("vtd-test: DMAR ..." lines of make test-vtd). One DRHD at 0xfed90000
// without INCLUDE_PCI_ALL whose scope lists the I/O APIC and every PCI
// function of the root bus (00:00.0, 01.0, 02.0 = edu, 1f.0, 1f.2, 1f.3).
inline const uint8_t kQemuDmarAw39[120] = {
    0x44, 0x4d, 0x41, 0x52, 0x78, 0x00, 0x00, 0x00, 0x01, 0x0d, 0x42, 0x4f, 0x43, 0x48, 0x53,
    0x20, 0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20, 0x01, 0x00, 0x00, 0x00, 0x42, 0x58,
    0x50, 0x43, 0x01, 0x00, 0x00, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd9, 0xfe,
    0x00, 0x00, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x01, 0x08, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00, 0x01,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x02, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x03};
// The same with aw-bits=48: only the host address width (0x2f) and the
// checksum differ.
inline const uint8_t kQemuDmarAw48Diff[2][2] = {{9, 0x04}, {36, 0x2f}};  // (offset, byte)

// The unit's registers in the same runs (printed by vtd_test.efi).
inline constexpr uint32_t kQemuVer = 0x10;
inline constexpr uint64_t kQemuCapAw39 = 0x00d2008c22260206ull;
inline constexpr uint64_t kQemuCapAw48 = 0x00d2008c222f0606ull;
inline constexpr uint64_t kQemuEcap = 0x0000000000f00f4aull;
inline constexpr uint64_t kQemuUnitBase = 0xfed90000ull;

// The PCI functions of that machine (edu at 00:02.0).
inline const PciFunctionInfo kQemuDevices[6] = {{0, 0x0000, false, 0, 0}, {0, 0x0008, false, 0, 0},
                                                {0, 0x0010, false, 0, 0}, {0, 0x00f8, false, 0, 0},
                                                {0, 0x00fa, false, 0, 0}, {0, 0x00fb, false, 0, 0}};

// A DMA request translated the way a remapping unit in legacy mode does
// (9.1 root entry, 9.3 context entry, 9.8 second-level entries): the result
// or the fault reason hardware would record (7.1.3).
struct Walk {
  bool ok;
  uint8_t fault;  // arch::vtd::fault::k* when !ok
  uint64_t hpa;
  unsigned leaf_level;
  uint16_t domain;
};

inline Walk hw_walk(FakeMemory& mem, uint64_t rtaddr, uint8_t sagaw, uint8_t superpages,
                    uint16_t sid, uint64_t iova, bool write) {
  Walk w{false, 0, 0, 0, 0};
  auto fail = [&w](uint8_t reason) {
    w.fault = reason;
    return w;
  };
  if (!mem.has(rtaddr & hw::kTableAddrMask)) return fail(hw::fault::kRootTableAccess);
  const uint64_t* root = mem.table(Hpa(rtaddr & hw::kTableAddrMask));
  const unsigned bus = sid >> 8, devfn = sid & 0xFF;
  const uint64_t rlo = root[2 * bus], rhi = root[2 * bus + 1];
  if ((rlo & hw::kRootPresent) == 0) return fail(hw::fault::kRootNotPresent);
  if ((rlo & 0xFFE) != 0 || rhi != 0) return fail(hw::fault::kRootReserved);
  if (!mem.has(rlo & hw::kTableAddrMask)) return fail(hw::fault::kContextTableAccess);
  const uint64_t* ctx = mem.table(Hpa(rlo & hw::kTableAddrMask));
  const uint64_t clo = ctx[2 * devfn], chi = ctx[2 * devfn + 1];
  if ((clo & hw::kContextPresent) == 0) return fail(hw::fault::kContextNotPresent);
  if ((clo & 0xFF0) != 0 || (chi & 0xFFFFFFFFFF000080ull) != 0) {
    return fail(hw::fault::kContextReserved);
  }
  const unsigned tt = (clo >> 2) & 3;
  const unsigned aw = chi & 7;
  w.domain = static_cast<uint16_t>(chi >> hw::kContextDidShift);
  if (tt != 0 || (sagaw & (1u << aw)) == 0) return fail(hw::fault::kContextInvalid);
  const unsigned levels = aw + 2;
  if (iova >> (30 + 9 * aw) != 0) return fail(hw::fault::kBeyondAddressWidth);
  uint64_t table = clo & hw::kTableAddrMask;
  const uint64_t need = write ? hw::sl::kWrite : hw::sl::kRead;
  for (unsigned level = levels; level >= 1; --level) {
    if (!mem.has(table)) return fail(hw::fault::kPagingEntryAccess);
    const uint64_t e = mem.table(Hpa(table))[(iova >> (12 + 9 * (level - 1))) & 0x1FF];
    // Permissions are the AND of every level's R/W (9.8).
    if ((e & need) == 0) {
      return fail(write ? hw::fault::kWriteNotAllowed : hw::fault::kReadNotAllowed);
    }
    const bool large = (e & hw::sl::kLarge) != 0;
    // Bits 10:8 and 11 (SNP without ECAP.SC) and bits 6:2 are not used by
    // microhv: any set bit there would be a bug.
    if ((e & 0xF7Cull) != 0) {
      return fail(hw::fault::kPagingEntryReserved);
    }
    if (large) {
      // PS is reserved in a PML4E and without the SLLPS bit for its size.
      if (level == 4 || (superpages & (1u << (level - 2))) == 0) {
        return fail(hw::fault::kPagingEntryReserved);
      }
    }
    if (level == 1 || large) {
      const uint64_t size = 1ull << (12 + 9 * (level - 1));
      if ((e & hw::kTableAddrMask & (size - 1)) != 0) {
        return fail(hw::fault::kPagingEntryReserved);  // unaligned large page
      }
      w.ok = true;
      w.hpa = (e & hw::kTableAddrMask & ~(size - 1)) | (iova & (size - 1));
      w.leaf_level = level;
      return w;
    }
    table = e & hw::kTableAddrMask;
  }
  return w;
}

}  // namespace microhv::vtd::test
