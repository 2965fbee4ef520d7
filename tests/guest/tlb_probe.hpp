// The rep group's page tables: a private copy of the firmware's 4-level
// tables (its CR3) plus one 4 KiB mapping at a free upper-half address,
// pointing at page A or page B. Switching it is a store to the PTE without
// INVLPG (SDM Vol. 3A 4.10.4: software must invalidate), so a CPU that has
// the translation cached keeps reading the old page until its TLB entry is
// flushed -- which is what a remote-flush hypercall has to do.
#pragma once

#include "tests/guest/suite.hpp"

namespace guest::tlb {

struct Probe {
  uint64_t cr3;        // the copy's CR3 (the firmware's PWT/PCD bits kept)
  uint64_t va;         // the test mapping
  uint64_t* pte;       // its PTE
  uint64_t page[2];    // A and B (physical = virtual under UEFI)
  uint64_t marker[2];  // the first qword of each
};

// Builds the copy from env.tlb_pages and the current CR3. False (with why)
// when paging is not plain 4-level without PCIDs, or no upper-half PML4 slot
// is free.
bool make_probe(Probe* p, char* why, size_t cap);
void point(Probe& p, int which);   // the PTE -> page `which`, no invalidation
uint64_t read_va(const Probe& p);  // a load at va (CR3 must be the probe's)
uint64_t read_cr3();
void write_cr3(uint64_t cr3);

// What VP 1 runs (kCmdCall) while VP 0 changes the mapping: it loads the
// probe's CR3 and reads va again and again with IF = 0, publishing each
// value and a count, until *stop is set; then its own CR3 is back.
struct Watch {
  const Probe* probe;
  const uint32_t* stop;
  uint64_t value;
  uint64_t reads;
};
void watch(void* watch);

}  // namespace guest::tlb
