// Group "hostile", memory part (issue 9 items 1, 6, 7, 8): what a guest
// does on purpose with guest-physical addresses, and what it must get.
//
//  - the HYPERCALL escape of issue 9: a page number with bit 52 set on
//    microhv's page is #GP (bits beyond the physical address width are
//    reserved), and microhv's page stays unreadable after the MSR moves on;
//  - SIMP, SIEFP, VP_ASSIST_PAGE and HYPERCALL beyond CPUID.80000008:EAX[7:0]
//    are #GP and change nothing;
//  - the hypercall page on microhv's memory or on the local APIC page is
//    #GP (the write does not take effect: the page stays where it was);
//  - a read and a write above max(4 GiB, top of RAM) (where 64-bit BARs
//    live) and at the last page of the address width complete as on
//    hardware (the value is whatever the platform gives): no stop;
//  - a hypercall input and a SIM page under the hypercall page see the
//    overlay, not the RAM under it: INVALID_ALIGNMENT, INVALID_SYNIC_STATE,
//    and a queued message waits and arrives once the overlay has gone;
//  - 2,000 moves of the hypercall page all take effect, and the RAM under
//    each old page comes back unchanged.
// The checks leave the hypercall page and the SynIC as they found them.
#include <efi.h>

#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

namespace msr = tlfs::msr;
constexpr uint64_t kPost = static_cast<uint64_t>(tlfs::CallCode::kPostMessage);

uint64_t page_of(const void* p) {
  return reinterpret_cast<uint64_t>(p);
}

// CPUID.80000008:EAX[7:0]: the guest's physical address width.
unsigned phys_bits() {
  if (cpuid(0x80000000).eax < 0x80000008) return 36;
  return cpuid(0x80000008).eax & 0xFF;
}

bool is_hypercall_code(const uint8_t* p) {
  return p[0] == 0x0F && p[1] == 0x01 && p[2] == 0xC1 && p[3] == 0xC3;
}

// A WRMSR that must raise #GP and leave the MSR as it was.
void expect_msr_gp(const char* name, uint32_t m, uint64_t value, const char* what) {
  const MsrResult before = rdmsr(m);
  const Fault f = wrmsr(m, value);
  const MsrResult after = rdmsr(m);
  check_hv(
      name, f.faulted && f.vector == kGp && !after.fault.faulted && after.value == before.value,
      "wrmsr 0x%x = 0x%lx (%s): %s, MSR 0x%lx before and 0x%lx after (expected #GP and no "
      "change)",
      m, value, what, f.faulted ? vector_name(f.vector) : "no fault", before.value, after.value);
}

// ------------------------------------------------------------------ high GPAs
// Reads and writes a physical address the firmware's page tables may not
// map: a private copy of the PML4 (and of the PDPT it shares with the
// firmware's mappings) gains a 1 GiB identity page, uncached, for the
// duration of the access (interrupts off). The page is an identity map, so
// whatever of the suite lives in the same GiB stays where it was.
bool access_physical(uint64_t pa, bool write, uint64_t* value, Fault* f, char* why, size_t cap) {
  uint64_t cr3 = 0, cr4 = 0;
  asm volatile("mov %%cr3, %0" : "=r"(cr3));
  asm volatile("mov %%cr4, %0" : "=r"(cr4));
  if ((cr4 & (1ull << 12)) != 0) {
    microhv::format(why, cap, "5-level paging (CR4.LA57) is not handled here");
    return false;
  }
  if ((cpuid(0x80000001).edx & (1u << 26)) == 0) {
    microhv::format(why, cap, "no 1 GiB pages (CPUID.80000001:EDX[26])");
    return false;
  }
  uint8_t* pages = alloc_pages(2);
  if (pages == nullptr) {
    microhv::format(why, cap, "AllocatePages(2) failed");
    return false;
  }
  auto* pml4 = reinterpret_cast<uint64_t*>(pages);
  auto* pdpt = reinterpret_cast<uint64_t*>(pages + 4096);
  const auto* old_pml4 = reinterpret_cast<const uint64_t*>(cr3 & 0x000FFFFFFFFFF000ull);
  memcpy(pml4, old_pml4, 4096);
  const unsigned i4 = (pa >> 39) & 511, i3 = (pa >> 30) & 511;
  const uint64_t e4 = old_pml4[i4];
  if ((e4 & 1) != 0) memcpy(pdpt, reinterpret_cast<const void*>(e4 & 0x000FFFFFFFFFF000ull), 4096);
  constexpr uint64_t kPresentRwPcdPwtPs = 1 | 2 | 8 | 16 | 128;
  pdpt[i3] = (pa & ~((1ull << 30) - 1)) | kPresentRwPcdPwtPs;
  pml4[i4] = page_of(pdpt) | 1 | 2;
  QwordAccess a{pa, *value};
  uint64_t flags = 0;
  asm volatile("pushfq; popq %0; cli" : "=r"(flags)::"memory");
  asm volatile("mov %0, %%cr3" ::"r"(page_of(pml4) | (cr3 & 0xFFF)) : "memory");
  run_guarded(write ? write_qword : read_qword, &a, f);
  asm volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
  if ((flags & (1u << 9)) != 0) sti();
  *value = a.value;
  system_table()->BootServices->FreePages(page_of(pages), 2);
  return true;
}

