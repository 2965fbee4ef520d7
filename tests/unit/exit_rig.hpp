// The exit handlers' test rig: fake CPU and core, the capabilities of a
// Bochs tigerlake, and a VMCS holding a 64-bit CPL0 guest at a VM exit.
// Shared by the vmx_exits*.cpp tests.
#pragma once

#include <catch2/catch.hpp>
#include <vector>

#include "arch/x86.hpp"
#include "tests/unit/ept_rig.hpp"
#include "tests/unit/fake_vmcs.hpp"
#include "tests/unit/fakes.hpp"
#include "vmx/exits.hpp"

namespace microhv::test {

using namespace microhv::vmx;

class FakeCpu final : public CpuServices {
 public:
  CpuidRegs cpuid(uint32_t leaf, uint32_t) override {
    if (leaf == 1) return {0x000806C1, 0x00010800, 0x7FFAFBBF | arch::cpuid1_ecx::kVmx, 0xBFEBFBFF};
    if (leaf == 0xD) return {0x7, 0, 0, 0};  // x87 | SSE | AVX
    return {leaf, 0x11, 0x22, 0x33};
  }
  bool rdmsr(uint32_t msr, uint64_t* v) override {
    if (msr == 0x12345678) return false;
    *v = msr_value;
    return true;
  }
  uint64_t msr_value = 0xAABBCCDD11223344ull;  // what every readable MSR reads
  bool wrmsr(uint32_t msr, uint64_t v) override {
    written.push_back({msr, v});
    return msr != 0x12345678;
  }
  uint64_t rdtsc() override { return tsc; }
  bool read_xmm(unsigned reg, unsigned lane, uint32_t* v) override {
    if (!has_sse || reg > 15 || lane > 3) return false;
    *v = xmm[reg][lane];
    return true;
  }
  bool xsetbv(uint32_t, uint64_t v) override {
    xcr0 = v;
    return true;
  }
  void wbinvd() override { ++wbinvds; }
  uint32_t io_in(uint16_t port, uint8_t size) override {
    ins.push_back({port, size});
    return 0xA1B2C3D4u;
  }
  void io_out(uint16_t port, uint8_t size, uint32_t value) override {
    outs.push_back({port, size, value});
  }
  bool step_io_natively(uint16_t port) override {
    if (!has_mtf) return false;
    stepping = true;
    stepped_port = port;
    return true;
  }
  bool end_io_step() override {
    const bool was = stepping;
    stepping = false;
    return was;
  }
  void reset_debug_registers() override { ++dr_resets; }
  void apic_write(uint32_t offset, uint32_t value) override {
    apic_writes.push_back({offset, value});
  }
  uint32_t apic_read(uint32_t) override { return 0x5EED; }
  void x2apic_icr_write(uint64_t value) override { icr_writes.push_back(value); }
  struct Io {
    uint16_t port;
    uint8_t size;
    uint32_t value = 0;
  };
  std::vector<std::pair<uint32_t, uint64_t>> written;
  std::vector<Io> ins, outs;
  std::vector<std::pair<uint32_t, uint32_t>> apic_writes;
  std::vector<uint64_t> icr_writes;
  uint64_t xcr0 = 0;
  uint64_t tsc = 1000000;
  uint32_t xmm[16][4] = {};
  bool has_sse = true;
  int wbinvds = 0;
  int dr_resets = 0;
  bool has_mtf = true, stepping = false;
  uint16_t stepped_port = 0;
};

class FakeCore final : public HvCore {
 public:
  bool cpuid(uint32_t leaf, CpuidRegs* out) override {
    if (leaf != 0x40000000) return false;
    *out = {0x40000005, 0x7263694D, 0x666F736F, 0x76482074};
    return true;
  }
  MsrResult read_msr(uint32_t msr, uint64_t* v) override {
    if (msr == 0x40000002) {
      *v = 7;
      return MsrResult::kOk;
    }
    return MsrResult::kGp;
  }
  MsrResult write_msr(uint32_t msr, uint64_t v) override {
    writes.push_back({msr, v});
    return msr == 0x40000000 ? MsrResult::kOk : MsrResult::kGp;
  }
  HypercallOutcome hypercall(const HypercallRegs& r) override {
    last = r;
    ++calls;
    if (r.cpl != 0 || r.mode == CpuMode::kReal) return {HypercallEnd::kUndefinedOpcode, 0};
    return next;
  }
  void testdev_write(uint32_t value) override { testdev.push_back(value); }
  std::vector<uint32_t> testdev;
  std::vector<std::pair<uint32_t, uint64_t>> writes;
  HypercallRegs last{};
  int calls = 0;
  HypercallOutcome next{HypercallEnd::kResult, 0x2};  // what a valid call returns
};

inline VmxCapabilities exit_test_caps() {
  VmxCapabilities c{};
  c.cr0_fixed0 = 0x80000021;
  c.cr0_fixed1 = 0xffffffff;
  c.cr4_fixed0 = 0x2000;
  c.cr4_fixed1 = 0xf72fff;
  return c;
}

struct Rig {
  GuestRegs regs{};
  test::FakeVmcs vmcs;
  FakeCpu cpu;
  FakeCore core;
  PendingEvents events;
  VmxCapabilities c = exit_test_caps();
  // A VP on a processor with everything the MSR policy can emulate, its
  // APIC in xAPIC mode at the default base.
  VpCpuState state = [] {
    VpCpuState s;
    s.facts.phys_addr_bits = 39;
    s.facts.x2apic = s.facts.tsc_deadline = s.facts.tsc_adjust = s.facts.mtrr = true;
    s.facts.misc_enable = s.facts.platform_info = s.facts.xss = s.facts.tsc_offsetting = true;
    s.apic.base = Gpa(0xFEE00000);
    s.apic.bsp = true;
    s.mtrr.cap = 0x508;  // VCNT 8, fixed ranges, WC
    return s;
  }();

