// Groups "guest" (exception delivery), "cpuid" and "msr" (synthetic MSRs,
// hypercall page enabling).
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

namespace msr = tlfs::msr;
constexpr uint8_t kUd = 6;

// "rdmsr X raised #GP" / "reads 0x..".
const char* msr_desc(const MsrResult& r, char* buf, size_t cap) {
  if (r.fault.faulted) {
    microhv::format(buf, cap, "rdmsr raised %s", vector_name(r.fault.vector));
  } else {
    microhv::format(buf, cap, "reads 0x%lx", r.value);
  }
  return buf;
}

bool expect_read(const char* name, uint32_t m, uint64_t expected) {
  MsrResult r = rdmsr(m);
  char d[64];
  return check_hv(name, !r.fault.faulted && r.value == expected, "MSR 0x%x: expected 0x%lx, got %s",
                  m, expected, msr_desc(r, d, sizeof(d)));
}

bool expect_write_gp(const char* name, uint32_t m, uint64_t value) {
  Fault f = wrmsr(m, value);
  return check_hv(name, f.faulted && f.vector == kGp, "wrmsr 0x%x=0x%lx: expected #GP, got %s", m,
                  value, f.faulted ? vector_name(f.vector) : "no fault");
}

// Writes then reads back; passes when the write does not fault and reads equal.
bool roundtrip(uint32_t m, uint64_t value, char* why, size_t cap) {
  Fault f = wrmsr(m, value);
  if (f.faulted) {
    microhv::format(why, cap, "wrmsr 0x%x=0x%lx raised %s", m, value, vector_name(f.vector));
    return false;
  }
  MsrResult r = rdmsr(m);
  if (r.fault.faulted || r.value != value) {
    char d[64];
    microhv::format(why, cap, "MSR 0x%x: wrote 0x%lx, %s", m, value, msr_desc(r, d, sizeof(d)));
    return false;
  }
  return true;
}

bool page_is(const uint8_t* p, uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const volatile uint8_t* v = p;
  return v[0] == a && v[1] == b && v[2] == c && v[3] == d;
}

}  // namespace

// ------------------------------------------------------------------ guest
void group_guest() {
  Fault f;
  run_guarded([](void*) { asm volatile("ud2"); }, nullptr, &f);
  check("guest-exception-ud-delivered", f.faulted && f.vector == kUd, "ud2: expected #UD, got %s",
        f.faulted ? vector_name(f.vector) : "no fault");

  run_guarded(
      [](void*) {
        uint64_t v, a = 0x8000000000000000ull;  // non-canonical
        asm volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory");
      },
      nullptr, &f);
  check("guest-exception-gp-delivered", f.faulted && f.vector == kGp,
        "load from a non-canonical address: expected #GP, got %s",
        f.faulted ? vector_name(f.vector) : "no fault");

  // The interrupt path the SINT checks rely on (IDT gate, sti window, handler
  // count, APIC EOI), driven by the local APIC alone: two self-IPIs of one
  // vector, the second deliverable only after the handler's EOI.
  {
    const uint8_t v = kVecSelfIpi;
    set_non_auto_eoi(v, true);
    const uint32_t c0 = irq_count(v);
    bool sent = true;
    for (uint32_t k = 1; k <= 2 && sent; ++k) {
      sent = send_self_ipi(v);
      wait_irq(v, c0 + k, kSpinExpect);
    }
    uint32_t seen = wait_irq(v, c0 + 3, kSpinQuiet) - c0;
    check("guest-self-ipi-handler-and-eoi", sent && seen == 2,
          "two self-IPIs on vector 0x%x: %s, handler ran %u times (expected 2)", v,
          sent ? "sent" : "no local APIC access", seen);
  }
}

