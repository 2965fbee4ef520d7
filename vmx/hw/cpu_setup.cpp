#include "vmx/hw/cpu_setup.hpp"

#include <new>

#include "arch/apic.hpp"
#include "arch/cpu.hpp"
#include "arch/descriptors.hpp"
#include "arch/msr.hpp"
#include "vmx/hw/host.hpp"

extern "C" char microhv_exception_stubs[];  // vmx/hw/entry.S: 256 stubs, 16 bytes apart

namespace microhv::vmx::hw {

void setup_cpu_locals(Host& host, Vcpu& v, CpuLaunch& cpu) {
  v.gs_self = &v;
  v.host = &host;
  v.launch = &cpu;
  v.index = cpu.index;
  v.processor = cpu.processor;
  v.frame = new (reinterpret_cast<void*>(cpu.frame_page)) VcpuFrame{};
  v.frame->host_stack_top = cpu.host_stack_top;
  v.bsp = (arch::rdmsr(arch::msr::kApicBase) & arch::apic::base::kBsp) != 0;
  // The APIC id as this CPU reports it; MP services' number is only a
  // cross-check.
  const ApicId apic_id(arch::local_apic_id());
  if (apic_id != cpu.apic_id) {
    log::error("cpu %u: APIC ID %u, but MP services reported %u; using %u\n", cpu.processor,
               apic_id.value(), cpu.apic_id.value(), apic_id.value());
  }
  v.apic_id = apic_id;
  arch::wrmsr(arch::msr::kGsBase, reinterpret_cast<uint64_t>(&v.gs_self));
}

void load_host_descriptors(Vcpu& v, CpuLaunch& cpu) {
  auto* gdt = reinterpret_cast<uint64_t*>(cpu.gdt_page);
  const auto* fw = reinterpret_cast<const uint64_t*>(cpu.guest.gdtr_base);
  const uint32_t fw_entries = (static_cast<uint32_t>(cpu.guest.gdtr_limit) + 1) / 8;
  for (uint32_t i = 0; i < fw_entries && i < 500; ++i) gdt[i] = fw[i];
  const uint32_t tss_index = (fw_entries + 1) & ~1u;  // 16-byte aligned slot
  auto* tss = reinterpret_cast<arch::Tss64*>(cpu.tss_page);
  tss->ist[1] = cpu.ist_stack_top;
  tss->rsp[0] = cpu.host_stack_top;
  tss->iomap_base = sizeof(arch::Tss64);
  arch::make_tss_descriptor(cpu.tss_page, sizeof(arch::Tss64) - 1, &gdt[tss_index]);
  const arch::DescriptorTableRegister gdtr{static_cast<uint16_t>((tss_index + 2) * 8 - 1),
                                           cpu.gdt_page};
  asm volatile("lgdt %0" : : "m"(gdtr) : "memory");
  v.host_tr = static_cast<uint16_t>(tss_index * 8);
  asm volatile("ltr %0" : : "r"(v.host_tr) : "memory");

  uint16_t cs = 0;
  asm volatile("mov %%cs, %0" : "=r"(cs));
  auto* idt = reinterpret_cast<arch::IdtGate*>(cpu.idt_page);
  const uint64_t stubs = reinterpret_cast<uint64_t>(microhv_exception_stubs);
  for (unsigned vec = 0; vec < 256; ++vec) {
    // NMI, #DF and #MC on their own stack: they can hit at any point.
    const bool own_stack = vec == vector::kNmi || vec == vector::kDf || vec == vector::kMc;
    idt[vec] = arch::make_interrupt_gate(stubs + 16 * vec, cs, own_stack ? 1 : 0);
  }
  const arch::DescriptorTableRegister idtr{256 * 16 - 1, cpu.idt_page};
  asm volatile("lidt %0" : : "m"(idtr) : "memory");
}

void restore_firmware_descriptors(const CpuLaunch& cpu) {
  const arch::DescriptorTableRegister gdtr{cpu.guest.gdtr_limit, cpu.guest.gdtr_base};
  const arch::DescriptorTableRegister idtr{cpu.guest.idtr_limit, cpu.guest.idtr_base};
  asm volatile("lgdt %0" : : "m"(gdtr) : "memory");
  asm volatile("lidt %0" : : "m"(idtr) : "memory");
  arch::wrmsr(arch::msr::kGsBase, cpu.guest.gs_base);
}

VmxCapabilities read_capabilities() {
  namespace msr = arch::msr;
  VmxCapabilities c{};
  c.basic = arch::rdmsr(msr::kVmxBasic);
  c.pinbased = arch::rdmsr(msr::kVmxPinbased);
  c.procbased = arch::rdmsr(msr::kVmxProcbased);
  c.exit = arch::rdmsr(msr::kVmxExit);
  c.entry = arch::rdmsr(msr::kVmxEntry);
  c.misc = arch::rdmsr(msr::kVmxMisc);
  c.cr0_fixed0 = arch::rdmsr(msr::kVmxCr0Fixed0);
  c.cr0_fixed1 = arch::rdmsr(msr::kVmxCr0Fixed1);
  c.cr4_fixed0 = arch::rdmsr(msr::kVmxCr4Fixed0);
  c.cr4_fixed1 = arch::rdmsr(msr::kVmxCr4Fixed1);
  if ((c.basic & kBasicTrueControls) != 0) {
    c.true_pinbased = arch::rdmsr(msr::kVmxTruePinbased);
    c.true_procbased = arch::rdmsr(msr::kVmxTrueProcbased);
    c.true_exit = arch::rdmsr(msr::kVmxTrueExit);
    c.true_entry = arch::rdmsr(msr::kVmxTrueEntry);
  }
  if (control_allowed(c.procbased, proc::kActivateSecondary)) {
    c.procbased2 = arch::rdmsr(msr::kVmxProcbased2);
    c.ept_vpid_cap = arch::rdmsr(msr::kVmxEptVpidCap);
  }
  return c;
}

void log_capabilities(const VmxCapabilities& c) {
  log::info("VMX: basic=0x%016llx pin=0x%016llx proc=0x%016llx exit=0x%016llx entry=0x%016llx\n",
            (unsigned long long)c.basic, (unsigned long long)c.pinbased,
            (unsigned long long)c.procbased, (unsigned long long)c.exit,
            (unsigned long long)c.entry);
  log::info("VMX: true pin=0x%016llx proc=0x%016llx exit=0x%016llx entry=0x%016llx\n",
            (unsigned long long)c.true_pinbased, (unsigned long long)c.true_procbased,
            (unsigned long long)c.true_exit, (unsigned long long)c.true_entry);
  log::info("VMX: proc2=0x%016llx ept_vpid=0x%016llx misc=0x%016llx\n",
            (unsigned long long)c.procbased2, (unsigned long long)c.ept_vpid_cap,
            (unsigned long long)c.misc);
  log::info("VMX: cr0 fixed0=0x%llx fixed1=0x%llx cr4 fixed0=0x%llx fixed1=0x%llx\n",
            (unsigned long long)c.cr0_fixed0, (unsigned long long)c.cr0_fixed1,
            (unsigned long long)c.cr4_fixed0, (unsigned long long)c.cr4_fixed1);
}

bool enable_feature_control(const Vcpu& v) {
  namespace fc_bits = arch::msr::feature_control;
  const uint64_t fc = arch::rdmsr(arch::msr::kFeatureControl);
  if ((fc & fc_bits::kLock) != 0) {
    if ((fc & fc_bits::kVmxOutsideSmx) == 0) {
      log::error(
          "cpu %u: IA32_FEATURE_CONTROL=0x%llx is locked with VMX outside SMX disabled: cannot use "
          "VT-x; enable VT-x (Intel Virtualization Technology) in firmware setup\n",
          v.processor, static_cast<unsigned long long>(fc));
      return false;
    }
    return true;
  }
  arch::wrmsr(arch::msr::kFeatureControl, fc | fc_bits::kLock | fc_bits::kVmxOutsideSmx);
  if (v.index == 0) {
    log::info("IA32_FEATURE_CONTROL 0x%llx -> 0x%llx (locked, VMX outside SMX)\n",
              static_cast<unsigned long long>(fc),
              static_cast<unsigned long long>(arch::rdmsr(arch::msr::kFeatureControl)));
  }
  return true;
}

}  // namespace microhv::vmx::hw
