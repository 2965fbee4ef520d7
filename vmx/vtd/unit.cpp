#include "vmx/vtd/unit.hpp"

#include "arch/vtd.hpp"
#include "kernel/base/log.hpp"

namespace microhv::vtd {
namespace {

using namespace arch::vtd;

// Polls until `done()` holds, at most kWaitTimeoutUs.
template <typename Done>
bool wait_for(VtdRegisters& regs, Done done) {
  for (uint32_t waited = 0;; waited += kPollIntervalUs) {
    if (done()) return true;
    if (waited >= kWaitTimeoutUs) return false;
    regs.delay_us(kPollIntervalUs);
  }
}

// Issues one global command: GSTS minus the one-shot bits, with `bit` set or
// cleared (10.4.4), then waits for the status bit to read `want`.
bool global_command(VtdRegisters& regs, uint32_t bit, bool set, uint32_t status_bit, bool want,
                    const char* what, char* error, size_t error_cap) {
  const uint32_t persistent = regs.read32(kGstsReg) & gcmd::kPersistentMask;
  regs.write32(kGcmdReg, set ? persistent | bit : persistent & ~bit);
  const bool ok =
      wait_for(regs, [&] { return ((regs.read32(kGstsReg) & status_bit) != 0) == want; });
  if (!ok) {
    format(error, error_cap, "%s did not complete within %u ms (GSTS 0x%08x)", what,
           kWaitTimeoutUs / 1000, regs.read32(kGstsReg));
  }
  return ok;
}

// A register-based invalidation (CCMD or IOTLB_REG): write the command, wait
// for the busy bit to clear, check that the unit reports a granularity.
bool invalidate(VtdRegisters& regs, uint32_t reg, uint64_t command, uint64_t busy,
                unsigned actual_shift, const char* what, char* error, size_t error_cap) {
  regs.write64(reg, command);
  uint64_t value = 0;
  if (!wait_for(regs, [&] { return ((value = regs.read64(reg)) & busy) == 0; })) {
    format(error, error_cap, "%s did not complete within %u ms (0x%016llx)", what,
           kWaitTimeoutUs / 1000, static_cast<unsigned long long>(value));
    return false;
  }
  // Actual granularity 0: the unit did not perform the invalidation.
  if (((value >> actual_shift) & 3) == 0) {
    format(error, error_cap, "%s was refused by the unit (0x%016llx)", what,
           static_cast<unsigned long long>(value));
    return false;
  }
  return true;
}

// Protected memory regions (10.4.16-10.4.20, PMEN_REG) that firmware (a
// pre-boot DMA protection driver) left enabled block DMA to whole ranges of
// memory below and above 4 GiB. With translation on, the tables decide:
// the regions are turned off once TE is set, as the specification asks of
// software that enables remapping (and Linux does). PMEN is read-only on
// units without them (CAP.PLMR = CAP.PHMR = 0), so it is not touched there.
bool disable_protected_memory(VtdRegisters& regs, const UnitCaps& caps, char* error,
                              size_t error_cap) {
  if ((caps.cap & (cap::kPlmr | cap::kPhmr)) == 0) return true;
  const uint32_t value = regs.read32(kPmenReg);
  if ((value & (pmen::kEpm | pmen::kPrs)) == 0) return true;
  regs.write32(kPmenReg, value & ~pmen::kEpm);
  if (wait_for(regs, [&] { return (regs.read32(kPmenReg) & pmen::kPrs) == 0; })) return true;
  format(error, error_cap,
         "turning off the protected memory regions firmware enabled did not complete within %u "
         "ms (PMEN 0x%08x)",
         kWaitTimeoutUs / 1000, regs.read32(kPmenReg));
  return false;
}

}  // namespace

UnitCaps read_caps(VtdRegisters& regs) {
  return decode_caps(regs.read32(kVerReg), regs.read64(kCapReg), regs.read64(kEcapReg));
}

bool enable_translation(VtdRegisters& regs, const UnitCaps& caps, Hpa root_table, char* error,
                        size_t error_cap) {
  const uint32_t gsts = regs.read32(kGstsReg);
  if ((gsts & gcmd::kIre) != 0) {
    format(error, error_cap,
           "interrupt remapping is enabled (by firmware); microhv does not take over such a unit");
    return false;
  }
  if ((gsts & gcmd::kQie) != 0) {
    // Queued invalidation left on by firmware: let the queue drain, then
    // turn it off so the register-based interface may be used.
    if (!wait_for(regs, [&] { return regs.read64(kIqhReg) == regs.read64(kIqtReg); })) {
      format(error, error_cap, "the invalidation queue left by firmware did not drain");
      return false;
    }
    if (!global_command(regs, gcmd::kQie, false, gcmd::kQie, false,
                        "turning off queued invalidation", error, error_cap)) {
      return false;
    }
  }
  regs.write32(kFectlReg, fectl::kIm);
  if (caps.write_buffer_flush && !global_command(regs, gcmd::kWbf, true, gcmd::kWbf, false,
                                                 "write buffer flush", error, error_cap)) {
    return false;
  }
  regs.write64(kRtaddrReg, root_table.value() & kTableAddrMask);  // TTM 00: legacy mode
  if (!global_command(regs, gcmd::kSrtp, true, gcmd::kSrtp, true, "setting the root table", error,
                      error_cap)) {
    return false;
  }
  if (!invalidate(regs, kCcmdReg, ccmd::kIcc | ccmd::kGlobal << ccmd::kCirgShift, ccmd::kIcc,
                  ccmd::kCaigShift, "global context-cache invalidation", error, error_cap)) {
    return false;
  }
  const uint64_t iotlb_command = iotlb::kIvt | iotlb::kGlobal << iotlb::kIirgShift |
                                 (caps.drain_reads ? iotlb::kDrainReads : 0) |
                                 (caps.drain_writes ? iotlb::kDrainWrites : 0);
  if (!invalidate(regs, caps.iotlb_reg, iotlb_command, iotlb::kIvt, iotlb::kIaigShift,
                  "global IOTLB invalidation", error, error_cap)) {
    return false;
  }
  // Translation left on by firmware: the unit uses the new tables since
  // SRTP and the invalidations; setting TE again would be no command.
  if ((regs.read32(kGstsReg) & gcmd::kTe) == 0 &&
      !global_command(regs, gcmd::kTe, true, gcmd::kTe, true, "enabling translation", error,
                      error_cap)) {
    return false;
  }
  return disable_protected_memory(regs, caps, error, error_cap);
}

bool disable_translation(VtdRegisters& regs, char* error, size_t error_cap) {
  return global_command(regs, gcmd::kTe, false, gcmd::kTe, false, "disabling translation", error,
                        error_cap);
}

}  // namespace microhv::vtd
