// SDM Vol. 3C 27.3.1.5 (activity state, interruptibility, pending debug
// exceptions, VMCS link pointer) and 27.3.1.6 (PDPTEs under PAE paging).
#include "vmx/entry_check/check_context.hpp"

namespace microhv::vmx::entry_check {
namespace {

constexpr uint64_t kRflagsTf = 1ull << 8;
constexpr uint64_t kDebugctlBtf = 1ull << 1;
constexpr uint64_t kPendingBs = 1ull << 14;
constexpr uint64_t kPendingRtm = 1ull << 16;
constexpr uint32_t kBlockingSti = interruptibility::kBlockingBySti;
constexpr uint32_t kBlockingMovSs = interruptibility::kBlockingByMovSs;

EventType injected_type(uint32_t info) {
  return static_cast<EventType>((info & intr_info::kTypeMask) >> intr_info::kTypeShift);
}

// May an event of this type/vector be injected into `activity`?
bool injection_allowed(uint64_t activity, EventType type, uint32_t vector) {
  switch (activity) {
    case activity::kActive:
      return true;
    case activity::kHlt:
      return type == EventType::kExternalInterrupt || type == EventType::kNmi ||
             (type == EventType::kHardwareException &&
              (vector == vector::kDb || vector == vector::kMc)) ||
             (type == EventType::kOther && vector == 0);
    case activity::kShutdown:
      return type == EventType::kNmi ||
             (type == EventType::kHardwareException && vector == vector::kMc);
    default:  // wait-for-SIPI takes nothing
      return false;
  }
}

void check_activity(Context& c, uint64_t activity, uint32_t blocking) {
  const Field f = Field::kGuestActivityState;
  c.require(activity_state_supported(c.caps().msrs.misc, activity), Rule::kActivityState, f,
            activity);
  if (activity == activity::kHlt) {
    const uint64_t ss = c.read(Field::kGuestSsAccess);
    c.require(((ss >> 5) & 3) == 0, Rule::kActivityHltDpl, f, activity);
  }
  if ((blocking & (kBlockingSti | kBlockingMovSs)) != 0) {
    c.require(activity == activity::kActive, Rule::kActivityWithBlocking, f, activity);
  }
  if (c.injection != 0) {
    c.require(injection_allowed(activity, injected_type(c.injection),
                                c.injection & intr_info::kVectorMask),
              Rule::kActivityInjection, f, activity);
  }
}

void check_interruptibility(Context& c, uint32_t blocking, uint64_t rflags) {
  const Field f = Field::kGuestInterruptibility;
  // Bit 4 (enclave interruption) is legal where SGX exists; it excludes MOV SS.
  bool ok = (blocking & ~0x1Fu) == 0;
  ok = ok && (blocking & (kBlockingSti | kBlockingMovSs)) != (kBlockingSti | kBlockingMovSs);
  ok = ok && ((blocking & kBlockingSti) == 0 || (rflags & arch::rflags::kIf) != 0);
  // microhv never runs a guest in SMM, so SMI blocking must be clear.
  ok = ok && (blocking & interruptibility::kBlockingBySmi) == 0;
  ok = ok && ((blocking & (1u << 4)) == 0 || (blocking & kBlockingMovSs) == 0);
  c.require(ok, Rule::kInterruptibility, f, blocking);

  if (c.injection == 0) return;
  const EventType type = injected_type(c.injection);
  if (type == EventType::kExternalInterrupt) {
    c.require((blocking & (kBlockingSti | kBlockingMovSs)) == 0, Rule::kInterruptibilityInjection,
              f, blocking);
  } else if (type == EventType::kNmi) {
    // Blocking by STI: "some processors" fail the entry too (27.3.1.5),
    // so it is treated as required.
    bool nmi_ok = (blocking & (kBlockingSti | kBlockingMovSs)) == 0;
    if ((c.pin & pin::kVirtualNmis) != 0) {
      nmi_ok = nmi_ok && (blocking & interruptibility::kBlockingByNmi) == 0;
    }
    c.require(nmi_ok, Rule::kInterruptibilityInjection, f, blocking);
  }
}

void check_pending_debug(Context& c, uint64_t activity, uint32_t blocking, uint64_t rflags) {
  const Field f = Field::kGuestPendingDebug;
  const uint64_t pending = c.read(f);
  // Bits 11:4, 13, 15 and 63:17 are reserved; bit 16 is RTM.
  bool ok = (pending & 0xFFFFFFFFFFFEAFF0ull) == 0;
  if ((blocking & (kBlockingSti | kBlockingMovSs)) != 0 || activity == activity::kHlt) {
    const uint64_t debugctl = c.read(Field::kGuestDebugctl);
    const bool bs_expected = (rflags & kRflagsTf) != 0 && (debugctl & kDebugctlBtf) == 0;
    ok = ok && ((pending & kPendingBs) != 0) == bs_expected;
  }
  if ((pending & kPendingRtm) != 0) {
    // RTM: bit 12 set and nothing else, and no MOV-SS blocking.
    constexpr uint64_t kBit12 = 1ull << 12;
    ok = ok && pending == (kPendingRtm | kBit12) && (blocking & kBlockingMovSs) == 0;
  }
  c.require(ok, Rule::kPendingDebug, f, pending);
}

// 27.3.1.6: with EPT, PAE paging takes its PDPTEs from the VMCS.
void check_pdptes(Context& c) {
  if ((c.proc2 & proc2::kEnableEpt) == 0 || c.ia32e_guest() ||
      (c.guest_cr0 & arch::cr0::kPg) == 0) {
    return;
  }
  if ((c.read(Field::kGuestCr4) & arch::cr4::kPae) == 0) return;
  const Field pdptes[] = {Field::kGuestPdpte0, Field::kGuestPdpte1, Field::kGuestPdpte2,
                          Field::kGuestPdpte3};
  for (Field f : pdptes) {
    const uint64_t e = c.read(f);
    if ((e & 1) == 0) continue;
    c.require((e & 0x1E6ull) == 0 && c.physical_ok(e & ~0xFFFull), Rule::kGuestPdptes, f, e);
  }
}

}  // namespace

void check_guest_non_register(Context& c) {
  const uint64_t activity = c.read(Field::kGuestActivityState);
  const uint32_t blocking = static_cast<uint32_t>(c.read(Field::kGuestInterruptibility));
  const uint64_t rflags = c.read(Field::kGuestRflags);
  check_activity(c, activity, blocking);
  check_interruptibility(c, blocking, rflags);
  check_pending_debug(c, activity, blocking, rflags);
  const uint64_t link = c.read(Field::kVmcsLinkPointer);
  c.require(link == ~0ull, Rule::kVmcsLinkPointer, Field::kVmcsLinkPointer, link);
  check_pdptes(c);
}

}  // namespace microhv::vmx::entry_check
