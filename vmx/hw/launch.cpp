#include "vmx/hw/launch.hpp"

#include "arch/cpu.hpp"
#include "arch/msr.hpp"
#include "arch/serial.hpp"
#include "arch/x86.hpp"
#include "vmx/hw/cpu_setup.hpp"
#include "vmx/hw/host.hpp"
#include "vmx/msr_emulation.hpp"
#include "vmx/vmcs_setup.hpp"

extern "C" char microhv_vmexit_stub[];  // vmx/hw/entry.S: HOST_RIP

namespace microhv::vmx::hw {
namespace {

uint16_t read_cs() {
  uint16_t v;
  asm volatile("mov %%cs, %0" : "=r"(v));
  return v;
}

// What every VM exit on this CPU loads: the state it runs in right now.
HostState this_host_state(Vcpu& v, const CpuLaunch& cpu) {
  HostState s{};
  s.cr0 = arch::read_cr0();
  s.cr3 = arch::read_cr3();
  s.cr4 = arch::read_cr4();
  s.cs = read_cs();
  s.tr = v.host_tr;
  s.tr_base = cpu.tss_page;
  s.gdtr_base = cpu.gdt_page;
  s.idtr_base = cpu.idt_page;
  s.gs_base = reinterpret_cast<uint64_t>(&v.gs_self);
  s.efer = arch::rdmsr(arch::msr::kEfer);
  s.pat = arch::rdmsr(arch::msr::kPat);
  s.rsp = reinterpret_cast<uint64_t>(&v.frame->host_stack_top);
  s.rip = reinterpret_cast<uint64_t>(microhv_vmexit_stub);
  return s;
}

}  // namespace

uint64_t launch_this_cpu(Vcpu& v, CpuLaunch& cpu) {
  Host& h = *v.host;
  const bool ia32e = (cpu.guest.efer & arch::efer::kLma) != 0;
  const ControlSet ctl = compute_controls(h.caps, ia32e);
  if (!ctl.ok()) {
    log::error(
        "cpu %u: VMX controls unsupported: missing pin=0x%x proc=0x%x proc2=0x%x exit=0x%x "
        "entry=0x%x; conflict pin=0x%x proc=0x%x entry=0x%x\n",
        v.processor, ctl.pin.missing, ctl.proc.missing, ctl.proc2.missing, ctl.exit.missing,
        ctl.entry.missing, ctl.pin.conflict, ctl.proc.conflict, ctl.entry.conflict);
    restore_firmware_descriptors(cpu);
    return host_status::kUnsupported;
  }
  if (v.index == 0) {
    log::info("VMX controls: pin=0x%x proc=0x%x proc2=0x%x exit=0x%x entry=0x%x\n", ctl.pin.value,
              ctl.proc.value, ctl.proc2.value, ctl.exit.value, ctl.entry.value);
  }
  if (!enable_feature_control(v)) {
    restore_firmware_descriptors(cpu);
    return host_status::kUnsupported;
  }

  // VMXON with CR0/CR4 adjusted to the fixed bits (SDM 24.8).
  const uint64_t cr0 = arch::read_cr0(), cr4 = arch::read_cr4();
  arch::write_cr0(apply_fixed(cr0, h.caps.cr0_fixed0, h.caps.cr0_fixed1));
  // CR4.OSXSAVE in the host too when the CPU has XSAVE: microhv executes the
  // guest's XSETBV itself, which is #UD without it (the firmware may not
  // have set it; XCR0 is not switched between guest and host).
  const uint64_t osxsave =
      (arch::cpuid(1).ecx & arch::cpuid1_ecx::kXsave) != 0 ? arch::cr4::kOsxsave : 0;
  arch::write_cr4(apply_fixed(cr4 | osxsave, h.caps.cr4_fixed0, h.caps.cr4_fixed1) |
                  arch::cr4::kVmxe);
  const uint32_t revision = vmcs_revision(h.caps.basic);
  *reinterpret_cast<uint32_t*>(cpu.vmxon_page) = revision;
  *reinterpret_cast<uint32_t*>(cpu.vmcs_page) = revision;
  auto undo = [&](uint64_t status, bool vmxon) {
    if (vmxon) check(vmxoff(), "VMXOFF");
    arch::write_cr4(cr4);
    restore_firmware_descriptors(cpu);
    return status;
  };
  if (!check(vmxon(cpu.vmxon_page), "VMXON")) return undo(host_status::kDeviceError, false);
  if (v.index == 0) log::info("VMXON ok (VMCS revision 0x%x)\n", revision);
  if (!check(vmclear(cpu.vmcs_page), "VMCLEAR") || !check(vmptrld(cpu.vmcs_page), "VMPTRLD")) {
    return undo(host_status::kDeviceError, true);
  }
  const VmcsSetup setup{ctl,
                        h.caps,
                        h.info.msr_bitmap,
                        cpu.io_bitmap_a,
                        h.info.io_bitmap_b,
                        h.eptp,
                        vpid_of(v.index),
                        this_host_state(v, cpu),
                        cpu.guest,
                        cpu.guest_rsp,
                        cpu.guest_rip,
                        cpu.guest_rflags,
                        reinterpret_cast<const uint64_t*>(cpu.guest.gdtr_base)};
  v.entry.proc_controls = ctl.proc.value;
  capture_vp_cpu_state(h.cpu, (ctl.proc.value & proc::kTscOffsetting) != 0, &v.cpu_state);
  if (!h.apic_page || h.apic_page.value() != v.cpu_state.apic.base) {
    log::error(
        "cpu %u: its local APIC page 0x%llx is not the one EPT write-protects: its xAPIC writes "
        "(INIT IPIs included) reach the APIC unchecked\n",
        v.processor, (unsigned long long)v.cpu_state.apic.base.value());
  }
  if (!write_initial_vmcs(v.vmcs, setup)) {
    log::error("cpu %u: writing the VMCS failed (%u VMWRITE errors, see above)\n", v.processor,
               v.vmcs.failures());
    return undo(host_status::kDeviceError, true);
  }
  check(invalidate(Invalidation::kEpt, invept_type::kAllContexts, {0, 0}), "INVEPT (all contexts)");
  check(invalidate(Invalidation::kVpid, h.invvpid_type, {vpid_of(v.index), 0}), "INVVPID");
  v.ept_seen = __atomic_load_n(&h.ept_generation, __ATOMIC_ACQUIRE);

  if (v.index == 0) {
    log::info("launching the firmware as guest: RIP 0x%llx RSP 0x%llx CR3 0x%llx\n",
              (unsigned long long)cpu.guest_rip, (unsigned long long)cpu.guest_rsp,
              (unsigned long long)cpu.guest.cr3);
  } else {
    log::info(
        "cpu %u: VMXON ok; launching the firmware's AP code as guest (VP %u): RIP 0x%llx RSP "
        "0x%llx\n",
        v.processor, v.index, (unsigned long long)cpu.guest_rip, (unsigned long long)cpu.guest_rsp);
  }
  serial::flush();
  const VmxStatus s = vmlaunch();
  // Only reached when VMLAUNCH failed.
  report_vmx_failure("VMLAUNCH", s);
  if (s == VmxStatus::kFailValid) dump_vmcs();
  log::error("cpu %u: VMLAUNCH failed; this CPU goes back to the firmware unvirtualized\n",
             v.processor);
  return undo(host_status::kDeviceError, true);
}

}  // namespace microhv::vmx::hw
