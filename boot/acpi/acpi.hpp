// ACPI tables that let a guest OS find microhv's VMBus (ACPI 6.3 layouts).
//
// Linux's hv_vmbus binds to an ACPI device whose _HID is "VMBus" (module alias
// acpi*:VMBus:*). What Linux 6.1 (drivers/hv/vmbus_drv.c) requires of it:
//  - vmbus_acpi_add() walks the device's own _CRS and fails with -ENODEV when
//    that walk fails, so the device must have a _CRS (an empty template will
//    do: on x86 the VMBus interrupt is the fixed HYPERVISOR_CALLBACK_VECTOR
//    and a legacy IRQ descriptor is ignored);
//  - it then walks the _CRS of each ancestor until one yields an Address32/64
//    window that ends at or above 1 MiB (the MMIO space VMBus devices such as
//    the synthetic framebuffer are given). Kernels before the fix "Don't
//    dereference ACPI root object handle" (2023) walk up to the namespace root
//    and oops when no ancestor has such a window, so one must exist. The
//    lowest window should start below 4 GiB, at or below the EFI framebuffer,
//    or vmbus_reserve_fb() warns "Unexpected low mmio base".
// So the device is \_SB.MHVM.VMBS: VMBS (_HID "VMBus", empty _CRS) inside an
// ACPI0004 module device MHVM whose _CRS holds the MMIO windows, the layout of
// Hyper-V's own generation-2 firmware. Linux attaches ACPI0004 to its
// container driver, which claims no resources.
//
// When the firmware has ACPI tables, only an SSDT with that device is added.
// When it has none (OVMF under Bochs), build_full_set() writes a minimal but
// complete set for a PC with PIIX4-style fixed ACPI hardware: RSDP (rev 2),
// RSDT, XSDT, FADT (not hardware-reduced: Linux then keeps PIT, PIC and the PM
// timer), MADT (every CPU, the I/O APIC, IRQ0 -> GSI2), and a DSDT with the
// PCI root bridge (without one Linux scans no PCI bus once ACPI is on), the
// processors, \_S5 (power off) and the VMBus device. FACS is built separately
// because it lives in ACPI NVS memory.
//
// Everything is written into caller buffers with bounds checks; a builder
// returns the length written, or 0 when the buffer is too small or the input
// is invalid. Portable: no EFI, no asm. Table addresses are physical
// addresses, which microhv's boot environment maps one to one; the readers
// below dereference them as pointers.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace microhv::acpi {

inline constexpr size_t kHeaderSize = 36;  // system description table header
inline constexpr size_t kRsdpSize = 36;    // ACPI 2.0+ RSDP
inline constexpr size_t kFacsSize = 64;
inline constexpr size_t kFadtSize = 276;  // FADT revision 6
inline constexpr uint32_t kMaxCpus = 256;

static constexpr char kVmbusHid[] = "VMBus";  // static: see scripts/check-relocs.sh
static constexpr char kOemId[] = "MICRHV";    // 6 characters

// ------------------------------------------------------------ byte writing

// Appends little-endian values to a caller buffer. After the first write that
// does not fit, nothing more is written and ok() is false.
class Writer {
 public:
  Writer(uint8_t* buf, size_t cap) : buf_(buf), cap_(buf == nullptr ? 0 : cap) {}

  void u8(uint8_t v);
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void bytes(const void* p, size_t n);
  void zeros(size_t n);
  // Exactly `width` bytes of `s`, padded with spaces (OEM ids and the like).
  void padded(const char* s, size_t width);
  // Opens a gap of `n` bytes at offset `at`, moving what follows.
  bool insert(size_t at, size_t n);
  void patch_u8(size_t at, uint8_t v);
  void patch_u32(size_t at, uint32_t v);
  void fail() { ok_ = false; }

  bool ok() const { return ok_; }
  size_t size() const { return size_; }
  uint8_t* data() { return buf_; }
  const uint8_t* data() const { return buf_; }

 private:
  bool reserve(size_t n);
  uint8_t* buf_;
  size_t cap_;
  size_t size_ = 0;
  bool ok_ = true;
};

// Sum of the bytes modulo 256 (a valid table sums to 0).
uint8_t sum(const void* data, size_t len);
// Sets data[at] so that the `len` bytes sum to 0.
void fix_checksum(uint8_t* data, size_t len, size_t at);

