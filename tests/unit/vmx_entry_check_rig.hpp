// Test rig for the VM-entry checker: a VmcsAccess that records into a
// VmcsImage, CPU/core stand-ins for driving the exit handlers, the launch
// VMCS microhv writes, and the event-injection writes it makes before
// every entry.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "arch/descriptors.hpp"
#include "vmx/entry_check/cap_matrix.hpp"
#include "vmx/entry_check/checker.hpp"
#include "vmx/exits.hpp"
#include "vmx/features.hpp"

namespace microhv::test {

using namespace microhv::vmx;

class ImageVmcs final : public VmcsAccess {
 public:
  uint64_t read(Field f) override { return image.read(f); }
  void write(Field f, uint64_t value) override {
    INFO("VMWRITE to " << std::hex << encoding(f));
    REQUIRE(image.write(f, value));
  }
  VmcsImage image;
};

// Only what INIT/SIPI, CPUID, MSR and CR exits ask of the CPU.
class EntryCheckCpu final : public CpuServices {
 public:
  CpuidRegs cpuid(uint32_t leaf, uint32_t) override {
    return leaf == 1 ? CpuidRegs{0x000806C1, 0, 0x04000000, 0} : CpuidRegs{};
  }
  bool rdmsr(uint32_t, uint64_t* value) override {
    *value = 0;
    return false;  // every MSR that exits faults: the handler queues #GP
  }
  bool wrmsr(uint32_t, uint64_t) override { return false; }
  bool xsetbv(uint32_t, uint64_t) override { return true; }
  void wbinvd() override {}
  uint32_t io_in(uint16_t, uint8_t) override { return ~0u; }
  void io_out(uint16_t, uint8_t, uint32_t) override {}
  bool step_io_natively(uint16_t) override { return false; }
  bool end_io_step() override { return false; }
  void reset_debug_registers() override {}
  void apic_write(uint32_t, uint32_t) override {}
  uint32_t apic_read(uint32_t) override { return 0; }
  void x2apic_icr_write(uint64_t) override {}
};

class EntryCheckCore final : public HvCore {
 public:
  bool cpuid(uint32_t, CpuidRegs* out) override {
    *out = CpuidRegs{};
    return false;
  }
  MsrResult read_msr(uint32_t, uint64_t*) override { return MsrResult::kGp; }
  MsrResult write_msr(uint32_t, uint64_t) override { return MsrResult::kGp; }
  HypercallOutcome hypercall(const HypercallRegs&) override { return {true, 0}; }
  void testdev_write(uint32_t) override {}
};

// The firmware state microhv captures on a CPU (GuestStart in
// vmx/launch.hpp), as OVMF leaves it in 64-bit mode: its GDT has 64-bit code
// at 0x38 and flat data at 0x30; TR and LDTR are 0.
struct FirmwareState {
  uint64_t gdt[8] = {0,
                     0x00CF92000000FFFFull,   // 0x08 linear data
                     0x00CF9A000000FFFFull,   // 0x10 linear code (32-bit)
                     0x00CF92000000FFFFull,   // 0x18 system data
                     0x00CF9A000000FFFFull,   // 0x20 system code
                     0,                       // 0x28 spare
                     0x00CF93000000FFFFull,   // 0x30 64-bit data
                     0x00AF9B000000FFFFull};  // 0x38 64-bit code
  uint64_t cr0 = 0x80010033, cr3 = 0x0FA01000, cr4 = 0x668, dr7 = 0x400;
  uint64_t efer = 0x500, pat = 0x0007040600070406, debugctl = 0;
  uint64_t rip = 0x0E10657B, rsp = 0x0FD850A0, rflags = 0x2;
  uint16_t cs = 0x38, data = 0x30;
};

// TEMPORARY: mirrors write_vmcs() and the launch in vmx/host_hw.cpp as of
// commit 5fd525d (field for field, values as the host computes them), until
// the restructuring makes the initial VMCS set-up a portable function that
// writes through VmcsAccess; the tests then call that instead.
inline void write_launch_vmcs(VmcsAccess& v, const VmxCapabilities& caps,
                              const FirmwareState& fw = {}, uint32_t vp_index = 0) {
  const bool ia32e = (fw.efer & (1ull << 10)) != 0;
  const ControlSet ctl = compute_controls(caps, ia32e);
  v.write(Field::kPinControls, ctl.pin.value);
  v.write(Field::kProcControls, ctl.proc.value);
  v.write(Field::kProcControls2, ctl.proc2.value);
  v.write(Field::kExitControls, ctl.exit.value);
  v.write(Field::kEntryControls, ctl.entry.value);
  v.write(Field::kExceptionBitmap, 0);
  v.write(Field::kPfErrorCodeMask, 0);
  v.write(Field::kPfErrorCodeMatch, 0);
  v.write(Field::kCr3TargetCount, 0);
  v.write(Field::kExitMsrStoreCount, 0);
  v.write(Field::kExitMsrLoadCount, 0);
  v.write(Field::kEntryMsrLoadCount, 0);
  v.write(Field::kEntryInterruptionInfo, 0);
  v.write(Field::kMsrBitmap, 0x0DEE0000);
  v.write(Field::kIoBitmapA, 0x0DEE1000 + 0x2000 * vp_index);
  v.write(Field::kIoBitmapB, 0x0DEE2000);
  v.write(Field::kEptPointer, make_eptp(0x0DF2B000, caps.ept_vpid_cap));
  v.write(Field::kVpid, 1 + vp_index);
  v.write(Field::kVmcsLinkPointer, ~0ull);
  v.write(Field::kCr0Mask, guest_cr0_mask(caps, true));
  v.write(Field::kCr0ReadShadow, fw.cr0);
  v.write(Field::kCr4Mask, guest_cr4_mask(caps));
  v.write(Field::kCr4ReadShadow, fw.cr4);
  // Host: CR0/CR4 adjusted for VMXON (CR4.OSXSAVE added where XSAVE exists),
  // microhv's CR3, GDT with the TSS at 0x40, stacks and GS base in its pool.
  constexpr uint64_t kOsxsave = 1ull << 18;
  v.write(Field::kHostCr0, apply_fixed(fw.cr0, caps.cr0_fixed0, caps.cr0_fixed1));
  v.write(Field::kHostCr3, 0x0DEF2000);
  v.write(Field::kHostCr4,
          apply_fixed(fw.cr4 | (caps.cr4_fixed1 & kOsxsave), caps.cr4_fixed0, caps.cr4_fixed1) |
              kCr4Vmxe);
  v.write(Field::kHostCsSel, fw.cs);
  for (Field f : {Field::kHostSsSel, Field::kHostDsSel, Field::kHostEsSel, Field::kHostFsSel,
                  Field::kHostGsSel}) {
    v.write(f, 0);
  }
  v.write(Field::kHostTrSel, 0x40);
  v.write(Field::kHostFsBase, 0);
  v.write(Field::kHostGsBase, 0x0DE7A000);
  v.write(Field::kHostTrBase, 0x0DEED000);
  v.write(Field::kHostGdtrBase, 0x0DEEB000);
  v.write(Field::kHostIdtrBase, 0x0DEEC000);
  v.write(Field::kHostSysenterCs, 0);
  v.write(Field::kHostSysenterEsp, 0);
  v.write(Field::kHostSysenterEip, 0);
  v.write(Field::kHostEfer, fw.efer);
  v.write(Field::kHostPat, fw.pat);
  v.write(Field::kHostRsp, 0x0DEE8F40);
  v.write(Field::kHostRip, 0x0DE65000);
  // Guest: the firmware as it was.
  v.write(Field::kGuestCr0, guest_cr0(caps, fw.cr0, true));
  v.write(Field::kGuestCr3, fw.cr3);
  v.write(Field::kGuestCr4, fw.cr4 | caps.cr4_fixed0);
  v.write(Field::kGuestDr7, fw.dr7);
  v.write(Field::kGuestRsp, fw.rsp);
  v.write(Field::kGuestRip, fw.rip);
  v.write(Field::kGuestRflags, fw.rflags);
  v.write(Field::kGuestEfer, fw.efer);
  v.write(Field::kGuestPat, fw.pat);
  v.write(Field::kGuestDebugctl, fw.debugctl);
  v.write(Field::kGuestSysenterCs, 0);
  v.write(Field::kGuestSysenterEsp, 0);
  v.write(Field::kGuestSysenterEip, 0);
  v.write(Field::kGuestGdtrBase, 0x0F9EE000);
  v.write(Field::kGuestGdtrLimit, sizeof(fw.gdt) - 1);
  v.write(Field::kGuestIdtrBase, 0x0F2A4018);
  v.write(Field::kGuestIdtrLimit, 0xFFF);
  v.write(Field::kGuestInterruptibility, 0);
  v.write(Field::kGuestActivityState, activity::kActive);
  v.write(Field::kGuestPendingDebug, 0);
  const auto segment = [&](Field sel, const arch::SegmentState& s) {
    const uint32_t i = (encoding(sel) - encoding(Field::kGuestEsSel)) / 2;
    v.write(sel, s.selector);
    v.write(static_cast<Field>(encoding(Field::kGuestEsBase) + 2 * i), s.base);
    v.write(static_cast<Field>(encoding(Field::kGuestEsLimit) + 2 * i), s.limit);
    v.write(static_cast<Field>(encoding(Field::kGuestEsAccess) + 2 * i), s.access);
  };
  const uint16_t gdt_limit = sizeof(fw.gdt) - 1;
  segment(Field::kGuestCsSel, arch::decode_segment(fw.gdt, gdt_limit, fw.cs));
  for (Field f : {Field::kGuestEsSel, Field::kGuestSsSel, Field::kGuestDsSel, Field::kGuestFsSel,
                  Field::kGuestGsSel}) {
    segment(f, arch::decode_segment(fw.gdt, gdt_limit, fw.data));
  }
  segment(Field::kGuestLdtrSel, arch::decode_segment(fw.gdt, gdt_limit, 0));
  v.write(Field::kGuestFsBase, 0);
  v.write(Field::kGuestGsBase, 0);
  segment(Field::kGuestTrSel, arch::SegmentState{0, 0, 0x67, 0x8B});  // TR = 0: busy TSS
}

// TEMPORARY: mirrors the injection part of prepare_entry() in
// vmx/host_hw.cpp (commit 5fd525d): SMI blocking cleared, decide_injection,
// error code dropped in real mode, HLT woken, window exiting requested.
inline void write_injection(VmcsAccess& v, PendingEvents& events) {
  uint32_t intr = static_cast<uint32_t>(v.read(Field::kGuestInterruptibility));
  if ((intr & interruptibility::kBlockingBySmi) != 0) {
    intr &= ~interruptibility::kBlockingBySmi;
    v.write(Field::kGuestInterruptibility, intr);
  }
  uint32_t act = static_cast<uint32_t>(v.read(Field::kGuestActivityState));
  const GuestInterruptState s{v.read(Field::kGuestRflags), intr, act};
  const InjectionDecision d = decide_injection(events, s);
  if (d.inject) {
    uint32_t info = d.intr_info;
    if ((v.read(Field::kGuestCr0) & kCr0Pe) == 0) info &= ~intr_info::kDeliverErrorCode;
    v.write(Field::kEntryInterruptionInfo, info);
    if ((info & intr_info::kDeliverErrorCode) != 0) {
      v.write(Field::kEntryExceptionErrorCode, d.error_code);
    }
    v.write(Field::kEntryInstructionLength, d.instruction_length);
    if (d.wake) {
      v.write(Field::kGuestActivityState, activity::kActive);
      act = activity::kActive;
    }
  } else {
    v.write(Field::kEntryInterruptionInfo, 0);
  }
  uint64_t proc = v.read(Field::kProcControls);
  proc = d.interrupt_window ? (proc | proc::kInterruptWindowExiting)
                            : (proc & ~static_cast<uint64_t>(proc::kInterruptWindowExiting));
  const bool nmi_window =
      events.nmis > 0 && act != activity::kWaitForSipi && act != activity::kShutdown;
  proc = nmi_window ? (proc | proc::kNmiWindowExiting)
                    : (proc & ~static_cast<uint64_t>(proc::kNmiWindowExiting));
  v.write(Field::kProcControls, proc);
}

// One line per violation, for test output.
inline std::string describe(const CheckReport& r) {
  std::string out;
  for (uint32_t i = 0; i < r.count; ++i) {
    const Violation& x = r.items[i];
    char value[32];
    snprintf(value, sizeof(value), "0x%llx", static_cast<unsigned long long>(x.value));
    out += std::string("  SDM ") + rule_info(x.rule).section + " " + rule_name(x.rule) + ": " +
           field_name(x.field) + " = " + value + " (" + rule_info(x.rule).text + ")\n";
  }
  return out;
}

// The capability sets microhv accepts (the feature decision says usable).
template <typename Fn>
void for_each_usable_set(Fn fn) {
  for (uint32_t i = 0; i < capability_matrix_size(); ++i) {
    const MatrixEntry& e = capability_matrix(i);
    if (!decide_features(e.caps.msrs).usable()) continue;
    DYNAMIC_SECTION(e.name) {
      fn(e);
    }
  }
}

}  // namespace microhv::test

namespace microhv::test {

// The one violation microhv's own VMCS has today on every set with XSAVES
// (issue 10: "the XSS-exiting bitmap is never written although XSAVES is
// enabled"). The scenario tests tolerate exactly this, so that they keep
// proving everything else; vmx_entry_check_known.cpp exposes it with
// [!mayfail]. Phase B writes the bitmap and deletes this exception.
inline bool known_issue(const Violation& v) {
  return v.rule == Rule::kFieldNeverWritten && v.field == more_fields::kXssExitingBitmap;
}

// Checks the image and requires no violation other than the known one.
inline void require_clean(const VmcsImage& image, const CapabilitySet& caps, const char* what) {
  const CheckReport r = check_vm_entry(image, caps);
  CheckReport unexpected;
  for (uint32_t i = 0; i < r.count; ++i) {
    if (!known_issue(r.items[i]))
      unexpected.add(r.items[i].rule, r.items[i].field, r.items[i].value);
  }
  INFO(what << ": " << unexpected.count << " violation(s)\n" << describe(unexpected));
  CHECK(r.dropped == 0);
  REQUIRE(unexpected.ok());
}

}  // namespace microhv::test
