// Group "isolation": microhv's own memory is unreachable from the guest.
//
// microhv publishes an EFI configuration table (vmx/info_table.hpp) naming
// its resident range [hv_base, hv_base + hv_size) and the host page behind
// the hypercall page overlay; EPT maps neither. Reads of the first, middle
// and last qword of each must fault (microhv injects #GP; any vector is
// accepted, and recorded in a NOTE) and never return data; a write must
// fault too; and an ordinary RAM page right next to the range must read
// fine, so the faults are specific to microhv's memory.
#include <efi.h>

#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"
#include "vmx/info_table.hpp"

namespace guest {
namespace {

namespace info = microhv::vmx;

constexpr const char* kTable = "hv-info-table-present";
constexpr const char* kReadStart = "hv-memory-read-start-faults";
constexpr const char* kReadMiddle = "hv-memory-read-middle-faults";
constexpr const char* kReadLast = "hv-memory-read-last-faults";
constexpr const char* kOverlayStart = "hv-overlay-read-start-faults";
constexpr const char* kOverlayMiddle = "hv-overlay-read-middle-faults";
constexpr const char* kOverlayLast = "hv-overlay-read-last-faults";
constexpr const char* kWrite = "hv-memory-write-faults";
constexpr const char* kAdjacent = "hv-memory-adjacent-page-readable";

// A read of `addr` must fault; passes with the vector in a NOTE.
void expect_read_faults(const char* name, uint64_t addr, const char* where) {
  QwordAccess a{addr, 0x5A5A5A5A5A5A5A5Aull};
  Fault f{};
  run_guarded(read_qword, &a, &f);
  if (f.faulted) {
    note("%s: read of 0x%lx (%s) raised %s (vector %u, error 0x%lx)", name, addr, where,
         vector_name(f.vector), f.vector, f.error);
    pass(name);
  } else {
    fail(name, "read of 0x%lx (%s) returned data 0x%016lx instead of faulting", addr, where,
         a.value);
  }
}

bool ordinary_ram(uint64_t addr, uint32_t* type) {
  uint64_t attr = 0;
  if (!memory_type_at(addr, type, &attr)) return false;
  // LoaderCode/Data, BootServicesCode/Data, RuntimeServicesCode/Data,
  // ConventionalMemory, cacheable write-back.
  return *type >= EfiLoaderCode && *type <= EfiConventionalMemory && (attr & EFI_MEMORY_WB) != 0;
}

}  // namespace

const info::InfoTable* find_info_table() {
  EFI_SYSTEM_TABLE* st = system_table();
  if (st == nullptr || st->ConfigurationTable == nullptr) return nullptr;
  for (UINTN i = 0; i < st->NumberOfTableEntries; ++i) {
    const EFI_CONFIGURATION_TABLE& t = st->ConfigurationTable[i];
    static_assert(sizeof(t.VendorGuid) == sizeof(info::kInfoTableGuid));
    if (memcmp(&t.VendorGuid, &info::kInfoTableGuid, sizeof(t.VendorGuid)) == 0) {
      return static_cast<const info::InfoTable*>(t.VendorTable);
    }
  }
  return nullptr;
}

void group_isolation() {
  static const char* const kAfterTable[] = {kReadStart,     kReadMiddle,  kReadLast, kOverlayStart,
                                            kOverlayMiddle, kOverlayLast, kWrite,    kAdjacent};
  const info::InfoTable* t = find_info_table();
  if (t == nullptr) {
    fail(kTable,
         "no EFI configuration table with microhv's GUID in the system table (%llu "
         "entries)",
         system_table() != nullptr
             ? static_cast<unsigned long long>(system_table()->NumberOfTableEntries)
             : 0ull);
    for (const char* n : kAfterTable) fail(n, "prerequisite: microhv's info table is missing");
    return;
  }
  const uint64_t base = t->hv_base, size = t->hv_size, overlay = t->hypercall_overlay_page;
  const bool layout_ok = t->signature == info::kInfoTableSignature && t->version == 1 &&
                         t->size >= sizeof(info::InfoTable);
  const bool range_ok = size >= 4096 && (base & 0xFFF) == 0 && (size & 0xFFF) == 0 &&
                        (overlay & 0xFFF) == 0 && overlay != 0;
  check(kTable, layout_ok && range_ok,
        "table at %p: signature 0x%016lx (expected 0x%016lx), version %u (expected 1), size %u "
        "(expected >= %u), hv_base 0x%lx hv_size 0x%lx overlay 0x%lx (page-aligned, nonzero "
        "expected)",
        static_cast<const void*>(t), t->signature, info::kInfoTableSignature, t->version, t->size,
        static_cast<unsigned>(sizeof(info::InfoTable)), base, size, overlay);
  if (!layout_ok || !range_ok) {
    for (const char* n : kAfterTable) fail(n, "prerequisite: microhv's info table is malformed");
    return;
  }
  note("microhv resident at [0x%lx, 0x%lx) (%lu KiB), hypercall overlay backed by 0x%lx", base,
       base + size, size >> 10, overlay);

  expect_read_faults(kReadStart, base, "first qword of microhv's range");
  expect_read_faults(kReadMiddle, base + ((size / 2) & ~7ull), "middle of microhv's range");
  expect_read_faults(kReadLast, base + size - 8, "last qword of microhv's range");
  expect_read_faults(kOverlayStart, overlay, "first qword of the overlay's backing page");
  expect_read_faults(kOverlayMiddle, overlay + 2048, "middle of the overlay's backing page");
  expect_read_faults(kOverlayLast, overlay + 4096 - 8, "last qword of the overlay's backing page");

  // The write stores 0 into the last qword of the range (the tail of
  // microhv's table pool): if it is wrongly reachable, a zero there is the
  // least harmful thing to have written.
  {
    QwordAccess a{base + size - 8, 0};
    Fault f{};
    run_guarded(write_qword, &a, &f);
    if (f.faulted) {
      note("%s: write to 0x%lx raised %s (vector %u, error 0x%lx)", kWrite, a.addr,
           vector_name(f.vector), f.vector, f.error);
      pass(kWrite);
    } else {
      fail(kWrite, "write of 0 to 0x%lx (last qword of microhv's range) did not fault", a.addr);
    }
  }

  // Specificity: the nearest ordinary RAM page outside the range reads fine.
  {
    const uint64_t candidates[2] = {base - 4096, base + size};
    uint32_t types[2] = {0, 0};
    bool found = false;
    for (int i = 0; i < 2 && !found; ++i) {
      if (base < 4096 && i == 0) continue;
      if (!ordinary_ram(candidates[i], &types[i])) continue;
      found = true;
      QwordAccess a{candidates[i] + 8, 0};
      Fault f{};
      run_guarded(read_qword, &a, &f);
      check(kAdjacent, !f.faulted,
            "read of 0x%lx (%s microhv's range, EFI memory type %u) raised %s (error 0x%lx): "
            "faults are not specific to microhv's memory",
            a.addr, i == 0 ? "the page below" : "the page above", types[i], vector_name(f.vector),
            f.error);
    }
    if (!found) {
      char why[200];
      microhv::format(why, sizeof(why),
                      "neither 0x%lx nor 0x%lx is ordinary RAM in the UEFI memory map (types %u, "
                      "%u)",
                      candidates[0], candidates[1], types[0], types[1]);
      skip(kAdjacent, why);
    }
  }
}

}  // namespace guest