// ------------------------------------------------------------ AML

// A minimal AML encoder (ACPI 6.3 chapter 20): scopes, devices, Name() with
// strings, integers, EISA ids, buffers and packages. Names are ACPI paths such
// as "\\_SB", "_HID", "\\_SB.MHVM" or "^VMBS" (segments of 1-4 characters
// A-Z 0-9 _, padded with '_'). scope()/device() open a package closed by
// end(); its PkgLength is encoded in the fewest bytes once its size is known.
class Aml {
 public:
  explicit Aml(Writer& w) : w_(w) {}

  void scope(const char* path);
  void device(const char* name);
  void end();

  void name_string(const char* name, const char* value);
  void name_integer(const char* name, uint64_t value);
  void name_eisa_id(const char* name, const char* id);  // "PNP0A03"
  void name_buffer(const char* name, const uint8_t* data, size_t len);
  void name_package(const char* name, const uint64_t* values, size_t count);

  // Name(_PRT, Package() { Package() { slot << 16 | 0xFFFF, pin, 0, gsi }... }):
  // static routing (source 0, the last field is the GSI).
  struct PrtEntry {
    uint8_t slot;
    uint8_t pin;  // 0 = INTA .. 3 = INTD
    uint32_t gsi;
  };
  void name_prt(const PrtEntry* entries, size_t count);

  // True when every write fitted, every name was valid and every package was
  // closed.
  bool ok() const { return ok_ && w_.ok() && depth_ == 0; }
  void fail() { ok_ = false; }

 private:
  static constexpr size_t kMaxDepth = 8;
  void name_path(const char* path);
  void integer(uint64_t v);
  void open_package();
  void close_package();
  void name_op(const char* name);

  Writer& w_;
  size_t open_[kMaxDepth] = {};
  size_t depth_ = 0;
  bool ok_ = true;
};

// Encodes a 7-character EISA id ("PNP0A03") into its 32-bit AML form.
bool eisa_id(const char* id, uint32_t* out);

// ------------------------------------------------------------ resource descriptors

// Resource descriptors (ACPI 6.3 section 6.4) for a ResourceTemplate. finish()
// appends the end tag; pass data()/size() to Aml::name_buffer.
class Resources {
 public:
  Resources(uint8_t* buf, size_t cap) : w_(buf, cap) {}

  void io_port(uint16_t base, uint8_t length);      // IO(Decode16, base, base, 1, length)
  void bus_numbers(uint16_t first, uint16_t last);  // WordBusNumber, producer
  void io_window(uint16_t first, uint16_t last);    // WordIO, producer, entire range
  void memory32(uint32_t first, uint32_t last, bool cacheable);  // DWordMemory, producer, RW
  void memory64(uint64_t first, uint64_t last, bool cacheable);  // QWordMemory, producer, RW
  void finish();

  bool ok() const { return w_.ok(); }
  const uint8_t* data() const { return w_.data(); }
  size_t size() const { return w_.size(); }

 private:
  Writer w_;
};

// ------------------------------------------------------------ the VMBus device

struct MmioWindow {
  uint64_t base = 0;
  uint64_t length = 0;
};

struct VmbusDevice {
  // MMIO space for VMBus devices, listed in MHVM's _CRS. At least one window;
  // Linux ignores windows that end below 1 MiB.
  static constexpr size_t kMaxWindows = 2;
  MmioWindow mmio[kMaxWindows];
  size_t mmio_count = 0;
};

// Appends Device(\_SB.MHVM) { ... Device(VMBS) { ... } } inside the current
// scope of `aml` (emits its own Scope(\_SB) when `in_sb_scope` is false).
void append_vmbus_device(Aml& aml, const VmbusDevice& vmbus, bool in_sb_scope);

// SSDT holding only the VMBus device.
size_t build_vmbus_ssdt(uint8_t* buf, size_t cap, const VmbusDevice& vmbus);

// ------------------------------------------------------------ the full set

// The machine, as far as the full set describes it.
struct Platform {
  // CPUs: ACPI processor UID i has local APIC id apic_ids[i].
  uint32_t cpu_count = 0;
  const uint32_t* apic_ids = nullptr;
  uint32_t local_apic_address = 0xFEE00000;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_address = 0xFEC00000;

