// The initial VMCS of a VP (vmx/vmcs_setup.cpp), inspected field by field
// against the VM-entry checks of the SDM (Vol. 3C 26.2-26.3) and microhv's
// policy (vmx/README.md "VMCS policy").
#include <catch2/catch.hpp>

#include "tests/unit/fake_vmcs.hpp"
#include "vmx/vmcs_setup.hpp"

using namespace microhv::vmx;

namespace {

// OVMF's GDT under Bochs: 0x30 data, 0x38 64-bit code.
constexpr uint64_t kGdt[] = {0,
                             0x00CF92000000FFFFull,
                             0x00CF9A000000FFFFull,
                             0x00CF9B000000FFFFull,
                             0x00CF93000000FFFFull,
                             0x00CF92000000FFFFull,
                             0x00CF93000000FFFFull,   // 0x30: data
                             0x00AF9B000000FFFFull};  // 0x38: 64-bit code

VmxCapabilities bochs_caps() {
  VmxCapabilities c{};
  c.cr0_fixed0 = 0x80000021;  // PG, NE, PE
  c.cr0_fixed1 = 0xFFFFFFFF;
  c.cr4_fixed0 = 0x2000;  // VMXE
  c.cr4_fixed1 = 0x3727FF;
  return c;
}

GuestStart firmware() {
  GuestStart g{};
  g.cr0 = 0x80010033;  // PG WP NE ET MP PE
  g.cr3 = 0x3C01000;
  g.cr4 = 0x668;
  g.efer = 0xD00;  // NXE LMA LME
  g.pat = 0x0007040600070406ull;
  g.gdtr_base = 0x3E9D000;
  g.gdtr_limit = sizeof(kGdt) - 1;
  g.idtr_base = 0x3E9E000;
  g.idtr_limit = 0xFFF;
  g.cs = 0x38;
  g.ss = g.ds = g.es = g.fs = g.gs = 0x30;
  g.ldtr = 0;
  g.tr = 0;  // OVMF runs without a TSS
  g.fs_base = 0x1234000;
  g.gs_base = 0x5678000;
  return g;
}

struct Setup {
  VmxCapabilities caps = bochs_caps();
  ControlSet controls{};
  GuestStart guest = firmware();
  microhv::test::FakeVmcs vmcs;
  bool ok = false;
  Setup() {
    controls.pin.value = 0x28;
    controls.proc.value = 0xB6006172;
    controls.proc2.value = 0xA2;
    controls.exit.value = 0x3EFFFF;
    controls.entry.value = 0xD3FF;
    HostState host{0x80050033,
                   0x7E000000,
                   0x22668,
                   0x38,
                   0x50,
                   0x7F000000,
                   0x7F001000,
                   0x7F002000,
                   0x7F003000,
                   0xD00,
                   0x0007040600070406ull,
                   0x7F100000,
                   0x7F200000};
    const VmcsSetup s{controls,          caps,       0x7F010000, 0x7F011000, 0x7F012000,
                      0x7F020000 | 0x1E, vpid_of(3), host,       guest,      0x3E90000,
                      0x3F00000,         0x202,      kGdt};
    ok = write_initial_vmcs(vmcs, s);
  }
};

}  // namespace

TEST_CASE("VMCS set-up: every field is written once; nothing is read") {
  Setup s;
  CHECK(s.ok);
  CHECK(s.vmcs.reads == 0);
  for (auto& [field, n] : s.vmcs.writes) {
    INFO("field 0x" << std::hex << encoding(field));
    CHECK(n == 1);
  }
  CHECK(s.vmcs.fields.size() >= 90);
}

TEST_CASE("VMCS set-up: controls, bitmaps, EPTP and a non-zero VPID as given") {
  Setup s;
  CHECK(s.vmcs.at(Field::kPinControls) == 0x28);
  CHECK(s.vmcs.at(Field::kProcControls) == 0xB6006172);
  CHECK(s.vmcs.at(Field::kProcControls2) == 0xA2);
  CHECK(s.vmcs.at(Field::kExitControls) == 0x3EFFFF);
  CHECK(s.vmcs.at(Field::kEntryControls) == 0xD3FF);
  CHECK(s.vmcs.at(Field::kMsrBitmap) == 0x7F010000);
  CHECK(s.vmcs.at(Field::kIoBitmapA) == 0x7F011000);
  CHECK(s.vmcs.at(Field::kIoBitmapB) == 0x7F012000);
  CHECK(s.vmcs.at(Field::kEptPointer) == (0x7F020000 | 0x1E));
  CHECK(s.vmcs.at(Field::kVpid) == 4);  // VPID 0 belongs to the host (SDM 28.1)
  // Exceptions do not exit; no MSR lists, no CR3 targets, nothing to inject.
  CHECK(s.vmcs.at(Field::kExceptionBitmap) == 0);
  CHECK(s.vmcs.at(Field::kExitMsrStoreCount) == 0);
  CHECK(s.vmcs.at(Field::kExitMsrLoadCount) == 0);
  CHECK(s.vmcs.at(Field::kEntryMsrLoadCount) == 0);
  CHECK(s.vmcs.at(Field::kCr3TargetCount) == 0);
  CHECK(s.vmcs.at(Field::kEntryInterruptionInfo) == 0);
  // No shadow VMCS: the link pointer must be all ones (SDM 26.3.1.5).
  CHECK(s.vmcs.at(Field::kVmcsLinkPointer) == ~0ull);
}

