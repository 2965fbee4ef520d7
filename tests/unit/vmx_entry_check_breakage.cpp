// The checker can fail: starting from a VMCS that passes, each entry breaks
// one SDM rule on purpose and requires that exact rule to be reported (and
// a few legal variants to stay clean). Every rule the checker knows is
// covered by at least one breakage.
#include <set>

#include "tests/unit/vmx_entry_check_rig.hpp"

using namespace microhv;
using namespace microhv::vmx;
using namespace microhv::test;

namespace {

enum class Base { kLaunch, kRealMode, kProtected32, kPaePaging };

void set_bits(VmcsImage& v, Field f, uint64_t bits) {
  v.write(f, v.read(f) | bits);
}
void clear_bits(VmcsImage& v, Field f, uint64_t bits) {
  v.write(f, v.read(f) & ~bits);
}

// A VMCS that passes the checker on `caps`, in the requested guest mode.
ImageVmcs base_vmcs(const CapabilitySet& caps, Base base) {
  ImageVmcs v;
  write_launch_vmcs(v, caps.msrs);
  v.write(Field::kXssExitingBitmap, 0);  // the known issue is not what these tests are about
  if (base == Base::kRealMode) {
    EntryCheckCpu cpu;
    GuestRegs regs{};
    PendingEvents events;
    REQUIRE(apply_init_state(v, cpu, caps.msrs, true, regs, events));
  } else if (base == Base::kProtected32 || base == Base::kPaePaging) {
    const bool pae = base == Base::kPaePaging;
    clear_bits(v.image, Field::kEntryControls, entry_ctl::kIa32eModeGuest);
    v.write(Field::kGuestEfer, 0);
    v.write(Field::kGuestCr0, guest_cr0(caps.msrs, pae ? 0x80000011 : 0x11, true));
    v.write(Field::kGuestCr4, (pae ? 0x20 : 0) | caps.msrs.cr4_fixed0);
    v.write(Field::kGuestCsSel, 0x10);
    v.write(Field::kGuestCsAccess, 0xC09B);
    v.write(Field::kGuestRip, 0x7C00);
    for (Field f :
         {Field::kGuestPdpte0, Field::kGuestPdpte1, Field::kGuestPdpte2, Field::kGuestPdpte3}) {
      v.write(f, 0);
    }
  }
  return v;
}

struct Breakage {
  const char* what;
  const char* set;
  Base base;
  void (*mutate)(VmcsImage&);
  Rule rule;
};

constexpr const char* kTiger = "bochs:tigerlake";            // BASIC[56] = 1, TRUE_* MSRs
constexpr const char* kSkx = "bochs:corei7_skylake_x";       // BASIC[56] = 0
constexpr const char* kArr = "bochs:corei5_arrandale_m520";  // no 1G EPT, MISC[30] = 0
constexpr const char* kQemu = "qemu-kvm:Skylake-Server";     // no wait-for-SIPI
constexpr uint32_t kGp = make_intr_info(vector::kGp, EventType::kHardwareException, true);

const Breakage kBreakages[] = {
    // ---- 27.2.1 controls
    {"reserved pin-based bit 8 set", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kPinControls, 1u << 8); }, Rule::kPinControls},
    {"default1 pin-based bit 1 cleared", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kPinControls, 1u << 1); }, Rule::kPinControls},
    {"primary control bit 0 (reserved) set", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kProcControls, 1u); }, Rule::kProcControls},
    {"XSAVES control where PROCBASED_CTLS2 forbids it", kArr, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kProcControls2, proc2::kEnableXsaves); },
     Rule::kProc2Controls},
    {"CR3-target count 5", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kCr3TargetCount, 5); }, Rule::kCr3TargetCount},
    {"I/O bitmap A not page aligned", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kIoBitmapA, 0x0DEE1800); }, Rule::kIoBitmapAddress},
    {"MSR bitmap above MAXPHYADDR", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kMsrBitmap, 1ull << 40); }, Rule::kMsrBitmapAddress},
    {"virtual NMIs without NMI exiting", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kPinControls, pin::kNmiExiting); },
     Rule::kVirtualNmisNeedNmiExiting},
    {"NMI-window exiting without virtual NMIs", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       clear_bits(v, Field::kPinControls, pin::kVirtualNmis);
       set_bits(v, Field::kProcControls, proc::kNmiWindowExiting);
     },
     Rule::kNmiWindowNeedsVirtualNmis},
    {"VPID 0 with enable VPID", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kVpid, 0); }, Rule::kVpidZero},
    {"EPTP memory type WC", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kEptPointer, (v.read(Field::kEptPointer) & ~7ull) | 1); },
     Rule::kEptpMemoryType},
    {"EPTP 5-level walk without EPT_VPID_CAP bit 7", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kEptPointer, (v.read(Field::kEptPointer) & ~0x38ull) | 0x20); },
     Rule::kEptpWalkLength},
    {"EPTP A/D flags without EPT_VPID_CAP bit 21", kArr, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kEptPointer, 1u << 6); }, Rule::kEptpAccessDirty},
    {"EPTP reserved bit 8", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kEptPointer, 1u << 8); }, Rule::kEptpReservedBits},
    {"EPTP above MAXPHYADDR", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kEptPointer, 1ull << 45); }, Rule::kEptpReservedBits},
    {"unrestricted guest without EPT", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kProcControls2, proc2::kEnableEpt); },
     Rule::kUnrestrictedNeedsEpt},
    {"reserved VM-exit control bit 31", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kExitControls, 1u << 31); }, Rule::kExitControls},
    {"save preemption timer without the timer", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kExitControls, 1u << 22); },
     Rule::kSavePreemptionNeedsTimer},
    {"VM-exit MSR-store area not 16-byte aligned", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kExitMsrStoreCount, 1);
       v.write(Field::kExitMsrStoreAddr, 0x1008);
     },
     Rule::kExitMsrAreas},
    {"reserved VM-entry control bit 31", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kEntryControls, 1u << 31); }, Rule::kEntryControls},
    {"entry to SMM", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kEntryControls, entry_ctl::kEntryToSmm); },
     Rule::kEntryOutsideSmm},
    {"VM-entry MSR-load area ends above MAXPHYADDR", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryMsrLoadCount, 2);
       v.write(Field::kEntryMsrLoadAddr, (1ull << 40) - 16);
     },
     Rule::kEntryMsrArea},
    // ---- 27.2.1.3 event injection
    {"injection type 1 (reserved)", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kEntryInterruptionInfo, intr_info::kValid | (1u << 8) | 32); },
     Rule::kInjectionType},
    {"NMI injected with vector 3", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kEntryInterruptionInfo, make_intr_info(3, EventType::kNmi, false)); },
     Rule::kInjectionVector},
    {"hardware exception vector 32", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, make_intr_info(32, EventType::kHardwareException, false));
     },
     Rule::kInjectionVector},
    {"#UD with an error code (BASIC[56] = 0)", kSkx, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, make_intr_info(vector::kUd, EventType::kHardwareException, true));
       v.write(Field::kEntryExceptionErrorCode, 0);
     },
     Rule::kInjectionErrorCodeBit},
    {"#GP without its error code (BASIC[56] = 0)", kSkx, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, make_intr_info(vector::kGp, EventType::kHardwareException, false));
     },
     Rule::kInjectionErrorCodeBit},
    {"error code in real mode", kTiger, Base::kRealMode,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, kGp);
       v.write(Field::kEntryExceptionErrorCode, 0);
     },
     Rule::kInjectionErrorCodeBit},
    {"error code bit 16 set", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, kGp);
       v.write(Field::kEntryExceptionErrorCode, 0x10000);
     },
     Rule::kInjectionErrorCodeValue},
    {"interruption-information bit 12 set", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, kGp | (1u << 12));
       v.write(Field::kEntryExceptionErrorCode, 0);
     },
     Rule::kInjectionReservedBits},
    {"INT n injected with length 0 (MISC[30] = 0)", kArr, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, make_intr_info(0x80, EventType::kSoftwareInterrupt, false));
       v.write(Field::kEntryInstructionLength, 0);
     },
     Rule::kInjectionLength},
    // ---- 27.2.2 - 27.2.4 host state
    {"host CR0 without PE", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kHostCr0, 1); }, Rule::kHostCr0},
    {"host CR4 without VMXE", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kHostCr4, arch::cr4::kVmxe); }, Rule::kHostCr4},
    {"host CR3 above MAXPHYADDR", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kHostCr3, 1ull << 44); }, Rule::kHostCr3},
    {"host SYSENTER_EIP not canonical", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kHostSysenterEip, 0x0000800000000000); }, Rule::kHostSysenter},
    {"host PAT entry 2", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kHostPat, 0x0007040600070402); }, Rule::kHostPat},
    {"host EFER without LMA", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kHostEfer, 1u << 10); }, Rule::kHostEfer},
    {"host CS selector 0", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kHostCsSel, 0); }, Rule::kHostSelectors},
    {"host DS selector with RPL 3", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kHostDsSel, 0x33); }, Rule::kHostSelectors},
    {"host GS base not canonical", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kHostGsBase, 0x00F0000000000000); }, Rule::kHostBases},
    {"host address-space size 0", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kExitControls, exit_ctl::kHostAddressSpaceSize); },
     Rule::kHostAddressSpace},
    {"host RIP not canonical", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kHostRip, 0x8000000000000000); }, Rule::kHostAddressSpace},
    // ---- 27.3.1.1 guest CRs, DRs, MSRs
    {"guest CR0.PG without PE", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kGuestCr0, 1); }, Rule::kGuestCr0PgWithoutPe},
    {"guest CR0 without NE (CR0_FIXED0)", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kGuestCr0, arch::cr0::kNe); }, Rule::kGuestCr0},
    {"guest CR4 without VMXE (CR4_FIXED0)", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kGuestCr4, arch::cr4::kVmxe); }, Rule::kGuestCr4},
    {"IA-32e mode guest without CR4.PAE", kTiger, Base::kLaunch,
     [](VmcsImage& v) { clear_bits(v, Field::kGuestCr4, 0x20); }, Rule::kGuestIa32eMode},
    {"CR4.PCIDE outside IA-32e mode", kTiger, Base::kProtected32,
     [](VmcsImage& v) { set_bits(v, Field::kGuestCr4, 1u << 17); }, Rule::kGuestIa32eMode},
    {"guest CR3 above MAXPHYADDR", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestCr3, 1ull << 41); }, Rule::kGuestCr3},
    {"guest DEBUGCTL bit 2 (reserved)", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestDebugctl, 4); }, Rule::kGuestDebugctl},
    {"guest DR7 bit 32", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestDr7, 1ull << 32); }, Rule::kGuestDr7},
    {"guest SYSENTER_ESP not canonical", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestSysenterEsp, 0x0000900000000000); }, Rule::kGuestSysenter},
    {"guest PAT entry 3", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestPat, 0x0007040600070403); }, Rule::kGuestPat},
    {"guest EFER.LMA without IA-32e mode guest", kTiger, Base::kProtected32,
     [](VmcsImage& v) { v.write(Field::kGuestEfer, 0x500); }, Rule::kGuestEfer},
    // ---- 27.3.1.2 segments
    {"TR type not busy (available 64-bit TSS)", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestTrAccess, 0x89); }, Rule::kGuestTrAccess},
    {"TR unusable", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestTrAccess, 1u << 16); }, Rule::kGuestTrAccess},
    {"TR selector with TI", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestTrSel, 4); }, Rule::kGuestSelectors},
    {"usable LDTR of type 3", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestLdtrSel, 0x48);
       v.write(Field::kGuestLdtrAccess, 0x83);
     },
     Rule::kGuestLdtrAccess},
    {"CS.L and CS.D both set", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestCsAccess, 1u << 14); }, Rule::kGuestCsAccess},
    {"non-conforming CS.DPL 3 with SS.DPL 0", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestCsAccess, 3u << 5); }, Rule::kGuestCsAccess},
    {"SS.DPL 3 in real mode (unrestricted guest)", kTiger, Base::kRealMode,
     [](VmcsImage& v) { v.write(Field::kGuestSsAccess, 0xF3); }, Rule::kGuestSsAccess},
    {"SS.DPL != SS.RPL without unrestricted guest", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       clear_bits(v, Field::kProcControls2, proc2::kUnrestrictedGuest);
       v.write(Field::kGuestSsSel, 0x33);
       v.write(Field::kGuestCsSel, 0x3B);
       v.write(Field::kGuestCsAccess, 0xA0FB);
     },
     Rule::kGuestSsAccess},
    {"data segment not accessed", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestDsAccess, 0xC092); }, Rule::kGuestDataAccess},
    {"G set with a limit not ending in FFFh", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestEsLimit, 0x1000); }, Rule::kGuestDataAccess},
    {"FS base not canonical", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestFsBase, 0x1234000000000000); }, Rule::kGuestSegmentBase},
    {"virtual-8086 with flat protected-mode segments", kTiger, Base::kProtected32,
     [](VmcsImage& v) { set_bits(v, Field::kGuestRflags, 1u << 17); }, Rule::kGuestVirtual8086},
    // ---- 27.3.1.3 - 27.3.1.4
    {"GDTR limit above FFFFh", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestGdtrLimit, 0x10000); }, Rule::kGuestDescriptorTables},
    {"64-bit RIP with bits 63:48 not equal", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestRip, 0x0001000000001000); }, Rule::kGuestRip},
    {"real-mode RIP above 4 GiB", kTiger, Base::kRealMode,
     [](VmcsImage& v) { v.write(Field::kGuestRip, 0x100000000); }, Rule::kGuestRip},
    {"RFLAGS bit 1 clear", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestRflags, 0); }, Rule::kGuestRflags},
    {"RFLAGS bit 15 set", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestRflags, 1u << 15); }, Rule::kGuestRflags},
    {"RFLAGS.VM in IA-32e mode", kTiger, Base::kLaunch,
     [](VmcsImage& v) { set_bits(v, Field::kGuestRflags, 1u << 17); }, Rule::kGuestRflagsVm},
    {"external interrupt injected with IF = 0", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kEntryInterruptionInfo, make_intr_info(0x50, EventType::kExternalInterrupt, false));
     },
     Rule::kGuestRflagsIf},
    // ---- 27.3.1.5 non-register state
    {"wait-for-SIPI without IA32_VMX_MISC bit 8", kQemu, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestActivityState, activity::kWaitForSipi); },
     Rule::kActivityState},
    {"activity state 4", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestActivityState, 4); }, Rule::kActivityState},
    {"HLT with SS.DPL 3", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestActivityState, activity::kHlt);
       set_bits(v, Field::kGuestSsAccess, 3u << 5);
     },
     Rule::kActivityHltDpl},
    {"HLT under STI blocking", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestRflags, 0x202);
       v.write(Field::kGuestActivityState, activity::kHlt);
       v.write(Field::kGuestInterruptibility, interruptibility::kBlockingBySti);
     },
     Rule::kActivityWithBlocking},
    {"#GP injected into HLT", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestActivityState, activity::kHlt);
       v.write(Field::kEntryInterruptionInfo, kGp);
       v.write(Field::kEntryExceptionErrorCode, 0);
     },
     Rule::kActivityInjection},
    {"STI blocking with IF = 0", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestInterruptibility, interruptibility::kBlockingBySti); },
     Rule::kInterruptibility},
    {"blocking by STI and MOV SS", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestRflags, 0x202);
       v.write(Field::kGuestInterruptibility, 3);
     },
     Rule::kInterruptibility},
    {"SMI blocking outside SMM", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestInterruptibility, interruptibility::kBlockingBySmi); },
     Rule::kInterruptibility},
    {"interrupt injected under STI blocking", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestRflags, 0x202);
       v.write(Field::kGuestInterruptibility, interruptibility::kBlockingBySti);
       v.write(Field::kEntryInterruptionInfo, make_intr_info(0x50, EventType::kExternalInterrupt, false));
     },
     Rule::kInterruptibilityInjection},
    {"NMI injected under virtual-NMI blocking", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestInterruptibility, interruptibility::kBlockingByNmi);
       v.write(Field::kEntryInterruptionInfo, make_intr_info(vector::kNmi, EventType::kNmi, false));
     },
     Rule::kInterruptibilityInjection},
    {"pending debug exceptions bit 4 (reserved)", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kGuestPendingDebug, 0x10); }, Rule::kPendingDebug},
    {"TF under STI blocking without pending BS", kTiger, Base::kLaunch,
     [](VmcsImage& v) {
       v.write(Field::kGuestRflags, 0x302);
       v.write(Field::kGuestInterruptibility, interruptibility::kBlockingBySti);
     },
     Rule::kPendingDebug},
    {"VMCS link pointer not ~0", kTiger, Base::kLaunch,
     [](VmcsImage& v) { v.write(Field::kVmcsLinkPointer, 0); }, Rule::kVmcsLinkPointer},
    // ---- 27.3.1.6
    {"PAE PDPTE with reserved bit 1", kTiger, Base::kPaePaging,
     [](VmcsImage& v) { v.write(Field::kGuestPdpte0, 0x1003); }, Rule::kGuestPdptes},
};

