#include "vmx/entry_check/vmcs_image.hpp"

namespace microhv::vmx {

// Sorted by encoding (checked below); names follow SDM Vol. 3D Appendix B.
constexpr FieldInfo kFields[] = {
    {Field::kVpid, "virtual-processor identifier"},
    {Field::kPostedInterruptVector, "posted-interrupt notification vector"},
    {Field::kGuestEsSel, "guest ES selector"},
    {Field::kGuestCsSel, "guest CS selector"},
    {Field::kGuestSsSel, "guest SS selector"},
    {Field::kGuestDsSel, "guest DS selector"},
    {Field::kGuestFsSel, "guest FS selector"},
    {Field::kGuestGsSel, "guest GS selector"},
    {Field::kGuestLdtrSel, "guest LDTR selector"},
    {Field::kGuestTrSel, "guest TR selector"},
    {Field::kHostEsSel, "host ES selector"},
    {Field::kHostCsSel, "host CS selector"},
    {Field::kHostSsSel, "host SS selector"},
    {Field::kHostDsSel, "host DS selector"},
    {Field::kHostFsSel, "host FS selector"},
    {Field::kHostGsSel, "host GS selector"},
    {Field::kHostTrSel, "host TR selector"},
    {Field::kIoBitmapA, "I/O bitmap A address"},
    {Field::kIoBitmapB, "I/O bitmap B address"},
    {Field::kMsrBitmap, "MSR-bitmap address"},
    {Field::kExitMsrStoreAddr, "VM-exit MSR-store address"},
    {Field::kExitMsrLoadAddr, "VM-exit MSR-load address"},
    {Field::kEntryMsrLoadAddr, "VM-entry MSR-load address"},
    {Field::kExecutiveVmcsPointer, "executive-VMCS pointer"},
    {Field::kTscOffset, "TSC offset"},
    {Field::kVirtualApicAddress, "virtual-APIC address"},
    {Field::kApicAccessAddress, "APIC-access address"},
    {Field::kVmFunctionControls, "VM-function controls"},
    {Field::kEptPointer, "EPT pointer"},
    {Field::kXssExitingBitmap, "XSS-exiting bitmap"},
    {Field::kTertiaryControls, "tertiary processor-based VM-execution controls"},
    {Field::kGuestPhysicalAddress, "guest-physical address"},
    {Field::kVmcsLinkPointer, "VMCS link pointer"},
    {Field::kGuestDebugctl, "guest IA32_DEBUGCTL"},
    {Field::kGuestPat, "guest IA32_PAT"},
    {Field::kGuestEfer, "guest IA32_EFER"},
    {Field::kGuestPerfGlobalCtrl, "guest IA32_PERF_GLOBAL_CTRL"},
    {Field::kGuestPdpte0, "guest PDPTE0"},
    {Field::kGuestPdpte1, "guest PDPTE1"},
    {Field::kGuestPdpte2, "guest PDPTE2"},
    {Field::kGuestPdpte3, "guest PDPTE3"},
    {Field::kHostPat, "host IA32_PAT"},
    {Field::kHostEfer, "host IA32_EFER"},
    {Field::kHostPerfGlobalCtrl, "host IA32_PERF_GLOBAL_CTRL"},
    {Field::kPinControls, "pin-based VM-execution controls"},
    {Field::kProcControls, "primary processor-based VM-execution controls"},
    {Field::kExceptionBitmap, "exception bitmap"},
    {Field::kPfErrorCodeMask, "page-fault error-code mask"},
    {Field::kPfErrorCodeMatch, "page-fault error-code match"},
    {Field::kCr3TargetCount, "CR3-target count"},
    {Field::kExitControls, "VM-exit controls"},
    {Field::kExitMsrStoreCount, "VM-exit MSR-store count"},
    {Field::kExitMsrLoadCount, "VM-exit MSR-load count"},
    {Field::kEntryControls, "VM-entry controls"},
    {Field::kEntryMsrLoadCount, "VM-entry MSR-load count"},
    {Field::kEntryInterruptionInfo, "VM-entry interruption-information field"},
    {Field::kEntryExceptionErrorCode, "VM-entry exception error code"},
    {Field::kEntryInstructionLength, "VM-entry instruction length"},
    {Field::kTprThreshold, "TPR threshold"},
    {Field::kProcControls2, "secondary processor-based VM-execution controls"},
    {Field::kVmInstructionError, "VM-instruction error"},
    {Field::kExitReason, "exit reason"},
    {Field::kExitInterruptionInfo, "VM-exit interruption information"},
    {Field::kExitInterruptionErrorCode, "VM-exit interruption error code"},
    {Field::kIdtVectoringInfo, "IDT-vectoring information"},
    {Field::kIdtVectoringErrorCode, "IDT-vectoring error code"},
    {Field::kExitInstructionLength, "VM-exit instruction length"},
    {Field::kExitInstructionInfo, "VM-exit instruction information"},
    {Field::kGuestEsLimit, "guest ES limit"},
    {Field::kGuestCsLimit, "guest CS limit"},
    {Field::kGuestSsLimit, "guest SS limit"},
    {Field::kGuestDsLimit, "guest DS limit"},
    {Field::kGuestFsLimit, "guest FS limit"},
    {Field::kGuestGsLimit, "guest GS limit"},
    {Field::kGuestLdtrLimit, "guest LDTR limit"},
    {Field::kGuestTrLimit, "guest TR limit"},
    {Field::kGuestGdtrLimit, "guest GDTR limit"},
    {Field::kGuestIdtrLimit, "guest IDTR limit"},
    {Field::kGuestEsAccess, "guest ES access rights"},
    {Field::kGuestCsAccess, "guest CS access rights"},
    {Field::kGuestSsAccess, "guest SS access rights"},
    {Field::kGuestDsAccess, "guest DS access rights"},
    {Field::kGuestFsAccess, "guest FS access rights"},
    {Field::kGuestGsAccess, "guest GS access rights"},
    {Field::kGuestLdtrAccess, "guest LDTR access rights"},
    {Field::kGuestTrAccess, "guest TR access rights"},
    {Field::kGuestInterruptibility, "guest interruptibility state"},
    {Field::kGuestActivityState, "guest activity state"},
    {Field::kGuestSmbase, "guest SMBASE"},
    {Field::kGuestSysenterCs, "guest IA32_SYSENTER_CS"},
    {Field::kPreemptionTimerValue, "VMX-preemption timer value"},
    {Field::kHostSysenterCs, "host IA32_SYSENTER_CS"},
    {Field::kCr0Mask, "CR0 guest/host mask"},
    {Field::kCr4Mask, "CR4 guest/host mask"},
    {Field::kCr0ReadShadow, "CR0 read shadow"},
    {Field::kCr4ReadShadow, "CR4 read shadow"},
    {Field::kCr3Target0, "CR3-target value 0"},
    {Field::kCr3Target1, "CR3-target value 1"},
    {Field::kCr3Target2, "CR3-target value 2"},
    {Field::kCr3Target3, "CR3-target value 3"},
    {Field::kExitQualification, "exit qualification"},
    {Field::kGuestLinearAddress, "guest-linear address"},
    {Field::kGuestCr0, "guest CR0"},
    {Field::kGuestCr3, "guest CR3"},
    {Field::kGuestCr4, "guest CR4"},
    {Field::kGuestEsBase, "guest ES base"},
    {Field::kGuestCsBase, "guest CS base"},
    {Field::kGuestSsBase, "guest SS base"},
    {Field::kGuestDsBase, "guest DS base"},
    {Field::kGuestFsBase, "guest FS base"},
    {Field::kGuestGsBase, "guest GS base"},
    {Field::kGuestLdtrBase, "guest LDTR base"},
    {Field::kGuestTrBase, "guest TR base"},
    {Field::kGuestGdtrBase, "guest GDTR base"},
    {Field::kGuestIdtrBase, "guest IDTR base"},
    {Field::kGuestDr7, "guest DR7"},
    {Field::kGuestRsp, "guest RSP"},
    {Field::kGuestRip, "guest RIP"},
    {Field::kGuestRflags, "guest RFLAGS"},
    {Field::kGuestPendingDebug, "guest pending debug exceptions"},
    {Field::kGuestSysenterEsp, "guest IA32_SYSENTER_ESP"},
    {Field::kGuestSysenterEip, "guest IA32_SYSENTER_EIP"},
    {Field::kHostCr0, "host CR0"},
    {Field::kHostCr3, "host CR3"},
    {Field::kHostCr4, "host CR4"},
    {Field::kHostFsBase, "host FS base"},
    {Field::kHostGsBase, "host GS base"},
    {Field::kHostTrBase, "host TR base"},
    {Field::kHostGdtrBase, "host GDTR base"},
    {Field::kHostIdtrBase, "host IDTR base"},
    {Field::kHostSysenterEsp, "host IA32_SYSENTER_ESP"},
    {Field::kHostSysenterEip, "host IA32_SYSENTER_EIP"},
    {Field::kHostRsp, "host RSP"},
    {Field::kHostRip, "host RIP"},
};

constexpr uint32_t kFieldCount = sizeof(kFields) / sizeof(kFields[0]);
static_assert(kFieldCount <= VmcsImage::kCapacity, "VmcsImage::kCapacity is too small");

constexpr bool sorted_by_encoding() {
  for (uint32_t i = 1; i < kFieldCount; ++i) {
    if (encoding(kFields[i - 1].field) >= encoding(kFields[i].field)) return false;
  }
  return true;
}
static_assert(sorted_by_encoding(), "kFields must be sorted by encoding (binary search)");

uint32_t image_field_count() {
  return kFieldCount;
}

const FieldInfo& image_field(uint32_t index) {
  return kFields[index < kFieldCount ? index : 0];
}

int image_field_index(Field f) {
  uint32_t lo = 0, hi = kFieldCount;
  const uint32_t want = encoding(f);
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    const uint32_t e = encoding(kFields[mid].field);
    if (e == want) return static_cast<int>(mid);
    if (e < want) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return -1;
}

const char* field_name(Field f) {
  const int i = image_field_index(f);
  return i < 0 ? "unknown field" : kFields[i].name;
}

bool VmcsImage::write(Field f, uint64_t value) {
  const int i = image_field_index(f);
  if (i < 0) return false;
  value_[i] = value;
  written_[i] = true;
  return true;
}

bool VmcsImage::written(Field f) const {
  const int i = image_field_index(f);
  return i >= 0 && written_[i];
}

uint64_t VmcsImage::read(Field f) const {
  const int i = image_field_index(f);
  return i < 0 ? 0 : value_[i];
}

}  // namespace microhv::vmx