// ------------------------------------------------------------------ cpuid
void group_cpuid() {
  namespace c = tlfs::cpuid;
  Cpuid l1 = cpuid(1);
  check("cpuid-hypervisor-present-bit", (l1.ecx >> 31) & 1, "CPUID.1:ECX bit 31 clear (ECX 0x%08x)",
        l1.ecx);
  check("cpuid-vmx-hidden", ((l1.ecx >> 5) & 1) == 0, "CPUID.1:ECX bit 5 (VMX) set (ECX 0x%08x)",
        l1.ecx);

  Cpuid v = cpuid(c::kVendorLeaf);
  char vendor[13];
  memcpy(vendor + 0, &v.ebx, 4);
  memcpy(vendor + 4, &v.ecx, 4);
  memcpy(vendor + 8, &v.edx, 4);
  vendor[12] = '\0';
  bool vendor_ok = memcmp(vendor, "Microsoft Hv", 12) == 0;
  for (char& ch : vendor) {
    if (ch != '\0' && (ch < 0x20 || ch > 0x7E)) ch = '.';
  }
  check("cpuid-vendor-microsoft-hv", vendor_ok,
        "0x40000000 EBX:ECX:EDX expected \"Microsoft Hv\", got \"%s\"", vendor);
  check("cpuid-max-leaf-at-least-0x40000005",
        vendor_ok && v.eax >= c::kLimitsLeaf && v.eax < 0x40000100,
        "0x40000000 EAX expected 0x40000005..0x400000ff%s, got 0x%x",
        vendor_ok ? "" : " (and the vendor)", v.eax);

  Cpuid i = cpuid(c::kInterfaceLeaf);
  check("cpuid-interface-hv1", i.eax == c::kHvInterfaceSignature,
        "0x40000001 EAX expected 0x%x \"Hv#1\", got 0x%x", c::kHvInterfaceSignature, i.eax);

  Cpuid f = cpuid(c::kFeaturesLeaf);
  const uint32_t need_eax = c::kAccessSynicRegs | c::kAccessHypercallMsrs | c::kAccessVpIndex;
  check("cpuid-features-synic-hypercall-vpindex-msrs",
        env.hv_present && (f.eax & need_eax) == need_eax,
        "0x40000003 EAX expected bits 2,5,6 (0x%x), got 0x%08x%s", need_eax, f.eax,
        env.hv_present ? "" : " (no Hyper-V)");
  const uint32_t need_ebx = c::kPostMessages | c::kSignalEvents | c::kCreatePort | c::kConnectPort;
  check("cpuid-privileges-post-signal-create-connect",
        env.hv_present && (f.ebx & need_ebx) == need_ebx,
        "0x40000003 EBX expected bits 4,5,6,7 (0x%x), got 0x%08x%s", need_ebx, f.ebx,
        env.hv_present ? "" : " (no Hyper-V)");
  check("cpuid-not-root-partition", env.hv_present && (f.ebx & c::kCpuManagement) == 0,
        "0x40000003 EBX bit 12 (CpuManagement) expected clear, got EBX 0x%08x%s", f.ebx,
        env.hv_present ? "" : " (no Hyper-V)");

  Cpuid h = cpuid(c::kHintsLeaf);
  check("cpuid-hints-autoeoi-not-deprecated",
        env.hv_present && (h.eax & c::kHintDeprecateAutoEoi) == 0,
        "0x40000004 EAX bit 9 expected clear, got EAX 0x%08x%s", h.eax,
        env.hv_present ? "" : " (no Hyper-V)");
  check("cpuid-hints-not-nested", env.hv_present && (h.eax & c::kHintNested) == 0,
        "0x40000004 EAX bit 12 expected clear, got EAX 0x%08x%s", h.eax,
        env.hv_present ? "" : " (no Hyper-V)");
}

