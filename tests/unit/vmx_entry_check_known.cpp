// Rules microhv breaks today on some capability sets: each test encodes the
// SDM rule, fails on the sets named in its comment, and is tagged
// [!mayfail] until phase B of issue 10 fixes it on the restructured tree
// (then the tag goes). Each names its item of issue 10.
#include "tests/unit/vmx_entry_check_ept_memory.hpp"
#include "tests/unit/vmx_entry_check_rig.hpp"

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::test;

namespace {

// TEMPORARY mirrors of choices the back end makes today, until they come
// from decide_features():
// - the guest EPT is built with the largest leaf EPT_VPID_CAP allows
//   (vmx/hw/root.cpp, build_ept: ept_leaf_level());
unsigned host_ept_leaf_level_today(const VmxCapabilities& caps) {
  return ept_leaf_level(caps.ept_vpid_cap);
}
// - launch_this_cpu() (vmx/hw/launch.cpp) issues INVEPT type 2 (all contexts)
//   unconditionally;
constexpr InveptType kLaunchInveptToday = InveptType::kAllContexts;
// - read_capabilities() (vmx/hw/cpu_setup.cpp) reads IA32_VMX_EPT_VPID_CAP
//   whenever the primary controls allow secondary controls.
bool reads_ept_vpid_cap_today(const VmxCapabilities& m) {
  return control_allowed(m.procbased, proc::kActivateSecondary);
}

bool invept_supported(uint64_t ept_vpid_cap, InveptType t) {
  const uint64_t bit = t == InveptType::kSingleContext ? ept_cap::kInveptSingle
                       : t == InveptType::kAllContexts ? ept_cap::kInveptAll
                                                       : 0;
  return (ept_vpid_cap & ept_cap::kInvept) != 0 && (ept_vpid_cap & bit) != 0;
}

}  // namespace

// Issue 10: "the XSS-exiting bitmap is never written although XSAVES is
// enabled". SDM Vol. 3C 25.11.3: every field the processor uses must be
// written; with "enable XSAVES/XRSTORS" the bitmap decides which XSAVES
// exit (26.1.3). Fails on every set with XSAVES: real Coffee Lake, Bochs
// skylake_x, cnl, icelake_u, tigerlake, QEMU SapphireRapids.
TEST_CASE("known: the launch VMCS writes every field its controls use", "[!mayfail]") {
  for_each_usable_set([](const MatrixEntry& e) {
    ImageVmcs v;
    write_launch_vmcs(v, e.caps.msrs);
    const CheckReport r = check_vm_entry(v.image, e.caps);
    INFO(describe(r));
    CHECK(r.ok());
  });
}

// Issue 10: "wait-for-SIPI activity state used without checking
// IA32_VMX_MISC bit 8". SDM 27.3.1.5: the activity state must be one the
// processor supports. Fails on the QEMU/KVM named models (their MISC lists
// HLT only): VM entry after an emulated INIT fails there.
TEST_CASE("known: INIT on a processor without the wait-for-SIPI state", "[!mayfail]") {
  for_each_usable_set([](const MatrixEntry& e) {
    if (decide_features(e.caps.msrs).activity_wait_for_sipi) return;
    ImageVmcs v;
    write_launch_vmcs(v, e.caps.msrs);
    v.write(Field::kXssExitingBitmap, 0);
    EntryCheckCpu cpu;
    GuestRegs regs{};
    PendingEvents events;
    REQUIRE(apply_init_state(v, cpu, e.caps.msrs, /*bsp=*/false, regs, events));
    const CheckReport r = check_vm_entry(v.image, e.caps);
    INFO(describe(r));
    CHECK(r.ok());
  });
}

// Issue 10: "1 GiB EPT pages used without checking IA32_VMX_EPT_VPID_CAP".
// SDM 29.3.3.1: a PDPTE with bit 7 set is an EPT misconfiguration unless
// EPT_VPID_CAP bit 17 is 1. Fails on real Ivy Bridge and Bochs arrandale,
// sandy_bridge and ivy_bridge (2 MiB pages only).
TEST_CASE("known: the guest EPT as the host builds it today", "[!mayfail]") {
  for_each_usable_set([](const MatrixEntry& e) {
    EptArena mem;
    const uint64_t eptp = build_test_guest_ept(mem, host_ept_leaf_level_today(e.caps.msrs), e.caps);
    const EptCheckReport r = check_ept(mem, eptp, e.caps);
    INFO(describe(r));
    CHECK(r.ok());
  });
}

