// SDM Vol. 3C 27.2.1: checks on the VM-execution, VM-exit and VM-entry
// control fields (including event injection), plus the fields the enabled
// controls make the processor use, so an unwritten one is reported.
#include "vmx/entry_check/check_context.hpp"

namespace microhv::vmx::entry_check {
namespace {

bool page_aligned_ok(Context& c, uint64_t addr) {
  return (addr & 0xFFF) == 0 && c.physical_ok(addr);
}

// An MSR-load/-store area of `count` 16-byte entries at `addr`.
void check_msr_area(Context& c, Rule rule, Field count_field, Field addr_field) {
  const uint64_t count = c.read(count_field);
  if (count == 0) return;
  const uint64_t addr = c.read(addr_field);
  c.require((addr & 0xF) == 0 && c.physical_ok(addr) && c.physical_ok(addr + count * 16 - 1), rule,
            addr_field, addr);
}

void check_execution_controls(Context& c) {
  const CapabilitySet& caps = c.caps();
  const ControlCaps cc = control_caps(caps.msrs);
  c.require(controls_valid(cc.pin, c.pin), Rule::kPinControls, Field::kPinControls, c.pin);
  c.require(controls_valid(cc.proc, c.proc), Rule::kProcControls, Field::kProcControls, c.proc);
  if ((c.proc & proc::kActivateSecondary) != 0) {
    c.require(controls_valid(caps.msrs.procbased2, c.proc2), Rule::kProc2Controls,
              Field::kProcControls2, c.proc2);
  }

  const uint64_t cr3_targets = c.read(Field::kCr3TargetCount);
  const uint64_t allowed_targets = (caps.msrs.misc >> misc::kCr3TargetShift) & misc::kCr3TargetMask;
  c.require(cr3_targets <= allowed_targets, Rule::kCr3TargetCount, Field::kCr3TargetCount,
            cr3_targets);
  constexpr Field kTargets[] = {Field::kCr3Target0, Field::kCr3Target1, Field::kCr3Target2,
                                Field::kCr3Target3};
  for (uint64_t i = 0; i < cr3_targets && i < 4; ++i) c.read(kTargets[i]);

  if ((c.proc & proc::kUseIoBitmaps) != 0) {
    const uint64_t a = c.read(Field::kIoBitmapA), b = c.read(Field::kIoBitmapB);
    c.require(page_aligned_ok(c, a), Rule::kIoBitmapAddress, Field::kIoBitmapA, a);
    c.require(page_aligned_ok(c, b), Rule::kIoBitmapAddress, Field::kIoBitmapB, b);
  }
  if ((c.proc & proc::kUseMsrBitmaps) != 0) {
    const uint64_t m = c.read(Field::kMsrBitmap);
    c.require(page_aligned_ok(c, m), Rule::kMsrBitmapAddress, Field::kMsrBitmap, m);
  }
  if ((c.pin & pin::kVirtualNmis) != 0) {
    c.require((c.pin & pin::kNmiExiting) != 0, Rule::kVirtualNmisNeedNmiExiting,
              Field::kPinControls, c.pin);
  } else {
    c.require((c.proc & proc::kNmiWindowExiting) == 0, Rule::kNmiWindowNeedsVirtualNmis,
              Field::kProcControls, c.proc);
  }
  if ((c.proc2 & proc2::kEnableVpid) != 0) {
    const uint64_t vpid = c.read(Field::kVpid);
    c.require(vpid != 0, Rule::kVpidZero, Field::kVpid, vpid);
  }
  c.require(!c.unrestricted() || (c.proc2 & proc2::kEnableEpt) != 0, Rule::kUnrestrictedNeedsEpt,
            Field::kProcControls2, c.proc2);
}

void check_eptp(Context& c) {
  if ((c.proc2 & proc2::kEnableEpt) == 0) return;
  const uint64_t cap = c.caps().msrs.ept_vpid_cap;
  const uint64_t eptp = c.read(Field::kEptPointer);
  const uint64_t type = eptp & 7;
  c.require((type == 0 && (cap & ept_cap::kMemTypeUc) != 0) ||
                (type == 6 && (cap & ept_cap::kMemTypeWb) != 0),
            Rule::kEptpMemoryType, Field::kEptPointer, eptp);
  const uint64_t walk = ((eptp >> 3) & 7) + 1;
  c.require((walk == 4 && (cap & ept_cap::kPageWalk4) != 0) ||
                (walk == 5 && (cap & ept_cap::kPageWalk5) != 0),
            Rule::kEptpWalkLength, Field::kEptPointer, eptp);
  c.require((eptp & (1ull << 6)) == 0 || (cap & ept_cap::kAccessDirty) != 0, Rule::kEptpAccessDirty,
            Field::kEptPointer, eptp);
  // Bit 7 is the supervisor shadow-stack control on processors with CET
  // (CR4.CET allowed by CR4_FIXED1); reserved elsewhere.
  const bool cet = (c.caps().msrs.cr4_fixed1 & arch::cr4::kCet) != 0;
  const uint64_t reserved = 0xF00ull | (cet ? 0 : 0x80ull);
  c.require((eptp & reserved) == 0 && c.physical_ok(eptp), Rule::kEptpReservedBits,
            Field::kEptPointer, eptp);
}

// Fields the enabled controls make the processor use, though no VM-entry
// check reads them: an unwritten one is behaviour left to chance.
void read_used_fields(Context& c) {
  const uint64_t exceptions = c.read(Field::kExceptionBitmap);
  if ((exceptions & (1u << vector::kPf)) != 0) {
    c.read(Field::kPfErrorCodeMask);
    c.read(Field::kPfErrorCodeMatch);
  }
  c.read(Field::kCr0Mask);
  c.read(Field::kCr0ReadShadow);
  c.read(Field::kCr4Mask);
  c.read(Field::kCr4ReadShadow);
  if ((c.proc & proc::kTscOffsetting) != 0) c.read(Field::kTscOffset);
  if ((c.proc & proc::kUseTprShadow) != 0) c.read(Field::kTprThreshold);
  // XSAVES/XRSTORS exit when XSS & bitmap != 0 (SDM 26.1.3).
  if ((c.proc2 & proc2::kEnableXsaves) != 0) c.read(Field::kXssExitingBitmap);
  if ((c.pin & pin::kPreemptionTimer) != 0) c.read(Field::kPreemptionTimerValue);
}

void check_exit_controls(Context& c) {
  const ControlCaps cc = control_caps(c.caps().msrs);
  c.require(controls_valid(cc.exit, c.exit), Rule::kExitControls, Field::kExitControls, c.exit);
  constexpr uint32_t kSavePreemptionTimer = 1u << 22;
  c.require((c.exit & kSavePreemptionTimer) == 0 || (c.pin & pin::kPreemptionTimer) != 0,
            Rule::kSavePreemptionNeedsTimer, Field::kExitControls, c.exit);
  check_msr_area(c, Rule::kExitMsrAreas, Field::kExitMsrStoreCount, Field::kExitMsrStoreAddr);
  check_msr_area(c, Rule::kExitMsrAreas, Field::kExitMsrLoadCount, Field::kExitMsrLoadAddr);
}

// Hardware exceptions that push an error code in protected mode, as VM
// entry checks them (27.2.1.3). #CP (21) is left out: editions with CET add
// it to the list, older ones put it in the "no error code" range.
constexpr bool entry_exception_has_error_code(uint32_t vector) {
  return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
}

void check_injection(Context& c) {
  const uint32_t info = c.injection;
  if (info == 0) return;
  const Field f = Field::kEntryInterruptionInfo;
  const uint32_t vector = info & intr_info::kVectorMask;
  const auto type = static_cast<EventType>((info & intr_info::kTypeMask) >> intr_info::kTypeShift);
  const bool mtf = control_allowed(control_caps(c.caps().msrs).proc, proc::kMonitorTrapFlag);
  c.require(static_cast<uint32_t>(type) != 1 && (type != EventType::kOther || mtf),
            Rule::kInjectionType, f, info);
  c.require((type != EventType::kNmi || vector == vector::kNmi) &&
                (type != EventType::kHardwareException || vector <= 31) &&
                (type != EventType::kOther || vector == 0),
            Rule::kInjectionVector, f, info);

  const bool deliver = (info & intr_info::kDeliverErrorCode) != 0;
  const bool protected_mode = !c.unrestricted() || (c.guest_cr0 & 1) != 0;
  if (type != EventType::kHardwareException || !protected_mode) {
    c.require(!deliver, Rule::kInjectionErrorCodeBit, f, info);
  } else if (!basic_any_error_code(c.caps().msrs.basic) && vector != 21) {
    c.require(deliver == entry_exception_has_error_code(vector), Rule::kInjectionErrorCodeBit, f,
              info);
  }
  if (deliver) {
    const uint64_t code = c.read(Field::kEntryExceptionErrorCode);
    c.require((code & 0xFFFF0000ull) == 0, Rule::kInjectionErrorCodeValue,
              Field::kEntryExceptionErrorCode, code);
  }
  c.require((info & 0x7FFFF000u) == 0, Rule::kInjectionReservedBits, f, info);
  if (type == EventType::kSoftwareInterrupt || type == EventType::kPrivilegedSoftwareException ||
      type == EventType::kSoftwareException) {
    const uint64_t length = c.read(Field::kEntryInstructionLength);
    const bool zero_ok = (c.caps().msrs.misc & misc::kZeroLengthInjection) != 0;
    c.require(length <= 15 && (length != 0 || zero_ok), Rule::kInjectionLength,
              Field::kEntryInstructionLength, length);
  }
}

void check_entry_controls(Context& c) {
  const ControlCaps cc = control_caps(c.caps().msrs);
  c.require(controls_valid(cc.entry, c.entry), Rule::kEntryControls, Field::kEntryControls,
            c.entry);
  constexpr uint32_t kDeactivateDualMonitor = 1u << 11;
  c.require((c.entry & (entry_ctl::kEntryToSmm | kDeactivateDualMonitor)) == 0,
            Rule::kEntryOutsideSmm, Field::kEntryControls, c.entry);
  check_injection(c);
  check_msr_area(c, Rule::kEntryMsrArea, Field::kEntryMsrLoadCount, Field::kEntryMsrLoadAddr);
}

}  // namespace

void check_controls(Context& c) {
  check_execution_controls(c);
  check_eptp(c);
  read_used_fields(c);
  check_exit_controls(c);
  check_entry_controls(c);
}

}  // namespace microhv::vmx::entry_check
