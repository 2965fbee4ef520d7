// DMA faults: the primary fault recording registers of a unit (VT-d 10.4.9
// FSTS, 10.4.14 FRCD, record format 9.9), read, decoded and cleared, and
// one log line per fault, rate-limited (a device under the guest's control
// can fault at bus speed). The host runs with interrupts off, so the fault
// event interrupt stays masked and the records are polled. Portable.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kernel/base/types.hpp"
#include "vmx/vtd/caps.hpp"
#include "vmx/vtd/unit.hpp"

namespace microhv::vtd {

struct FaultRecord {
  uint16_t source_id;  // requester: bus 15:8, device 7:3, function 2:0
  uint8_t reason;      // arch::vtd::fault::k*
  uint8_t type;        // T2:T1 -- 0 write, 1 read, 2 page request, 3 atomic
  bool pasid_present;
  uint32_t pasid;
  uint64_t address;  // page address of the faulting request
};

FaultRecord decode_fault(uint64_t low, uint64_t high);
const char* fault_reason_text(uint8_t reason);
const char* fault_type_text(uint8_t type);

// "DMA write by 00:03.0 to 0x7d3f000 blocked: the page is not writable for
// devices (fault reason 0x5)" -- the text of one log line.
size_t describe_fault(char* out, size_t cap, const FaultRecord& f);

struct FaultScan {
  uint32_t records;  // records read and cleared
  bool overflow;     // FSTS.PFO was set: the unit dropped faults
};

// Reads every pending primary fault record, oldest (FSTS.FRI) first, clears
// each (F is write-1-to-clear) and then PFO, storing the first `cap` records
// in `out`. One lap over the unit's fault recording registers.
FaultScan collect_faults(VtdRegisters& regs, const UnitCaps& caps, FaultRecord* out, uint32_t cap);

// Logs faults with at most `lines_per_window` lines per `window_us`; the
// rest are counted and summed up in one line when the next window opens.
class FaultLog {
 public:
  explicit FaultLog(uint32_t lines_per_window = 8, uint64_t window_us = 1'000'000)
      : lines_per_window_(lines_per_window), window_us_(window_us) {}

  // Logs `scan` for the unit at `unit_base`; `records` holds the first
  // min(scan.records, stored) of them. `now_us`: any monotonic clock.
  void report(Hpa unit_base, const FaultScan& scan, const FaultRecord* records, uint32_t stored,
              uint64_t now_us);
  uint64_t suppressed() const { return suppressed_; }

 private:
  void roll(uint64_t now_us);
  bool take_line(uint64_t now_us);

  uint32_t lines_per_window_;
  uint64_t window_us_;
  uint64_t window_start_ = 0;
  bool window_open_ = false;
  uint32_t lines_ = 0;
  uint64_t suppressed_ = 0;  // since the last summary line
  bool overflow_suppressed_ = false;
};

}  // namespace microhv::vtd