void check_high_access(const char* name, uint64_t pa, const char* where) {
  char why[160];
  uint64_t value = 0;
  Fault f{};
  if (!access_physical(pa, false, &value, &f, why, sizeof(why))) {
    skip(name, why);
    return;
  }
  uint64_t written = 0x5A5A5A5A5A5A5A5Aull;
  Fault wf{};
  access_physical(pa, true, &written, &wf, why, sizeof(why));
  note("%s: read of 0x%lx (%s) gave 0x%016lx; a write %s", name, pa, where, value,
       wf.faulted ? vector_name(wf.vector) : "completed");
  check(name, !f.faulted && !wf.faulted,
        "read of 0x%lx (%s): %s; write: %s (expected both to complete, as on hardware)", pa, where,
        f.faulted ? vector_name(f.vector) : "ok", wf.faulted ? vector_name(wf.vector) : "ok");
}

// The top of RAM in the firmware's memory map (sampled every 256 MiB), at
// least 4 GiB.
uint64_t top_of_ram() {
  uint64_t top = 4ull << 30;
  for (uint64_t a = 4ull << 30; a < (1ull << 40); a += 1ull << 28) {
    uint32_t type = 0;
    uint64_t attr = 0;
    if (!memory_type_at(a, &type, &attr)) continue;
    const bool ram = (type >= EfiLoaderCode && type <= EfiConventionalMemory) ||
                     type == EfiACPIReclaimMemory || type == EfiACPIMemoryNVS;
    if (ram) top = a + (1ull << 28);
  }
  return top;
}

// ------------------------------------------------------------------ overlay moves
// Moves the hypercall page to `page` (enabled) and checks that it took effect.
bool move_to(uint8_t* page, char* why, size_t cap) {
  const Fault f = wrmsr(msr::kHypercall, page_of(page) | 1);
  if (f.faulted) {
    microhv::format(why, cap, "wrmsr HYPERCALL = 0x%lx raised %s", page_of(page) | 1,
                    vector_name(f.vector));
    return false;
  }
  if (!is_hypercall_code(page)) {
    microhv::format(why, cap, "page 0x%lx starts %02x %02x %02x %02x, not 0f 01 c1 c3",
                    page_of(page), page[0], page[1], page[2], page[3]);
    return false;
  }
  return true;
}

void restore_hypercall_page() {
  wrmsr(msr::kHypercall, page_of(env.hypercall_page) | 1);
}

void check_moves() {
  const char* name = "hostile-overlay-2000-moves";
  constexpr int kPages = 6, kMoves = 2000;
  uint8_t* pages[kPages] = {};
  uint8_t* block = alloc_pages(kPages - 1);
  if (block == nullptr) {
    fail(name, "AllocatePages(%d) failed", kPages - 1);
    return;
  }
  pages[0] = env.hypercall_page;
  for (int i = 1; i < kPages; ++i) {
    pages[i] = block + (i - 1) * 4096;
    memset(pages[i], 0x40 + i, 4096);  // what the RAM under the overlay must read afterwards
  }
  char why[160] = "";
  bool ok = true;
  int prev = 0;
  for (int m = 1; m <= kMoves && ok; ++m) {
    const int next = 1 + m % (kPages - 1);  // never the page it is on
    ok = move_to(pages[next], why, sizeof(why));
    if (ok && prev != 0) {
      const uint8_t* p = pages[prev];
      const uint8_t want = static_cast<uint8_t>(0x40 + prev);
      for (int i = 0; i < 4096 && ok; i += 511) {
        if (p[i] != want) {
          microhv::format(why, sizeof(why),
                          "after move %d: RAM at 0x%lx + 0x%x reads 0x%02x, expected 0x%02x", m,
                          page_of(p), i, p[i], want);
          ok = false;
        }
      }
    }
    prev = next;
  }
  restore_hypercall_page();
  char got[128];
  const HvResult after = hypercall(0xFFFF, page_of(env.in), page_of(env.out));
  if (ok && !is_status(after, Status::kInvalidHypercallCode)) {
    microhv::format(why, sizeof(why),
                    "after the moves, a call through the page at 0x%lx returned %s",
                    page_of(env.hypercall_page), describe(after, got, sizeof(got)));
    ok = false;
  }
  check_hv(name, ok, "%s", why);
  system_table()->BootServices->FreePages(page_of(block), kPages - 1);
}

