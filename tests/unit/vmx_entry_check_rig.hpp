// Test rig for the VM-entry checker: a VmcsAccess that records into a
// VmcsImage, CPU/core stand-ins for driving the exit handlers, and the
// portable code the back end runs: the launch VMCS (write_initial_vmcs) and
// the event-injection writes before every entry (write_entry_events).
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "arch/x86.hpp"
#include "vmx/entry_check/cap_matrix.hpp"
#include "vmx/entry_check/checker.hpp"
#include "vmx/entry_prep.hpp"
#include "vmx/exits.hpp"
#include "vmx/features.hpp"
#include "vmx/vmcs_setup.hpp"

namespace microhv::test {

using namespace microhv::vmx;

// Reads fail the test for a field never written, as FakeVmcs does
// (tests/unit/fake_vmcs.hpp): after VMCLEAR a field has no defined value.
class ImageVmcs final : public VmcsAccess {
 public:
  bool read(Field f, uint64_t* value) override {
    if (!image.written(f)) {
      FAIL("VMREAD of VMCS field 0x" << std::hex << encoding(f) << " that was never written");
    }
    *value = image.read(f);
    return true;
  }
  bool write(Field f, uint64_t value) override {
    INFO("VMWRITE to " << std::hex << encoding(f));
    REQUIRE(image.write(f, value));
    return true;
  }
  // The value of a field, for the tests' own inspection.
  uint64_t read(Field f) const { return image.read(f); }
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
  uint64_t rdtsc() override { return 0; }
  bool read_xmm(unsigned, unsigned, uint32_t*) override { return false; }
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
  HypercallOutcome hypercall(const HypercallRegs&) override {
    return {HypercallEnd::kUndefinedOpcode, 0};
  }
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
  GuestStart guest = ovmf_guest();
  uint64_t rip = 0x0E10657B, rsp = 0x0FD850A0, rflags = 0x2;

  static GuestStart ovmf_guest() {
    GuestStart g{};
    g.cr0 = 0x80010033;
    g.cr3 = 0x0FA01000;
    g.cr4 = 0x668;
    g.dr7 = 0x400;
    g.efer = 0x500;  // LME LMA
    g.pat = 0x0007040600070406ull;
    g.gdtr_base = 0x0F9EE000;
    g.gdtr_limit = sizeof(gdt) - 1;
    g.idtr_base = 0x0F2A4018;
    g.idtr_limit = 0xFFF;
    g.cs = 0x38;
    g.ss = g.ds = g.es = g.fs = g.gs = 0x30;
    return g;
  }
};

// The host state the back end gives every VM exit (vmx/hw/launch.cpp,
// this_host_state), with addresses in a plausible pool: CR0/CR4 as VMXON
// left them (fixed bits applied, CR4.OSXSAVE where XSAVE exists, VMXE),
// the firmware's EFER and PAT, microhv's GDT with its TSS at 0x40.
inline HostState launch_host_state(const VmxCapabilities& caps, const FirmwareState& fw) {
  HostState h{};
  h.cr0 = apply_fixed(fw.guest.cr0, caps.cr0_fixed0, caps.cr0_fixed1);
  h.cr3 = 0x0DEF2000;
  h.cr4 = apply_fixed(fw.guest.cr4 | (caps.cr4_fixed1 & arch::cr4::kOsxsave), caps.cr4_fixed0,
                      caps.cr4_fixed1) |
          arch::cr4::kVmxe;
  h.cs = fw.guest.cs;
  h.tr = 0x40;
  h.tr_base = 0x0DEED000;
  h.gdtr_base = 0x0DEEB000;
  h.idtr_base = 0x0DEEC000;
  h.gs_base = 0x0DE7A000;
  h.efer = fw.guest.efer;
  h.pat = fw.guest.pat;
  h.rsp = 0x0DEE8F40;
  h.rip = 0x0DE65000;
  return h;
}

// The launch VMCS as microhv writes it: the portable write_initial_vmcs
// (vmx/vmcs_setup.hpp) with the values vmx/hw/launch.cpp hands it.
inline void write_launch_vmcs(VmcsAccess& v, const VmxCapabilities& caps,
                              const FirmwareState& fw = {}, uint32_t vp_index = 0) {
  const bool ia32e = (fw.guest.efer & arch::efer::kLma) != 0;
  const ControlSet ctl = compute_controls(caps, ia32e);
  const VmcsSetup setup{ctl,
                        caps,
                        0x0DEE0000,
                        0x0DEE1000 + 0x2000ull * vp_index,
                        0x0DEE2000,
                        make_eptp(0x0DF2B000, caps.ept_vpid_cap),
                        vpid_of(vp_index),
                        launch_host_state(caps, fw),
                        fw.guest,
                        fw.rsp,
                        fw.rip,
                        fw.rflags,
                        fw.gdt};
  REQUIRE(write_initial_vmcs(v, setup));
}

// The injection writes before every entry (vmx/entry_prep.hpp), with the
// VP's cached controls taken from the image as the back end caches them.
// Whether the entry field holds a valid event is taken from the image too
// (the fake keeps what was written; the back end remembers its last write).
inline void write_injection(VmcsAccess& v, PendingEvents& events) {
  uint64_t proc = 0, activity = 0, entry_info = 0;
  REQUIRE(v.read(Field::kProcControls, &proc));
  REQUIRE(v.read(Field::kGuestActivityState, &activity));
  REQUIRE(v.read(Field::kEntryInterruptionInfo, &entry_info));
  EntryEventState state{false, static_cast<uint32_t>(proc), (entry_info & intr_info::kValid) != 0};
  uint32_t act = static_cast<uint32_t>(activity);
  REQUIRE(write_entry_events(v, events, state, act));
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
  return v.rule == Rule::kFieldNeverWritten && v.field == Field::kXssExitingBitmap;
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