  Rig() {
    const char* why = nullptr;
    REQUIRE(ept.ept->place(OverlayId::kHypercallPage, Gpa(0x5000), &why) == OverlayStatus::kPlaced);
    // A 64-bit CPL0 guest, as the VMCS holds it at a VM exit: every field a
    // handler may read is set (the fake fails a read of any other).
    vmcs.fields[Field::kGuestCr0] = 0x80000033;
    vmcs.fields[Field::kCr0ReadShadow] = 0x80000013;
    vmcs.fields[Field::kCr0Mask] = 1ull << 5;  // CR0.NE, the fixed bit microhv owns
    vmcs.fields[Field::kGuestCr4] = 0x2668 | (1 << 18);
    vmcs.fields[Field::kCr4ReadShadow] = 0x668 | (1 << 18);
    vmcs.fields[Field::kCr4Mask] = 1ull << 13;  // CR4.VMXE
    vmcs.fields[Field::kGuestCr3] = 0x1000;
    vmcs.fields[Field::kGuestEfer] = 0xD00;
    vmcs.fields[Field::kGuestCsAccess] = 0xA09B;
    vmcs.fields[Field::kGuestCsBase] = 0;
    vmcs.fields[Field::kGuestSsAccess] = 0xC093;
    vmcs.fields[Field::kGuestRflags] = 0x202;
    vmcs.fields[Field::kGuestRip] = 0xFFFFF80000101000ull;
    vmcs.fields[Field::kGuestInterruptibility] = 0;
    vmcs.fields[Field::kGuestActivityState] = 0;
    vmcs.fields[Field::kEntryControls] = 0xD3FF;
    // MSR values that live in the VMCS.
    vmcs.fields[Field::kGuestDebugctl] = 0;
    vmcs.fields[Field::kGuestPat] = 0x0007040600070406ull;
    vmcs.fields[Field::kGuestSysenterCs] = 0x10;
    vmcs.fields[Field::kGuestSysenterEsp] = 0xFFFF800000001000ull;
    vmcs.fields[Field::kGuestSysenterEip] = 0xFFFF800000002000ull;
    vmcs.fields[Field::kGuestFsBase] = 0;
    vmcs.fields[Field::kGuestGsBase] = 0xFFFF800000003000ull;
    vmcs.fields[Field::kTscOffset] = 0;
  }
  ExitAction run(uint32_t reason, uint64_t qualification = 0) {
    ExitContext ctx{reason, qualification, regs, vmcs, cpu, core, events, c};
    ctx.ept = &ept;
    if (apic_page != ~0ull) REQUIRE(ept.ept->protect_apic_page(Gpa(apic_page)));
    if (ctx_overlay_tsc) {
      const char* why = nullptr;
      REQUIRE(ept.ept->place(OverlayId::kReferenceTscPage, ctx_overlay_tsc.value(), &why) ==
              OverlayStatus::kPlaced);
    }
    ctx.remote = with_remote ? &remote : nullptr;
    ctx.bsp = bsp;
    ctx.testdev = testdev;
    if (apic_page != ~0ull) ctx.apic_page = Gpa(apic_page);
    ctx.memory = memory;
    ctx.cpu_state = &state;
    const ExitAction a = dispatch_exit(ctx);
    stop_reason = ctx.stop_reason;
    invalidate_ept = ctx.invalidate_ept;
    kicked = ctx.kicked;
    return a;
  }
  bool injected(uint8_t vector) const {
    return events.exception && events.exception_vector == vector;
  }
  const char* stop_reason = nullptr;
  bool invalidate_ept = false;
  // The guest's EPT: microhv's memory hidden at 0xDEA9000, the hypercall
  // page placed at 0x5000.
  EptRig ept;
  RemoteQueue remote{};
  bool with_remote = true, bsp = false, testdev = false, kicked = false;
  uint64_t apic_page = ~0ull;
  GuestMemory* memory = nullptr;
  Optional<Gpa> ctx_overlay_tsc{};  // the reference TSC page overlay, if placed
};

}  // namespace microhv::test