// ------------------------------------------------------------------ overlay coherence
void check_input_on_overlay() {
  const char* name = "hostile-hypercall-input-on-overlay";
  // A PostMessage to our own port, written into env.in; then the hypercall
  // page moves there. The guest now sees VMCALL; RET at env.in, so the
  // input is not guest memory: INVALID_ALIGNMENT, nothing posted.
  tlfs::PostMessageInput in{};
  in.connection_id = kConnMsg;
  in.message_type = 0x77;
  in.payload_size = 8;
  memset(env.in, 0, 4096);
  memcpy(env.in, &in, sizeof(in));
  clear_slot_and_eom(kSintMsg, true);
  char why[160] = "";
  if (!move_to(env.in, why, sizeof(why))) {
    fail(name, "%s", why);
    restore_hypercall_page();
    return;
  }
  const uint32_t irqs = irq_count(kVecMsg);
  const HvResult r = hypercall(kPost, page_of(env.in), page_of(env.out), Via::kVmcall);
  restore_hypercall_page();
  const uint32_t slot_type = sim_slot(kSintMsg)->message_type;
  char got[128];
  check_hv(name,
           is_status(r, Status::kInvalidAlignment) && slot_type == 0 && irq_count(kVecMsg) == irqs,
           "PostMessage with its input GPA on the hypercall page: %s, SINT3 slot type 0x%x "
           "(expected 0x0004 INVALID_ALIGNMENT and nothing delivered)",
           describe(r, got, sizeof(got)), slot_type);
  // The RAM came back as the guest wrote it.
  check_hv("hostile-hypercall-input-ram-restored", memcmp(env.in, &in, sizeof(in)) == 0,
           "env.in no longer holds the input written before the overlay covered it");
}

void check_sim_on_overlay() {
  const char* name = "hostile-sim-page-on-overlay";
  char why[160] = "";
  clear_slot_and_eom(kSintMsg, true);
  // A in the slot, B queued behind it (MessagePending).
  const HvResult a = post_message(kConnMsg, 0x61, 8, 0xA0);
  const HvResult b = post_message(kConnMsg, 0x62, 8, 0xB0);
  if (!is_status(a, Status::kSuccess) || !is_status(b, Status::kSuccess)) {
    char got[128];
    fail(name, "prerequisite: posting A and B: %s",
         describe(is_status(a, Status::kSuccess) ? b : a, got, sizeof(got)));
    clear_slot_and_eom(kSintMsg, true);
    return;
  }
  if (!move_to(env.sim, why, sizeof(why))) {
    fail(name, "%s", why);
    restore_hypercall_page();
    return;
  }
  // The SIM page is hidden: no message can go in, EOM delivers nothing.
  const HvResult c = post_message(kConnMsg, 0x63, 8, 0xC0, Via::kVmcall);
  wrmsr(msr::kEom, 0);
  restore_hypercall_page();
  char got[128];
  check_hv(name, is_status(c, Status::kInvalidSynicState),
           "PostMessage while the SIM page is under the hypercall page: %s (expected 0x0018 "
           "INVALID_SYNIC_STATE)",
           describe(c, got, sizeof(got)));
  // A is still in its slot (nothing was written under the overlay); once
  // the guest frees it, B arrives: no message lost.
  check_hv("hostile-sim-page-overlay-keeps-slot",
           slot_matches(kSintMsg, 0x61, 8, 0xA0, why, sizeof(why)),
           "after the overlay left the SIM page: %s", why);
  clear_slot_and_eom(kSintMsg, true);
  wait_irq(kVecMsg, irq_count(kVecMsg), kSpinQuiet);
  check_hv("hostile-sim-page-overlay-queued-arrives",
           slot_matches(kSintMsg, 0x62, 8, 0xB0, why, sizeof(why)), "message B: %s", why);
  clear_slot_and_eom(kSintMsg, true);
}

}  // namespace