  // Fixed ACPI hardware (PIIX4 layout: PM1 event +0 (4 bytes), PM1 control
  // +4 (2), PM timer +8 (4)); pm_base 0 is refused: a FADT without them
  // describes no usable hardware.
  uint16_t pm_base = 0;
  uint16_t pm1_control_offset = 4;
  uint16_t pm_timer_offset = 8;
  bool pm_timer_32bit = false;  // PIIX4's timer has 24 bits
  uint16_t gpe0_block = 0;      // 0: none (Bochs' PIIX4 implements no GPE registers)
  uint8_t gpe0_length = 0;
  uint16_t sci_irq = 9;
  uint8_t s5_sleep_type = 0;  // SLP_TYP for soft-off (PIIX4: 0)
  bool has_8042 = true;

  // PCI root bridge 0: the 32-bit memory window (inclusive bounds) and the
  // IRQs the four PIRQ links are routed to (0: not routed) for _PRT, with the
  // PIIX swizzle: device d, pin p (0 = INTA) uses link (d + p - 1) mod 4.
  uint32_t pci_mmio_first = 0;
  uint32_t pci_mmio_last = 0;
  uint8_t pci_link_irqs[4] = {};

  VmbusDevice vmbus;
};

size_t build_dsdt(uint8_t* buf, size_t cap, const Platform& p);
size_t build_madt(uint8_t* buf, size_t cap, const Platform& p);
// `dsdt` and `facs` must lie below 4 GiB: DSDT goes into both the 32- and the
// 64-bit field, FACS into FIRMWARE_CTRL only (X_FIRMWARE_CTRL would override
// it). Pass 0 for either to leave its fields zero (an ACPI table protocol
// fills them in).
size_t build_fadt(uint8_t* buf, size_t cap, const Platform& p, uint64_t dsdt, uint64_t facs);
size_t build_facs(uint8_t* buf, size_t cap);
size_t build_rsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count);
size_t build_xsdt(uint8_t* buf, size_t cap, const uint64_t* tables, size_t count);
// Revision-2 RSDP; rsdt may be 0 (then only the XSDT is published).
size_t build_rsdp(uint8_t* buf, size_t cap, uint64_t rsdt, uint64_t xsdt);

// Where build_full_set put each table (offsets into its buffer).
struct FullSetLayout {
  size_t rsdp = 0, xsdt = 0, rsdt = 0, fadt = 0, madt = 0, dsdt = 0;
  size_t size = 0;  // bytes used
};

// Writes DSDT, FADT, MADT, XSDT, RSDT and the RSDP (16-byte aligned, in that
// order) into `buf`, which the OS will see at physical address `buf_phys`
// (below 4 GiB); `facs_phys` is the FACS (64-byte aligned, below 4 GiB).
// Returns the layout; size 0 on failure.
FullSetLayout build_full_set(uint8_t* buf, size_t cap, uint64_t buf_phys, uint64_t facs_phys,
                             const Platform& p);

// ------------------------------------------------------------ reading tables

// Physical address to pointer (identity in microhv's boot environment).
inline const uint8_t* phys_to_ptr(uint64_t addr) {
  return reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(addr));
}

// A structurally valid RSDP: signature, checksum, and for revision >= 2 the
// extended checksum over its length.
bool rsdp_valid(const uint8_t* rsdp);

// Addresses of the tables the RSDP's XSDT lists (its RSDT when it has no
// XSDT). Returns how many there are (may exceed `cap`; only `cap` are stored),
// 0 when the root table is missing or malformed.
size_t root_entries(const uint8_t* rsdp, uint64_t* out, size_t cap);

// The DSDT of the FADT the root table lists (0 when none).
uint64_t dsdt_address(const uint8_t* rsdp);

// True when `aml` contains Name(_HID, "<hid>") (how Hyper-V, QEMU and microhv
// declare a VMBus device).
bool aml_declares_hid(const uint8_t* aml, size_t len, const char* hid);

// True when the DSDT or any SSDT under `rsdp` declares a device with this _HID.
bool tables_declare_hid(const uint8_t* rsdp, const char* hid);

}  // namespace microhv::acpi
