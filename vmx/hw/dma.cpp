#include "vmx/hw/dma.hpp"

#include "arch/cpu.hpp"
#include "vmx/hw/host.hpp"

namespace microhv::vmx::hw {

void host_delay_us(uint32_t us) {
  const Vcpu* v = current_vcpu();
  const uint64_t hz = v != nullptr && v->host->info.tsc_hz != 0 ? v->host->info.tsc_hz : 1000000000;
  const uint64_t start = arch::rdtsc();
  const uint64_t ticks = hz / 1000000 * us;
  while (arch::rdtsc() - start < ticks) arch::pause();
}

bool adopt_dma_protection(Host& h) {
  h.vtd = reinterpret_cast<vtd::ResidentVtd*>(h.info.vtd);
  if (h.vtd == nullptr) return true;
  vtd::rebind_units(h.vtd->result, h.vtd_map);
  for (uint32_t i = 0; i < h.vtd->window_count; ++i) {
    const vmx::HiddenRange& w = h.vtd->windows[i];
    if (!h.layout.hide(w.base, w.size)) {
      // Better no microhv than a guest that can switch the protection off.
      log::error(
          "vtd: cannot keep remapping unit register window %u (0x%llx, %llu bytes) from the guest "
          "(%u hidden ranges at most); microhv stays out\n",
          i, (unsigned long long)w.base.value(), (unsigned long long)w.size, vmx::kMaxHiddenRanges);
      return false;
    }
  }
  if (h.vtd->result.units_enabled == 0) return true;
  log::info(
      "vtd: %u unit(s) translating; their %u register window(s) are not mapped for the guest; DMA "
      "faults are polled on VP 0 about once a second\n",
      h.vtd->result.units_enabled, h.vtd->window_count);
  return true;
}

void poll_dma_faults(Host& h) {
  if (h.vtd == nullptr) return;
  const uint64_t hz = h.info.tsc_hz != 0 ? h.info.tsc_hz : 1000000000;
  const uint64_t now = arch::rdtsc();
  if (!vtd::fault_poll_due(*h.vtd, now, hz)) return;
  vtd::poll_faults(h.vtd->result, h.vtd->faults, now / (hz / 1000000 != 0 ? hz / 1000000 : 1));
}

}  // namespace microhv::vmx::hw