void group_hostile_memory() {
  ensure_hypercall();
  const microhv::vmx::InfoTable* t = find_info_table();
  const unsigned bits = phys_bits();
  note("hostile: guest physical address width %u bits (CPUID.80000008:EAX[7:0])", bits);
  const uint64_t hc = page_of(env.hypercall_page) | 1;

  // Issue 9 item 1: bit 52 on microhv's page, then the MSR moves on.
  if (t == nullptr) {
    fail("hostile-hypercall-bit52-escape", "prerequisite: microhv's info table is missing");
  } else {
    const uint64_t h = t->hv_base + ((t->hv_size / 2) & ~0xFFFull);
    expect_msr_gp("hostile-hypercall-bit52-escape", msr::kHypercall, (1ull << 52) | h | 1,
                  "bit 52 on a page of microhv's");
    wrmsr(msr::kHypercall, hc);
    wrmsr(msr::kHypercall, page_of(env.out) | 1);
    wrmsr(msr::kHypercall, hc);
    QwordAccess a{h, 0};
    Fault f{};
    run_guarded(read_qword, &a, &f);
    check_hv("hostile-hypercall-bit52-page-stays-unreadable", f.faulted,
             "after the attempt, a read of microhv's page 0x%lx returned 0x%016lx", h, a.value);
    expect_msr_gp("hostile-overlay-on-microhv-memory-gp", msr::kHypercall, h | 1,
                  "the hypercall page on microhv's memory");
  }
  // Beyond the physical address width (bits >= MAXPHYADDR are reserved).
  const uint64_t beyond = bits < 52 ? 1ull << bits : 1ull << 51;
  expect_msr_gp("hostile-hypercall-beyond-maxphyaddr-gp", msr::kHypercall, beyond | 1,
                "page number 2^MAXPHYADDR");
  expect_msr_gp("hostile-simp-beyond-maxphyaddr-gp", msr::kSimp, beyond | 1,
                "SIMP at 2^MAXPHYADDR");
  expect_msr_gp("hostile-siefp-beyond-maxphyaddr-gp", msr::kSiefp, beyond | 1,
                "SIEFP at 2^MAXPHYADDR");
  expect_msr_gp("hostile-vp-assist-beyond-maxphyaddr-gp", msr::kVpAssistPage, beyond | 1,
                "VP_ASSIST_PAGE at 2^MAXPHYADDR");
  // The local APIC page: refused, the APIC still answers there.
  {
    const MsrResult base = rdmsr(0x1B);  // IA32_APIC_BASE
    const uint64_t apic = base.value & 0x000FFFFFFFFFF000ull;
    if (base.fault.faulted || (base.value & (1u << 11)) == 0 || (base.value & (1u << 10)) != 0) {
      skip("hostile-overlay-on-apic-page-gp", "the local APIC is not in xAPIC mode");
    } else {
      expect_msr_gp("hostile-overlay-on-apic-page-gp", msr::kHypercall, apic | 1,
                    "the hypercall page on the local APIC page");
      // The version register, not VMCALL; RET (0xC3C1010F) or INT3 fill.
      const uint32_t version = *reinterpret_cast<volatile uint32_t*>(apic + 0x30);
      check("hostile-apic-page-still-apic", version != 0xC3C1010F && version != 0xCCCCCCCC,
            "the APIC version register at 0x%lx reads 0x%08x", apic + 0x30, version);
    }
  }
  restore_hypercall_page();

  // GPAs above max(4 GiB, top of RAM): 64-bit BARs live there.
  {
    const uint64_t above = (top_of_ram() + (2ull << 30)) & ~((1ull << 30) - 1);
    check_high_access("hostile-read-above-ram", above + 0x123000, "above the top of RAM");
    const uint64_t last = (bits > 48 ? 1ull << 48 : 1ull << bits) - 0x1000;
    check_high_access("hostile-read-last-page-of-width", last, "the last page below 2^MAXPHYADDR");
  }

  if (ensure_synic() && ensure_port(kPortMsg)) {
    check_input_on_overlay();
    check_sim_on_overlay();
  } else {
    fail("hostile-hypercall-input-on-overlay", "prerequisite: %s", fixture_error());
    fail("hostile-sim-page-on-overlay", "prerequisite: %s", fixture_error());
  }
  restore_hypercall_page();
  check_moves();
}

}  // namespace guest
