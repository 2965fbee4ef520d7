#include "boot/acpi/reader.hpp"

#include "boot/acpi/spec.hpp"

namespace microhv::acpi {

using namespace spec;

// ------------------------------------------------------------ reading tables

namespace {

constexpr uint32_t kMaxTableLength = 16u << 20;

// A table header with this signature and a plausible length (the checksum is
// not required: firmware tables are not always right, and OSes load them).
const uint8_t* table_at(uint64_t addr, const char* signature) {
  if (addr == 0) return nullptr;
  const uint8_t* t = phys_to_ptr(addr);
  if (signature != nullptr && !same(t, signature, 4)) return nullptr;
  uint32_t len = get_u32(t + 4);
  if (len < kHeaderSize || len > kMaxTableLength) return nullptr;
  return t;
}

}  // namespace

bool rsdp_valid(const uint8_t* rsdp) {
  if (rsdp == nullptr || !same(rsdp, "RSD PTR ", 8) || sum(rsdp, 20) != 0) return false;
  if (rsdp[15] < 2) return true;
  uint32_t len = get_u32(rsdp + 20);
  return len >= kRsdpSize && len <= 4096 && sum(rsdp, len) == 0;
}

size_t root_entries(const uint8_t* rsdp, uint64_t* out, size_t cap) {
  if (!rsdp_valid(rsdp)) return 0;
  const uint8_t* root = nullptr;
  size_t entry = 0;
  if (rsdp[15] >= 2 && get_u64(rsdp + 24) != 0) {
    root = table_at(get_u64(rsdp + 24), "XSDT");
    entry = 8;
  }
  if (root == nullptr) {
    root = table_at(get_u32(rsdp + 16), "RSDT");
    entry = 4;
  }
  if (root == nullptr) return 0;
  size_t count = (get_u32(root + 4) - kHeaderSize) / entry;
  for (size_t i = 0; i < count && i < cap; ++i) {
    const uint8_t* e = root + kHeaderSize + i * entry;
    out[i] = entry == 8 ? get_u64(e) : get_u32(e);
  }
  return count;
}

const uint8_t* find_table(const uint8_t* rsdp, const char* signature, uint32_t* length) {
  uint64_t entries[64];
  size_t n = root_entries(rsdp, entries, 64);
  for (size_t i = 0; i < n && i < 64; ++i) {
    const uint8_t* t = table_at(entries[i], signature);
    if (t == nullptr) continue;
    if (length != nullptr) *length = get_u32(t + 4);
    return t;
  }
  return nullptr;
}

uint64_t dsdt_address(const uint8_t* rsdp) {
  uint64_t entries[64];
  size_t n = root_entries(rsdp, entries, 64);
  for (size_t i = 0; i < n && i < 64; ++i) {
    const uint8_t* fadt = table_at(entries[i], "FACP");
    if (fadt == nullptr) continue;
    uint32_t len = get_u32(fadt + 4);
    if (len >= 148 && get_u64(fadt + 140) != 0) return get_u64(fadt + 140);  // X_DSDT
    if (len >= 44) return get_u32(fadt + 40);
  }
  return 0;
}

bool aml_declares_hid(const uint8_t* aml, size_t len, const char* hid) {
  // NameOp "_HID" StringPrefix <hid> NUL
  size_t hid_len = str_len(hid);
  size_t need = 1 + 4 + 1 + hid_len + 1;
  if (aml == nullptr || len < need) return false;
  for (size_t i = 0; i + need <= len; ++i) {
    if (aml[i] == kNameOp && same(aml + i + 1, "_HID", 4) && aml[i + 5] == kStringPrefix &&
        same(aml + i + 6, hid, hid_len) && aml[i + 6 + hid_len] == 0) {
      return true;
    }
  }
  return false;
}

bool tables_declare_hid(const uint8_t* rsdp, const char* hid) {
  auto check = [&](const uint8_t* t) {
    return t != nullptr && aml_declares_hid(t + kHeaderSize, get_u32(t + 4) - kHeaderSize, hid);
  };
  if (check(table_at(dsdt_address(rsdp), "DSDT"))) return true;
  uint64_t entries[64];
  size_t n = root_entries(rsdp, entries, 64);
  for (size_t i = 0; i < n && i < 64; ++i) {
    if (check(table_at(entries[i], "SSDT"))) return true;
  }
  return false;
}

}  // namespace microhv::acpi
