#include "boot/efi/capture.hpp"

#include "arch/cpu.hpp"
#include "arch/descriptors.hpp"
#include "arch/msr.hpp"
#include "arch/mtrr.hpp"

namespace microhv::boot {
namespace {

template <typename T>
T read_segment(int which) {
  uint16_t v = 0;
  switch (which) {
    case 0:
      asm volatile("mov %%cs, %0" : "=r"(v));
      break;
    case 1:
      asm volatile("mov %%ss, %0" : "=r"(v));
      break;
    case 2:
      asm volatile("mov %%ds, %0" : "=r"(v));
      break;
    case 3:
      asm volatile("mov %%es, %0" : "=r"(v));
      break;
    case 4:
      asm volatile("mov %%fs, %0" : "=r"(v));
      break;
    case 5:
      asm volatile("mov %%gs, %0" : "=r"(v));
      break;
    case 6:
      asm volatile("sldt %0" : "=r"(v));
      break;
    case 7:
      asm volatile("str %0" : "=r"(v));
      break;
  }
  return static_cast<T>(v);
}

}  // namespace

void capture_guest_state(vmx::GuestStart* g) {
  g->cr0 = arch::read_cr0();
  g->cr3 = arch::read_cr3();
  g->cr4 = arch::read_cr4();
  asm volatile("mov %%dr7, %0" : "=r"(g->dr7));
  g->efer = arch::rdmsr(arch::msr::kEfer);
  g->pat = arch::rdmsr(arch::msr::kPat);
  g->debugctl = arch::rdmsr(arch::msr::kDebugctl);
  g->sysenter_cs = arch::rdmsr(arch::msr::kSysenterCs);
  g->sysenter_esp = arch::rdmsr(arch::msr::kSysenterEsp);
  g->sysenter_eip = arch::rdmsr(arch::msr::kSysenterEip);
  g->fs_base = arch::rdmsr(arch::msr::kFsBase);
  g->gs_base = arch::rdmsr(arch::msr::kGsBase);
  arch::DescriptorTableRegister gdtr{}, idtr{};
  asm volatile("sgdt %0" : "=m"(gdtr));
  asm volatile("sidt %0" : "=m"(idtr));
  g->gdtr_base = gdtr.base;
  g->gdtr_limit = gdtr.limit;
  g->idtr_base = idtr.base;
  g->idtr_limit = idtr.limit;
  g->cs = read_segment<uint16_t>(0);
  g->ss = read_segment<uint16_t>(1);
  g->ds = read_segment<uint16_t>(2);
  g->es = read_segment<uint16_t>(3);
  g->fs = read_segment<uint16_t>(4);
  g->gs = read_segment<uint16_t>(5);
  g->ldtr = read_segment<uint16_t>(6);
  g->tr = read_segment<uint16_t>(7);
}

void capture_firmware_mtrrs(vmx::MtrrSnapshot* out, unsigned phys_bits) {
  namespace mtrr = arch::mtrr;
  *out = vmx::MtrrSnapshot{};
  out->phys_bits = phys_bits;
  out->present = (arch::cpuid(1).edx & mtrr::kCpuid1EdxMtrr) != 0;
  if (!out->present) return;
  out->cap = arch::rdmsr(mtrr::kCapMsr);
  out->def_type = arch::rdmsr(mtrr::kDefTypeMsr);
  if ((out->cap & mtrr::kCapFixed) != 0) {
    for (unsigned i = 0; i < mtrr::kFixedMsrCount; ++i) {
      out->fixed[i] = arch::rdmsr(mtrr::kFixedMsrs[i].msr);
    }
  }
  out->var_count = static_cast<uint32_t>(out->cap & mtrr::kCapVcntMask);
  for (uint32_t i = 0; i < out->var_count && i < vmx::kMaxSnapshotMtrrs; ++i) {
    out->var[i].base = arch::rdmsr(mtrr::kPhysBase0 + 2 * i);
    out->var[i].mask = arch::rdmsr(mtrr::kPhysMask0 + 2 * i);
  }
}

}  // namespace microhv::boot