TEST_CASE("VMCS set-up: CR0/CR4 carry the VMX fixed bits, the shadows what the firmware had") {
  Setup s;
  CHECK(s.vmcs.at(Field::kGuestCr0) == (0x80010033 | 0x20));
  CHECK(s.vmcs.at(Field::kCr0ReadShadow) == 0x80010033);
  CHECK(s.vmcs.at(Field::kCr0Mask) == 0x20);  // NE; PE and PG are free (unrestricted guest)
  CHECK(s.vmcs.at(Field::kGuestCr4) == (0x668 | 0x2000));
  CHECK(s.vmcs.at(Field::kCr4ReadShadow) == 0x668);
  CHECK((s.vmcs.at(Field::kCr4Mask) & 0x2000) != 0);  // VMXE is microhv's
  CHECK(s.vmcs.at(Field::kGuestCr3) == 0x3C01000);
  CHECK(s.vmcs.at(Field::kGuestEfer) == 0xD00);
}

TEST_CASE("VMCS set-up: the guest resumes where microhv_virtualize was called, active") {
  Setup s;
  CHECK(s.vmcs.at(Field::kGuestRsp) == 0x3E90000);
  CHECK(s.vmcs.at(Field::kGuestRip) == 0x3F00000);
  CHECK(s.vmcs.at(Field::kGuestRflags) == 0x202);
  CHECK(s.vmcs.at(Field::kGuestActivityState) == 0);
  CHECK(s.vmcs.at(Field::kGuestInterruptibility) == 0);
  CHECK(s.vmcs.at(Field::kGuestPendingDebug) == 0);
}

TEST_CASE("VMCS set-up: segments come from the firmware's GDT; TR is a usable busy TSS") {
  Setup s;
  CHECK(s.vmcs.at(Field::kGuestCsSel) == 0x38);
  CHECK(s.vmcs.at(Field::kGuestCsAccess) == 0xA09B);  // G, L, P, S, code, accessed
  CHECK(s.vmcs.at(Field::kGuestCsLimit) == 0xFFFFFFFF);
  CHECK(s.vmcs.at(Field::kGuestSsAccess) == 0xC093);
  CHECK(s.vmcs.at(Field::kGuestDsSel) == 0x30);
  // 64-bit FS/GS bases are MSRs, not in the descriptors.
  CHECK(s.vmcs.at(Field::kGuestFsBase) == 0x1234000);
  CHECK(s.vmcs.at(Field::kGuestGsBase) == 0x5678000);
  // A null LDTR is unusable (bit 16).
  CHECK(s.vmcs.at(Field::kGuestLdtrAccess) == (1u << 16));
  // SDM 26.3.1.2: TR must be usable, present, type 11 (busy 64-bit TSS).
  const uint64_t tr = s.vmcs.at(Field::kGuestTrAccess);
  CHECK((tr & (1u << 16)) == 0);
  CHECK((tr & 0x80) != 0);
  CHECK((tr & 0xF) == 0xB);
  CHECK(s.vmcs.at(Field::kGuestTrLimit) == 0x67);
  CHECK(s.vmcs.at(Field::kGuestGdtrLimit) == sizeof(kGdt) - 1);
  CHECK(s.vmcs.at(Field::kGuestIdtrBase) == 0x3E9E000);
}

TEST_CASE("VMCS set-up: the host state returns to microhv's stub, stack, GDT, TSS and GS") {
  Setup s;
  CHECK(s.vmcs.at(Field::kHostCr3) == 0x7E000000);
  CHECK(s.vmcs.at(Field::kHostCsSel) == 0x38);
  CHECK(s.vmcs.at(Field::kHostTrSel) == 0x50);
  CHECK(s.vmcs.at(Field::kHostTrBase) == 0x7F000000);
  CHECK(s.vmcs.at(Field::kHostGdtrBase) == 0x7F001000);
  CHECK(s.vmcs.at(Field::kHostIdtrBase) == 0x7F002000);
  CHECK(s.vmcs.at(Field::kHostGsBase) == 0x7F003000);
  CHECK(s.vmcs.at(Field::kHostRsp) == 0x7F100000);
  CHECK(s.vmcs.at(Field::kHostRip) == 0x7F200000);
  // Null data selectors for the host (SDM 26.2.3: RPL and TI must be 0).
  for (Field f : {Field::kHostSsSel, Field::kHostDsSel, Field::kHostEsSel, Field::kHostFsSel,
                  Field::kHostGsSel}) {
    CHECK(s.vmcs.at(f) == 0);
  }
}
