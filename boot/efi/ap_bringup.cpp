#include "boot/efi/ap_bringup.hpp"

#include <new>

#include "arch/cpu.hpp"
#include "boot/efi/capture.hpp"
#include "boot/efi/guest_checks.hpp"
#include "boot/mp/ap_handshake.hpp"
#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/base/log.hpp"

namespace microhv::boot {
namespace {

using vmx::CpuLaunch;

// Bounded waits for an AP (guest time; Stall() based).
constexpr uint64_t kApStartTimeoutUs = 2000000;  // virtualized and checked in
constexpr uint64_t kApIdleTimeoutUs = 2000000;   // MP services accepts a new procedure for the AP
constexpr uint64_t kPollUs = 500;

// Runs on an AP, called by MP services (natively: the AP is not virtualized
// yet, so it may touch microhv's pool). Captures its state and virtualizes
// it; from microhv_virtualize's return on it is a guest, for which the pool
// is gone: only the handshake (guest memory) is written after that.
void EFIAPI ap_virtualize(void* argument) {
  auto* h = static_cast<ApHandshake*>(argument);
  if (!ap_begin(*h)) return;  // the BSP gave up on this AP already
  auto* cpu = reinterpret_cast<CpuLaunch*>(h->cpu_launch);
  capture_guest_state(&cpu->guest);
  const uint64_t status = microhv_virtualize(
      cpu, reinterpret_cast<uint64_t (*)(CpuLaunch*)>(h->entry), h->host_cr3, h->host_stack_top);
  uint32_t vp_index = kNoVp, hv_bit = 0;
  if (status == 0) {
    // As the guest: VP_INDEX (synthetic MSR, exits to microhv) and CPUID.
    vp_index = static_cast<uint32_t>(arch::rdmsr(tlfs::msr::kVpIndex));
    hv_bit = hypervisor_bit();
  }
  ap_finish(*h, status, vp_index, hv_bit);
}

// Runs on an AP that is already a guest, when the firmware starts it again
// (with INIT-SIPI-SIPI under OVMF's HLT-loop AP mode): what it sees.
void EFIAPI ap_probe(void* argument) {
  auto* h = static_cast<ApHandshake*>(argument);
  if (!ap_begin(*h)) return;
  ap_finish(*h, 0, static_cast<uint32_t>(arch::rdmsr(tlfs::msr::kVpIndex)), hypervisor_bit());
}

template <typename Done>
bool wait_until(EFI_BOOT_SERVICES* bs, uint64_t timeout_us, Done done) {
  for (uint64_t t = 0;; t += kPollUs) {
    if (done()) return true;
    if (t >= timeout_us) return false;
    bs->Stall(kPollUs);
  }
}

enum class ApResult { kOk, kFailed };

// One AP through StartupThisAP without blocking on it: with a WaitEvent the
// call returns as soon as the AP has been woken, then the BSP polls the
// handshake with a bound. MP services itself notices the procedure's end
// only from a periodic timer, so a second StartupThisAP on the same AP may
// find it busy for a while (EFI_NOT_READY): that is retried, also bounded.
// The handshake and the event are leaked on purpose: MP services signals
// the event later, and an AP that missed its deadline may still write the
// handshake.
ApResult run_on_ap(EFI_BOOT_SERVICES* bs, const MpPlan& plan, uint32_t vp, EfiApProcedure procedure,
                   const char* what, ApHandshake** out) {
  const CpuPlan& c = plan.cpu[vp];
  *out = nullptr;
  void* mem = nullptr;
  EFI_EVENT event = nullptr;
  EFI_STATUS s = bs->AllocatePool(EfiBootServicesData, sizeof(ApHandshake), &mem);
  if (!EFI_ERROR(s)) s = bs->CreateEvent(0, 0, nullptr, nullptr, &event);
  if (EFI_ERROR(s)) {
    log::error("cpu %u (APIC ID %u): %s: no memory/event for the handshake (0x%llx)\n", c.processor,
               c.apic_id, what, (unsigned long long)s);
    return ApResult::kFailed;
  }
  auto* h = new (mem) ApHandshake{};
  h->cpu_launch = c.cpu_launch;
  h->entry = plan.ap_entry;
  h->host_cr3 = plan.host_cr3;
  h->host_stack_top = c.host_stack_top;
  uint64_t busy_us = 0;
  wait_until(bs, kApIdleTimeoutUs, [&] {
    s = plan.mp->StartupThisAP(plan.mp, procedure, c.processor, event, 0, h, nullptr);
    if (s != EFI_NOT_READY) return true;
    busy_us += kPollUs;
    return false;
  });
  if (EFI_ERROR(s)) {
    log::error("cpu %u (APIC ID %u): %s: StartupThisAP failed: 0x%llx%s\n", c.processor, c.apic_id,
               what, (unsigned long long)s, s == EFI_NOT_READY ? " (the AP stayed busy)" : "");
    bs->CloseEvent(event);
    bs->FreePool(mem);
    return ApResult::kFailed;
  }
  if (!wait_until(bs, kApStartTimeoutUs, [&] { return ap_done(*h); })) {
    if (bsp_abandon(*h)) {
      log::error(
          "cpu %u (APIC ID %u): %s: the AP did not start microhv's procedure within %llu ms; it "
          "stays as it "
          "is\n",
          c.processor, c.apic_id, what, (unsigned long long)(kApStartTimeoutUs / 1000));
    } else {
      log::error(
          "cpu %u (APIC ID %u): %s: the AP started but did not finish within %llu ms; it stays as "
          "it is\n",
          c.processor, c.apic_id, what, (unsigned long long)(kApStartTimeoutUs / 1000));
    }
    return ApResult::kFailed;
  }
  if (busy_us != 0) {
    log::info("cpu %u: %s: MP services reported the AP busy for %llu us first\n", c.processor, what,
              (unsigned long long)busy_us);
  }
  *out = h;
  return ApResult::kOk;
}

}  // namespace

void discover_cpus(EFI_BOOT_SERVICES* bs, MpPlan* plan) {
  plan->count = 1;
  plan->cpu[0] = CpuPlan{0, arch::local_apic_id(), 0, 0};
  EfiMpServices* mp = nullptr;
  EFI_STATUS s = locate_mp_services(bs, &mp);
  if (EFI_ERROR(s) || mp == nullptr) {
    log::info("vmx: no EFI_MP_SERVICES_PROTOCOL (0x%llx): virtualizing the boot CPU only\n",
              (unsigned long long)s);
    return;
  }
  UINTN total = 0, enabled = 0, bsp = 0;
  s = mp->GetNumberOfProcessors(mp, &total, &enabled);
  if (!EFI_ERROR(s)) s = mp->WhoAmI(mp, &bsp);
  if (EFI_ERROR(s) || total == 0) {
    log::error("vmx: MP services: GetNumberOfProcessors/WhoAmI failed (0x%llx): boot CPU only\n",
               (unsigned long long)s);
    return;
  }
  constexpr uint32_t kMaxProcessors = 256;
  const uint32_t n = total > kMaxProcessors ? kMaxProcessors : static_cast<uint32_t>(total);
  uint32_t flags[kMaxProcessors];
  uint32_t apic[kMaxProcessors];
  uint32_t vp_of[kMaxProcessors];
  for (uint32_t p = 0; p < n; ++p) {
    EfiProcessorInformation pi{};
    if (EFI_ERROR(mp->GetProcessorInfo(mp, p, &pi))) {
      flags[p] = 0;
      apic[p] = 0;
      continue;
    }
    flags[p] = pi.status_flag;
    apic[p] = static_cast<uint32_t>(pi.processor_id);
  }
  const uint32_t count =
      assign_vp_indexes(flags, n, static_cast<uint32_t>(bsp), vmx::kMaxCpus, vp_of);
  if (count == 0) return;
  for (uint32_t p = 0; p < n; ++p) {
    if (vp_of[p] != kNoVp) {
      plan->cpu[vp_of[p]] = CpuPlan{p, apic[p], 0, 0};
    } else if ((flags[p] & kProcessorEnabled) != 0 && plan->native_count < vmx::kMaxCpus) {
      plan->native_apic_ids[plan->native_count++] = apic[p];
    }
  }
  plan->mp = mp;
  plan->processors = n;
  plan->count = count;
  log::info(
      "vmx: MP services: %llu processors (%llu enabled), BSP is processor %llu: %u VP(s)%s\n",
      (unsigned long long)total, (unsigned long long)enabled, (unsigned long long)bsp, count,
      bsp == 0 ? ", VP index = processor number" : "; BSP = VP 0, the others in processor order");
}

uint32_t virtualize_aps(EFI_BOOT_SERVICES* bs, const MpPlan& plan) {
  uint32_t up = 1;
  for (uint32_t vp = 1; vp < plan.count; ++vp) {
    const CpuPlan& c = plan.cpu[vp];
    ApHandshake* h = nullptr;
    if (run_on_ap(bs, plan, vp, ap_virtualize, "virtualizing", &h) != ApResult::kOk) break;
    if (h->status != 0) {
      log::error(
          "cpu %u (APIC ID %u): virtualization failed on the AP (status 0x%llx, see its log lines "
          "above); it "
          "runs natively\n",
          c.processor, c.apic_id, (unsigned long long)h->status);
      bs->FreePool(h);
      break;
    }
    const bool ok = h->vp_index == vp && h->hv_bit == 1;
    (ok ? log::info : log::error)(
        "guest: cpu %u runs above microhv: VP_INDEX %u, CPUID.1:ECX hypervisor=%u\n", c.processor,
        h->vp_index, h->hv_bit);
    bs->FreePool(h);
    ++up;
  }
  if (up < plan.count) {
    log::error(
        "vmx: only %u of %u processors virtualized; processors from cpu %u on run natively\n", up,
        plan.count, plan.cpu[up].processor);
  }
  return up;
}

void probe_restarted_aps(EFI_BOOT_SERVICES* bs, const MpPlan& plan, uint32_t up) {
  for (uint32_t vp = 1; vp < up; ++vp) {
    const CpuPlan& c = plan.cpu[vp];
    ApHandshake* h = nullptr;
    if (run_on_ap(bs, plan, vp, ap_probe, "restart probe", &h) != ApResult::kOk) continue;
    const bool ok = h->vp_index == vp && h->hv_bit == 1;
    (ok ? log::info : log::error)(
        "guest: cpu %u started again by MP services runs above microhv: VP_INDEX %u, "
        "CPUID.1:ECX hypervisor=%u\n",
        c.processor, h->vp_index, h->hv_bit);
    bs->FreePool(h);
  }
}

}  // namespace microhv::boot
