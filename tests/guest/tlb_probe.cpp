#include "tests/guest/tlb_probe.hpp"

#include "kernel/base/log.hpp"

namespace guest::tlb {
namespace {

constexpr uint64_t kPresent = 1, kWritable = 2, kAccessed = 1u << 5, kDirty = 1u << 6;
constexpr uint64_t kAddress = 0x000FFFFFFFFFF000ull;
constexpr uint64_t kCr4Pcide = 1u << 17, kCr4La57 = 1u << 12;
// Table entries with A (and D on the PTE) preset: the walker never writes
// them, so the PTE holds exactly what the test stored.
constexpr uint64_t kTable = kPresent | kWritable | kAccessed;
constexpr uint64_t kLeaf = kTable | kDirty;

uint64_t read_cr4() {
  uint64_t v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}

}  // namespace

uint64_t read_cr3() {
  uint64_t v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}

void write_cr3(uint64_t cr3) {
  asm volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

bool make_probe(Probe* p, char* why, size_t cap) {
  const uint64_t cr4 = read_cr4();
  if ((cr4 & (kCr4Pcide | kCr4La57)) != 0) {
    microhv::format(why, cap, "CR4 0x%lx: PCIDs or 5-level paging in use", cr4);
    return false;
  }
  const uint64_t cr3 = read_cr3();
  auto* pml4 = reinterpret_cast<uint64_t*>(env.tlb_pages);
  auto* pdpt = reinterpret_cast<uint64_t*>(env.tlb_pages + 4096);
  auto* pd = reinterpret_cast<uint64_t*>(env.tlb_pages + 2 * 4096);
  auto* pt = reinterpret_cast<uint64_t*>(env.tlb_pages + 3 * 4096);
  memcpy(pml4, reinterpret_cast<const void*>(cr3 & kAddress), 4096);
  unsigned slot = 511;
  while (slot >= 256 && (pml4[slot] & kPresent) != 0) --slot;
  if (slot < 256) {
    microhv::format(why, cap, "no free upper-half PML4 slot in CR3 0x%lx", cr3);
    return false;
  }
  memset(pdpt, 0, 3 * 4096);
  pml4[slot] = reinterpret_cast<uint64_t>(pdpt) | kTable;
  pdpt[0] = reinterpret_cast<uint64_t>(pd) | kTable;
  pd[0] = reinterpret_cast<uint64_t>(pt) | kTable;
  for (int i = 0; i < 2; ++i) {
    auto* page = reinterpret_cast<uint64_t*>(env.tlb_pages + (4 + i) * 4096);
    p->page[i] = reinterpret_cast<uint64_t>(page);
    p->marker[i] = 0xA0A0A0A000000000ull + (static_cast<uint64_t>(i) << 60) + p->page[i];
    page[0] = p->marker[i];
  }
  p->pte = &pt[0];
  p->va = 0xFFFF000000000000ull | static_cast<uint64_t>(slot) << 39;
  p->cr3 = reinterpret_cast<uint64_t>(pml4) | (cr3 & 0x18);  // PWT, PCD as the firmware's
  point(*p, 0);
  return true;
}

void point(Probe& p, int which) {
  __atomic_store_n(p.pte, p.page[which & 1] | kLeaf, __ATOMIC_SEQ_CST);
}

uint64_t read_va(const Probe& p) {
  return *reinterpret_cast<const volatile uint64_t*>(p.va);
}

void watch(void* arg) {
  Watch& w = *static_cast<Watch*>(arg);
  cli();
  const uint64_t own = read_cr3();
  write_cr3(w.probe->cr3);
  while (ld(*w.stop) == 0) {
    const uint64_t v = read_va(*w.probe);
    st(w.value, v);
    st(w.reads, w.reads + 1);  // VP 1 is its only writer
  }
  write_cr3(own);
}

}  // namespace guest::tlb