const MatrixEntry& set_named(const char* name) {
  const MatrixEntry* e = find_capability_set(name);
  REQUIRE(e != nullptr);
  return *e;
}

}  // namespace

TEST_CASE("entry check breakage: the bases pass") {
  for (const char* set : {kTiger, kSkx, kArr, kQemu}) {
    const MatrixEntry& e = set_named(set);
    for (Base b : {Base::kLaunch, Base::kRealMode, Base::kProtected32, Base::kPaePaging}) {
      ImageVmcs v = base_vmcs(e.caps, b);
      const CheckReport r = check_vm_entry(v.image, e.caps);
      INFO(set << " base " << static_cast<int>(b) << "\n" << describe(r));
      CHECK(r.ok());
    }
  }
}

TEST_CASE("entry check breakage: each broken rule is reported by name") {
  std::set<Rule> covered;
  for (const Breakage& b : kBreakages) {
    const MatrixEntry& e = set_named(b.set);
    ImageVmcs v = base_vmcs(e.caps, b.base);
    b.mutate(v.image);
    const CheckReport r = check_vm_entry(v.image, e.caps);
    INFO(b.what << " on " << b.set << ": expected " << rule_name(b.rule) << "\n" << describe(r));
    CHECK(r.has(b.rule));
    covered.insert(b.rule);
  }
  // A field nobody wrote.
  const MatrixEntry& tiger = set_named(kTiger);
  ImageVmcs full = base_vmcs(tiger.caps, Base::kLaunch);
  VmcsImage partial;
  for (uint32_t i = 0; i < image_field_count(); ++i) {
    const Field f = image_field(i).field;
    if (f != Field::kGuestRip && full.image.written(f)) partial.write(f, full.image.read(f));
  }
  const CheckReport r = check_vm_entry(partial, tiger.caps);
  CHECK(r.has(Rule::kFieldNeverWritten, Field::kGuestRip));
  CHECK(r.count == 1);  // reported once, and the 0 it reads breaks nothing else here
  covered.insert(Rule::kFieldNeverWritten);

  for (unsigned i = 0; i < static_cast<unsigned>(Rule::kCount); ++i) {
    INFO("no breakage test for rule " << rule_name(static_cast<Rule>(i)));
    CHECK(covered.count(static_cast<Rule>(i)) == 1);
  }
}

TEST_CASE("entry check breakage: legal variants stay clean") {
  // With IA32_VMX_BASIC[56] (tigerlake) the error-code bit of a hardware
  // exception is not checked against the vector.
  const MatrixEntry& tiger = set_named(kTiger);
  ImageVmcs v = base_vmcs(tiger.caps, Base::kLaunch);
  v.write(Field::kEntryInterruptionInfo,
          make_intr_info(vector::kUd, EventType::kHardwareException, true));
  v.write(Field::kEntryExceptionErrorCode, 0);
  CHECK(check_vm_entry(v.image, tiger.caps).ok());
  // CR0.CD/NW are never checked; a conforming CS may have DPL <= SS.DPL;
  // NMI injection without blocking; SMI blocking cleared is the only legal form.
  ImageVmcs w = base_vmcs(tiger.caps, Base::kLaunch);
  w.write(Field::kGuestCr0, w.read(Field::kGuestCr0) | (1ull << 29));
  w.write(Field::kEntryInterruptionInfo, make_intr_info(vector::kNmi, EventType::kNmi, false));
  const CheckReport r = check_vm_entry(w.image, tiger.caps);
  INFO(describe(r));
  CHECK(r.ok());
}