// ------------------------------------------------------------------ msr
void group_msr() {
  char why[160];
  char d[64];
  uint8_t* page = env.hypercall_page;
  const uint64_t hc_value = reinterpret_cast<uint64_t>(page) | 1;

  expect_read("msr-guest-os-id-initially-zero", msr::kGuestOsId, 0);

  {  // HYPERCALL enable while GUEST_OS_ID is 0: refused (#GP or enable stays clear), no overlay.
    const char* name = "msr-hypercall-refused-without-guest-os-id";
    MsrResult os = rdmsr(msr::kGuestOsId);
    if (!os.fault.faulted && os.value != 0) wrmsr(msr::kGuestOsId, 0);
    memset(page, kPageFill, 4096);
    Fault f = wrmsr(msr::kHypercall, hc_value);
    MsrResult r = rdmsr(msr::kHypercall);
    bool refused =
        (f.faulted && f.vector == kGp) || (!f.faulted && !r.fault.faulted && (r.value & 1) == 0);
    bool untouched = page_is(page, kPageFill, kPageFill, kPageFill, kPageFill);
    check_hv(name, refused && untouched && !r.fault.faulted,
             "wrmsr HYPERCALL=0x%lx with GUEST_OS_ID 0: %s, then HYPERCALL %s, page starts %02x "
             "%02x %02x %02x "
             "(expected: #GP or enable bit clear, page untouched)",
             hc_value, f.faulted ? vector_name(f.vector) : "no fault", msr_desc(r, d, sizeof(d)),
             page[0], page[1], page[2], page[3]);
    wrmsr(msr::kHypercall, 0);
  }

  check_hv("msr-guest-os-id-roundtrip", roundtrip(msr::kGuestOsId, kGuestOsId, why, sizeof(why)),
           "%s", why);

  {
    memset(page, kPageFill, 4096);
    bool ok = roundtrip(msr::kHypercall, hc_value, why, sizeof(why));
    check_hv("msr-hypercall-enable-accepted", ok, "after GUEST_OS_ID=0x%lx: %s", kGuestOsId, why);
    ensure_hypercall();
  }

  check_hv("hypercall-page-holds-vmcall-ret", page_is(page, 0x0F, 0x01, 0xC1, 0xC3),
           "page at 0x%lx starts %02x %02x %02x %02x, expected 0f 01 c1 c3 (vmcall; ret)",
           reinterpret_cast<uint64_t>(page), page[0], page[1], page[2], page[3]);

  {  // A guest write to the overlay faults or is dropped; the content stays the hypervisor's.
    const char* name = "hypercall-page-write-protected";
    if (!env.hypercall_ready) {
      fail(name, "prerequisite: %s", fixture_error());
    } else {
      uint8_t before[4] = {page[0], page[1], page[2], page[3]};
      Fault f;
      run_guarded([](void* p) { *static_cast<volatile uint8_t*>(p) = 0x90; }, page, &f);
      bool same = page_is(page, before[0], before[1], before[2], before[3]);
      if (!same) page[0] = before[0];  // repair so the remaining checks can call it
      check(name, same, "a guest byte write (%s) changed the page: %02x -> %02x",
            f.faulted ? "faulted" : "no fault", before[0], 0x90);
    }
  }

  expect_read("msr-vp-index-bsp-zero", msr::kVpIndex, 0);
  expect_write_gp("msr-vp-index-write-gp", msr::kVpIndex, 0);
  expect_read("msr-sversion-reads-one", msr::kSversion, tlfs::kSversionValue);
  expect_write_gp("msr-sversion-write-gp", msr::kSversion, tlfs::kSversionValue);

  {
    bool ok = true;
    for (uint32_t s = 0; s < 16 && ok; ++s) {
      MsrResult r = rdmsr(msr::kSint0 + s);
      if (r.fault.faulted || r.value != tlfs::sint_bits::kReset) {
        ok = false;
        microhv::format(why, sizeof(why), "SINT%u: expected 0x%lx, got %s", s,
                        tlfs::sint_bits::kReset, msr_desc(r, d, sizeof(d)));
      }
    }
    check_hv("msr-sint-reset-value-masked", ok, "%s", why);
  }

  const uint32_t scratch = msr::kSint0 + kSintScratch;
  {
    Fault f = wrmsr(scratch, 0x0F);  // vector 15, unmasked
    MsrResult r = rdmsr(scratch);
    check_hv("msr-sint-low-vector-unmasked-gp",
             f.faulted && f.vector == kGp && !r.fault.faulted && r.value == tlfs::sint_bits::kReset,
             "wrmsr SINT7=0x0f: expected #GP and SINT7 unchanged 0x10000, got %s and SINT7 %s",
             f.faulted ? vector_name(f.vector) : "no fault", msr_desc(r, d, sizeof(d)));
  }
  check_hv("msr-sint-low-vector-masked-accepted",
           roundtrip(scratch, tlfs::sint_bits::kMasked | 0x0F, why, sizeof(why)), "%s", why);
  {
    bool ok = roundtrip(scratch, kVecMsg | tlfs::sint_bits::kAutoEoi, why, sizeof(why)) &&
              roundtrip(scratch, tlfs::sint_bits::kReset, why, sizeof(why));
    check_hv("msr-sint-roundtrip", ok, "%s", why);
  }
  check_hv("msr-scontrol-roundtrip",
           roundtrip(msr::kScontrol, 1, why, sizeof(why)) &&
               roundtrip(msr::kScontrol, 0, why, sizeof(why)),
           "%s", why);
  {
    uint64_t sim = reinterpret_cast<uint64_t>(env.sim);
    check_hv("msr-simp-roundtrip",
             roundtrip(msr::kSimp, sim | 1, why, sizeof(why)) &&
                 roundtrip(msr::kSimp, sim, why, sizeof(why)),
             "%s", why);
    uint64_t sief = reinterpret_cast<uint64_t>(env.sief);
    check_hv("msr-siefp-roundtrip",
             roundtrip(msr::kSiefp, sief | 1, why, sizeof(why)) &&
                 roundtrip(msr::kSiefp, sief, why, sizeof(why)),
             "%s", why);
  }
  expect_read("msr-eom-reads-zero", msr::kEom, 0);
  {
    Fault f = wrmsr(msr::kEom, 0);
    check_hv("msr-eom-write-accepted", !f.faulted, "wrmsr EOM=0 raised %s", vector_name(f.vector));
  }
  {
    MsrResult r = rdmsr(0x400000FF);
    check_hv("msr-unknown-synthetic-read-gp", r.fault.faulted && r.fault.vector == kGp,
             "rdmsr 0x400000ff: expected #GP, got %s", msr_desc(r, d, sizeof(d)));
  }
  expect_write_gp("msr-unknown-synthetic-write-gp", 0x400000FF, 0);

  {  // Writing GUEST_OS_ID 0 disables the hypercall page; then restore both.
    const char* name = "msr-guest-os-id-zero-disables-hypercall";
    if (!ensure_hypercall()) {
      fail(name, "prerequisite: %s", fixture_error());
    } else {
      Fault f = wrmsr(msr::kGuestOsId, 0);
      MsrResult r = rdmsr(msr::kHypercall);
      bool disabled = !f.faulted && !r.fault.faulted && (r.value & 1) == 0;
      env.hypercall_ready = false;
      bool restored = ensure_hypercall();
      check_hv(
          name, disabled && restored,
          "wrmsr GUEST_OS_ID=0 %s, then HYPERCALL %s (expected enable bit clear); re-enable: %s",
          f.faulted ? vector_name(f.vector) : "ok", msr_desc(r, d, sizeof(d)),
          restored ? "ok" : fixture_error());
    }
  }
}

}  // namespace guest
