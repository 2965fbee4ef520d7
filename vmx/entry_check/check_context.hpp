// Internal to the checker: the state one check_vm_entry() run shares
// between its parts (controls, host state, guest registers, guest segments).
#pragma once

#include <stdint.h>

#include "arch/x86.hpp"
#include "vmx/entry_check/checker.hpp"

namespace microhv::vmx::entry_check {

class Context {
 public:
  Context(const VmcsImage& vmcs, const CapabilitySet& caps, CheckReport& report);

  // The field's value; the first read of a field never written is reported
  // (kFieldNeverWritten) once.
  uint64_t read(Field f);
  void fail(Rule r, Field f, uint64_t value) { report_.add(r, f, value); }
  // fail() unless `ok`.
  void require(bool ok, Rule r, Field f, uint64_t value) {
    if (!ok) fail(r, f, value);
  }

  const CapabilitySet& caps() const { return caps_; }
  // The controls as VM entry sees them: secondary controls count as 0 unless
  // "activate secondary controls" is 1 (SDM 27.2.1.1).
  uint32_t pin = 0, proc = 0, proc2 = 0, exit = 0, entry = 0;
  bool ia32e_guest() const;
  bool unrestricted() const;
  uint64_t guest_cr0 = 0;  // read once by check_vm_entry
  uint32_t injection = 0;  // VM-entry interruption information (0 = none)

  // Address checks: `addr` fits in MAXPHYADDR bits; canonical for the
  // processor's linear-address width (57 with LA57, else 48).
  bool physical_ok(uint64_t addr) const;
  bool canonical(uint64_t addr) const;
  unsigned linear_bits() const { return caps_.la57 ? 57 : 48; }

 private:
  const VmcsImage& vmcs_;
  const CapabilitySet& caps_;
  CheckReport& report_;
  bool reported_[VmcsImage::kCapacity] = {};
};

// Requires each of `fields` to hold a canonical address.
template <unsigned N>
void require_canonical(Context& c, Rule r, const Field (&fields)[N]) {
  for (Field f : fields) {
    const uint64_t v = c.read(f);
    c.require(c.canonical(v), r, f, v);
  }
}

// The parts, in the order the SDM lists them.
void check_controls(Context& c);            // 27.2.1
void check_host_state(Context& c);          // 27.2.2 - 27.2.4
void check_guest_registers(Context& c);     // 27.3.1.1, 27.3.1.3, 27.3.1.4
void check_guest_segments(Context& c);      // 27.3.1.2
void check_guest_non_register(Context& c);  // 27.3.1.5, 27.3.1.6

// Shared helpers.
constexpr bool pat_valid(uint64_t pat) {
  for (unsigned i = 0; i < 8; ++i) {
    const uint64_t type = (pat >> (8 * i)) & 0xFF;
    if (type == 2 || type == 3 || type > 7) return false;
  }
  return true;
}
// IA32_EFER bits that exist on Intel 64 processors: SCE, LME, LMA, NXE.
inline constexpr uint64_t kEferValidBits =
    arch::efer::kSce | arch::efer::kLme | arch::efer::kLma | arch::efer::kNxe;
// CR0/CR4 against the VMX fixed MSRs (SDM Vol. 3D A.7, A.8): `exempt` bits
// are not checked.
constexpr bool fixed_bits_ok(uint64_t value, uint64_t fixed0, uint64_t fixed1, uint64_t exempt) {
  return (fixed0 & ~exempt & ~value) == 0 && (value & ~fixed1 & ~exempt) == 0;
}
// CR3: bits 63:52 and those above MAXPHYADDR must be 0.
constexpr bool cr3_ok(uint64_t cr3, unsigned maxphyaddr) {
  return maxphyaddr >= 64 || (cr3 >> maxphyaddr) == 0;
}
}  // namespace microhv::vmx::entry_check