// Issue 10: "invept(2, 0) issued unconditionally though only single-context
// may exist". SDM Vol. 3C 31.3 (INVEPT): an unsupported type fails with
// VM-instruction error 28. No set of the matrix lacks all-context INVEPT;
// the SDM allows one that does, which fails here.
TEST_CASE("known: the INVEPT type issued at launch is one the processor has", "[!mayfail]") {
  VmxCapabilities single_only = find_capability_set("bochs:tigerlake")->caps.msrs;
  single_only.ept_vpid_cap &= ~ept_cap::kInveptAll;
  REQUIRE(decide_features(single_only).usable());
  CHECK(decide_features(single_only).invept == InveptType::kSingleContext);
  CHECK(invept_supported(single_only.ept_vpid_cap, kLaunchInveptToday));
  for_each_usable_set([](const MatrixEntry& e) {
    CHECK(invept_supported(e.caps.msrs.ept_vpid_cap, kLaunchInveptToday));
  });
}

// Issue 10: "PAE PDPTEs never loaded on an emulated CR0 write that enters
// PAE paging". SDM 27.3.1.6 / 27.3.2.4: with EPT, VM entry into PAE paging
// takes the PDPTEs from the VMCS, so the handler must load them from the
// guest's CR3. Fails on every set.
TEST_CASE("known: MOV to CR0 entering PAE paging loads the PDPTEs", "[!mayfail]") {
  for_each_usable_set([](const MatrixEntry& e) {
    ImageVmcs v;
    write_launch_vmcs(v, e.caps.msrs);
    v.write(Field::kXssExitingBitmap, 0);
    // A 32-bit protected-mode guest with CR4.PAE, not yet paging.
    v.write(Field::kEntryControls,
            v.read(Field::kEntryControls) & ~static_cast<uint64_t>(entry_ctl::kIa32eModeGuest));
    v.write(Field::kGuestEfer, 0);
    v.write(Field::kGuestCr0, guest_cr0(e.caps.msrs, 0x31, true));
    v.write(Field::kCr0ReadShadow, 0x11);
    v.write(Field::kGuestCr4, 0x20 | e.caps.msrs.cr4_fixed0);
    v.write(Field::kCr4ReadShadow, 0x20);
    v.write(Field::kGuestCsSel, 0x10);
    v.write(Field::kGuestCsAccess, 0xC09B);
    v.write(Field::kGuestRip, 0x7C00);
    GuestRegs regs{};
    regs.rax = 0x80000031;  // PG | NE | ET | PE
    EntryCheckCpu cpu;
    EntryCheckCore core;
    PendingEvents events;
    ExitContext ctx{exit_reason::kCrAccess, 0, regs, v, cpu, core, events, e.caps.msrs};
    REQUIRE(dispatch_exit(ctx) == ExitAction::kAdvance);
    const CheckReport r = check_vm_entry(v.image, e.caps);
    INFO(describe(r));
    CHECK(r.ok());
  });
}

// Not in the list, found by the capability matrix: read_capabilities()
// (vmx/hw/cpu_setup.cpp) reads IA32_VMX_EPT_VPID_CAP on processors whose
// PROCBASED_CTLS2 allows neither EPT nor VPID, where the MSR does not exist
// (SDM Vol. 3D A.10) and RDMSR faults: under Bochs core2_penryn_t9600
// microhv stops with "host exception: vector 13" (RCX = 0x48C) instead of
// printing its refusal. Fails on Bochs core2_penryn_t9600, bx_generic and
// QEMU Penryn. Phase B: read it only when present_capability_msrs() says so.
TEST_CASE("known: capability MSRs are read only where they exist", "[!mayfail]") {
  for (uint32_t i = 0; i < capability_matrix_size(); ++i) {
    const MatrixEntry& e = capability_matrix(i);
    const VmxCapabilities& m = e.caps.msrs;
    INFO(e.name);
    CHECK(reads_ept_vpid_cap_today(m) ==
          present_capability_msrs(m.basic, m.procbased, m.procbased2).ept_vpid_cap);
  }
}
