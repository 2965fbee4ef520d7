#include "vmx/entry_check/checker.hpp"

#include "vmx/entry_check/check_context.hpp"

namespace microhv::vmx {

bool CheckReport::has(Rule r) const {
  for (uint32_t i = 0; i < count; ++i) {
    if (items[i].rule == r) return true;
  }
  return false;
}

bool CheckReport::has(Rule r, Field f) const {
  for (uint32_t i = 0; i < count; ++i) {
    if (items[i].rule == r && items[i].field == f) return true;
  }
  return false;
}

void CheckReport::add(Rule r, Field f, uint64_t value) {
  if (has(r, f)) return;  // one entry per rule and field
  if (count == kMaxViolations) {
    ++dropped;
    return;
  }
  items[count++] = Violation{r, f, value};
}

namespace entry_check {

Context::Context(const VmcsImage& vmcs, const CapabilitySet& caps, CheckReport& report)
    : vmcs_(vmcs), caps_(caps), report_(report) {}

uint64_t Context::read(Field f) {
  if (!vmcs_.written(f)) {
    const int i = image_field_index(f);
    if (i < 0 || !reported_[i]) {
      if (i >= 0) reported_[i] = true;
      report_.add(Rule::kFieldNeverWritten, f, 0);
    }
  }
  return vmcs_.read(f);
}

bool Context::ia32e_guest() const {
  return (entry & entry_ctl::kIa32eModeGuest) != 0;
}

bool Context::unrestricted() const {
  return (proc2 & proc2::kUnrestrictedGuest) != 0;
}

bool Context::physical_ok(uint64_t addr) const {
  return caps_.maxphyaddr >= 64 || (addr >> caps_.maxphyaddr) == 0;
}

bool Context::canonical(uint64_t addr) const {
  const unsigned shift = 64 - linear_bits();
  return static_cast<uint64_t>(static_cast<int64_t>(addr << shift) >> shift) == addr;
}

}  // namespace entry_check

CheckReport check_vm_entry(const VmcsImage& vmcs, const CapabilitySet& caps) {
  CheckReport report;
  entry_check::Context c(vmcs, caps, report);
  c.pin = static_cast<uint32_t>(c.read(Field::kPinControls));
  c.proc = static_cast<uint32_t>(c.read(Field::kProcControls));
  if ((c.proc & proc::kActivateSecondary) != 0) {
    c.proc2 = static_cast<uint32_t>(c.read(Field::kProcControls2));
  }
  c.exit = static_cast<uint32_t>(c.read(Field::kExitControls));
  c.entry = static_cast<uint32_t>(c.read(Field::kEntryControls));
  c.injection = static_cast<uint32_t>(c.read(Field::kEntryInterruptionInfo));
  if ((c.injection & intr_info::kValid) == 0) c.injection = 0;
  c.guest_cr0 = c.read(Field::kGuestCr0);

  entry_check::check_controls(c);
  entry_check::check_host_state(c);
  entry_check::check_guest_registers(c);
  entry_check::check_guest_segments(c);
  entry_check::check_guest_non_register(c);
  return report;
}

}  // namespace microhv::vmx
