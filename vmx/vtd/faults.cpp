#include "vmx/vtd/faults.hpp"

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {

using namespace arch::vtd;

FaultRecord decode_fault(uint64_t low, uint64_t high) {
  FaultRecord f{};
  f.source_id = static_cast<uint16_t>(high & frcd::kSourceIdMask);
  f.reason = static_cast<uint8_t>((high >> frcd::kReasonShift) & frcd::kReasonMask);
  f.type =
      static_cast<uint8_t>(((high & frcd::kT2) != 0 ? 2 : 0) | ((high & frcd::kT1) != 0 ? 1 : 0));
  f.pasid_present = (high & frcd::kPp) != 0;
  f.pasid = static_cast<uint32_t>((high >> frcd::kPasidShift) & frcd::kPasidMask);
  f.address = low & frcd::kFaultInfoMask;
  return f;
}

const char* fault_reason_text(uint8_t reason) {
  switch (reason) {
    case fault::kRootNotPresent:
      return "root entry not present";
    case fault::kContextNotPresent:
      return "context entry not present";
    case fault::kContextInvalid:
      return "invalid context entry";
    case fault::kBeyondAddressWidth:
      return "address beyond the unit's address width";
    case fault::kWriteNotAllowed:
      return "the page is not writable for devices";
    case fault::kReadNotAllowed:
      return "the page is not readable for devices";
    case fault::kPagingEntryAccess:
      return "second-level table entry could not be read";
    case fault::kRootTableAccess:
      return "root entry could not be read";
    case fault::kContextTableAccess:
      return "context entry could not be read";
    case fault::kRootReserved:
      return "reserved bit set in a root entry";
    case fault::kContextReserved:
      return "reserved bit set in a context entry";
    case fault::kPagingEntryReserved:
      return "reserved bit set in a second-level entry";
    case fault::kTranslationTypeBlocked:
      return "translation type blocked by the context entry";
    default:
      return "see the VT-d specification's fault reason table";
  }
}

const char* fault_type_text(uint8_t type) {
  static const char* const kNames[4] = {"write", "read", "page request", "atomic"};
  return kNames[type & 3];
}

size_t describe_fault(char* out, size_t cap, const FaultRecord& f) {
  const unsigned bus = f.source_id >> 8, dev = (f.source_id >> 3) & 0x1F, fn = f.source_id & 7;
  char pasid[32] = "";
  if (f.pasid_present) format(pasid, sizeof(pasid), " (PASID 0x%x)", f.pasid);
  return format(out, cap, "DMA %s by %02x:%02x.%u%s to 0x%llx blocked: %s (fault reason 0x%x)",
                fault_type_text(f.type), bus, dev, fn, pasid,
                static_cast<unsigned long long>(f.address), fault_reason_text(f.reason), f.reason);
}

FaultScan collect_faults(VtdRegisters& regs, const UnitCaps& caps, FaultRecord* out, uint32_t cap) {
  FaultScan scan{};
  const uint32_t fsts = regs.read32(kFstsReg);
  if ((fsts & fsts::kPpf) != 0 && caps.fault_count != 0) {
    // From FRI (the first pending record, so the oldest comes first) once
    // around the ring, taking every record with F set: hardware fills them
    // in ring order, but a record cleared out of order leaves a gap.
    uint32_t index = ((fsts >> fsts::kFriShift) & fsts::kFriMask) % caps.fault_count;
    for (uint32_t n = 0; n < caps.fault_count; ++n, index = (index + 1) % caps.fault_count) {
      const uint32_t reg = caps.fault_reg + index * kFaultRecordBytes;
      const uint64_t high = regs.read64(reg + 8);
      if ((high & frcd::kF) == 0) continue;
      const uint64_t low = regs.read64(reg);
      if (scan.records < cap) out[scan.records] = decode_fault(low, high);
      ++scan.records;
      regs.write32(reg + frcd::kHighDwordOffset, frcd::kFInHighDword);
    }
  }
  scan.overflow = (fsts & fsts::kPfo) != 0;
  // PFO and the other write-1-to-clear bits; PPF follows the F bits.
  if ((fsts & fsts::kWriteOneToClear) != 0) regs.write32(kFstsReg, fsts & fsts::kWriteOneToClear);
  return scan;
}

void FaultLog::roll(uint64_t now_us) {
  if (!window_open_ || now_us - window_start_ >= window_us_) {
    if (suppressed_ != 0 || overflow_suppressed_) {
      log::error("vtd: %llu more DMA faults were not logged (rate limit)%s\n",
                 static_cast<unsigned long long>(suppressed_),
                 overflow_suppressed_ ? "; the fault records also overflowed, losing others" : "");
      suppressed_ = 0;
      overflow_suppressed_ = false;
    }
    window_open_ = true;
    window_start_ = now_us;
    lines_ = 0;
  }
}

bool FaultLog::take_line(uint64_t now_us) {
  roll(now_us);
  if (lines_ == lines_per_window_) return false;
  ++lines_;
  return true;
}

void FaultLog::report(Hpa unit_base, const FaultScan& scan, const FaultRecord* records,
                      uint32_t stored, uint64_t now_us) {
  roll(now_us);  // the summary of a window that has ended, even with nothing new
  for (uint32_t i = 0; i < scan.records; ++i) {
    if (i >= stored || !take_line(now_us)) {
      ++suppressed_;
      continue;
    }
    char line[200];
    describe_fault(line, sizeof(line), records[i]);
    log::error("vtd: unit 0x%llx: %s\n", static_cast<unsigned long long>(unit_base.value()), line);
  }
  if (scan.overflow) {
    if (take_line(now_us)) {
      log::error("vtd: unit 0x%llx: fault records overflowed; some DMA faults were lost\n",
                 static_cast<unsigned long long>(unit_base.value()));
    } else {
      overflow_suppressed_ = true;
    }
  }
}

}  // namespace microhv::vtd
