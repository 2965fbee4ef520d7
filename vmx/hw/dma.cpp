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

void adopt_dma_protection(Host& h) {
  h.vtd = reinterpret_cast<vtd::ResidentVtd*>(h.info.vtd);
  if (h.vtd == nullptr) return;
  vtd::rebind_units(h.vtd->result, h.vtd_map);
  h.memory.layout.hide_more(h.vtd->windows, h.vtd->window_count);
  if (h.vtd->result.units_enabled == 0) return;
  log::info(
      "vtd: %u unit(s) translating; their %u register window(s) are not mapped for the guest; DMA "
      "faults are polled on VP 0 about once a second\n",
      h.vtd->result.units_enabled, h.vtd->window_count);
}

void poll_dma_faults(Host& h) {
  if (h.vtd == nullptr) return;
  const uint64_t hz = h.info.tsc_hz != 0 ? h.info.tsc_hz : 1000000000;
  const uint64_t now = arch::rdtsc();
  if (!vtd::fault_poll_due(*h.vtd, now, hz)) return;
  vtd::poll_faults(h.vtd->result, h.vtd->faults, now / (hz / 1000000 != 0 ? hz / 1000000 : 1));
}

}  // namespace microhv::vmx::hw
