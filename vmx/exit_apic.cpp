// Guest writes to the xAPIC page (EPT violation, reason 48, on the page
// EPT maps read-only). The faulting instruction is fetched through the
// guest's page tables (vmx/guest_walk.hpp), decoded (vmx/decode.hpp) and
// executed (vmx/mem_write.hpp) with the page as its destination, so every
// form the architecture lets write memory reaches the APIC as it would
// natively, with the same register and RFLAGS results. VM exits for EPT
// violations report no instruction length, hence the decoding.
//
// What reaches the APIC (SDM Vol. 3A 11.4.1): aligned 32-bit stores to a
// register offset (a multiple of 16), while the VP's APIC is in xAPIC mode.
// Other stores -- narrower, wider, unaligned, to a reserved offset within a
// register's 16 bytes, or while the APIC is disabled or in x2APIC mode --
// are dropped (the SDM leaves their effect undefined; KVM drops them too),
// and the instruction completes. Loads for read-modify-write forms read the
// real register as the guest's own read would. An instruction microhv does
// not decode (x87/MMX stores, EVEX, CMPXCHG8B/16B, FXSAVE, PUSH/POP to the
// page...), an access that crosses the end of the page, or a MOVS whose
// source is neither RAM nor the page gets #GP(0): a documented choice,
// logged, never a stopped CPU. ICR low writes go to the INIT/SIPI logic
// through CpuServices::apic_write.
#include "arch/apic.hpp"
#include "arch/x86.hpp"
#include "kernel/base/log.hpp"
#include "vmx/decode.hpp"
#include "vmx/exit_handlers.hpp"
#include "vmx/guest_walk.hpp"
#include "vmx/mem_write.hpp"

namespace microhv::vmx {
namespace {

namespace efer = arch::efer;
namespace access = arch::access;

constexpr Field kSegmentBase[6] = {Field::kGuestEsBase, Field::kGuestCsBase, Field::kGuestSsBase,
                                   Field::kGuestDsBase, Field::kGuestFsBase, Field::kGuestGsBase};

class ApicPage final : public MemWritePorts {
 public:
  ApicPage(ExitContext& c, uint32_t offset, CodeSize mode, const GuestPaging& paging)
      : c_(c), offset_(offset), mode_(mode), paging_(paging) {}

  bool load(unsigned width, uint64_t* value) override { return read_page(offset_, width, value); }

  void store(unsigned width, uint64_t value) override {
    const bool xapic = c_.cpu_state != nullptr && c_.cpu_state->apic.mode == ApicMode::kXapic;
    if (width == 4 && offset_ % arch::apic::kRegisterAlign == 0 && xapic) {
      c_.cpu.apic_write(offset_, static_cast<uint32_t>(value));
      return;
    }
    if (c_.refused_log == nullptr || c_.refused_log->allow()) {
      log::info(
          "local APIC page: %u-byte store to offset 0x%x dropped (%s; the SDM leaves it "
          "undefined)\n",
          width, offset_,
          xapic ? "not an aligned 32-bit register store" : "the APIC is not in xAPIC mode");
    }
  }

  bool load_source(int8_t segment, uint64_t offset, unsigned width, uint64_t* value) override {
    if (segment < 0 || segment > 5) return false;
    uint64_t base = 0;
    // In 64-bit mode only FS and GS have a base (SDM Vol. 3A 3.4.4).
    if (mode_ != CodeSize::k64 || segment >= 4) {
      if (!read(c_, kSegmentBase[segment], &base)) return false;
    }
    uint64_t linear = base + offset;
    if (mode_ != CodeSize::k64) linear &= 0xFFFFFFFFull;
    Gpa gpa(0);
    if (c_.memory == nullptr || !guest_linear_to_physical(*c_.memory, paging_, linear, &gpa)) {
      return false;
    }
    if (c_.apic_page && gpa.page_base() == c_.apic_page.value()) {
      return read_page(static_cast<uint32_t>(gpa.page_offset()), width, value);
    }
    uint8_t bytes[8] = {};
    if (width > sizeof(bytes) ||
        fetch_guest_bytes(*c_.memory, paging_, linear, bytes, width) != width) {
      return false;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < width; ++i) v |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    *value = v;
    return true;
  }

  bool read_xmm(unsigned reg, unsigned lane, uint32_t* value) override {
    return c_.cpu.read_xmm(reg, lane, value);
  }

 private:
  // `width` bytes at `offset` of the APIC page, from aligned 32-bit register
  // reads (the only access microhv makes to the APIC itself).
  bool read_page(uint32_t offset, unsigned width, uint64_t* value) {
    if (width > 8 || offset + width > kPageSize) return false;
    uint64_t v = 0;
    uint32_t dword = 0, dword_at = ~0u;
    for (unsigned i = 0; i < width; ++i) {
      const uint32_t at = (offset + i) & ~3u;
      if (at != dword_at) {
        dword = c_.cpu.apic_read(at);
        dword_at = at;
      }
      v |= static_cast<uint64_t>((dword >> (8 * ((offset + i) & 3))) & 0xFF) << (8 * i);
    }
    *value = v;
    return true;
  }

  ExitContext& c_;
  uint32_t offset_;
  CodeSize mode_;
  GuestPaging paging_;
};

ExitAction refuse(ExitContext& c, const char* why, uint32_t offset, uint64_t rip,
                  const uint8_t* bytes, uint32_t got) {
  if (c.refused_log == nullptr || c.refused_log->allow()) {
    log::info(
        "local APIC page: write to offset 0x%x at RIP 0x%llx: %s; #GP(0) (%u bytes fetched: %02x "
        "%02x %02x %02x %02x %02x)\n",
        offset, static_cast<unsigned long long>(rip), why, got, bytes[0], bytes[1], bytes[2],
        bytes[3], bytes[4], bytes[5]);
  }
  return inject_gp(c);
}

}  // namespace

ExitAction emulate_apic_write(ExitContext& c, uint32_t offset) {
  uint64_t efer = 0, cs_access = 0, rip = 0, cs_base = 0, cr0 = 0, cr3 = 0, cr4 = 0, intr = 0;
  uint64_t rflags = 0;
  if (!read(c, Field::kGuestEfer, &efer) || !read(c, Field::kGuestCsAccess, &cs_access) ||
      !read(c, Field::kGuestRip, &rip) || !read(c, Field::kGuestCsBase, &cs_base) ||
      !read(c, Field::kGuestCr0, &cr0) || !read(c, Field::kGuestCr3, &cr3) ||
      !read(c, Field::kGuestCr4, &cr4) || !read(c, Field::kGuestInterruptibility, &intr) ||
      !read(c, Field::kGuestRflags, &rflags)) {
    return vmcs_failed(c);
  }
  const CodeSize mode = ((efer & efer::kLma) != 0 && (cs_access & access::kLong) != 0)
                            ? CodeSize::k64
                        : (cs_access & access::kDefault32) != 0 ? CodeSize::k32
                                                                : CodeSize::k16;
  uint64_t linear = cs_base + rip;
  if (mode != CodeSize::k64) linear &= 0xFFFFFFFFull;
  const GuestPaging paging{cr0, cr3, cr4, efer};
  uint8_t bytes[15] = {};
  const uint32_t got =
      c.memory != nullptr ? fetch_guest_bytes(*c.memory, paging, linear, bytes, sizeof(bytes)) : 0;
  const MemWrite d = decode_mem_write(bytes, got, mode);
  if (!d.ok) return refuse(c, "an instruction microhv does not emulate", offset, rip, bytes, got);
  if (offset + d.width > kPageSize) {
    return refuse(c, "the access crosses the end of the page", offset, rip, bytes, got);
  }
  MemWriteState s{};
  for (unsigned r = 0; r < 16; ++r) s.gpr[r] = c.regs.gpr(r);
  s.rflags = rflags;
  ApicPage page(c, offset, mode, paging);
  const MemWriteResult result = execute_mem_write(d, s, page);
  if (c.vmcs_failed) return vmcs_failed(c);
  if (result == MemWriteResult::kFailed) {
    return refuse(c, "an operand could not be read", offset, rip, bytes, got);
  }
  for (unsigned r = 0; r < 16; ++r) c.regs.gpr(r) = s.gpr[r];
  if (s.rflags != rflags) write(c, Field::kGuestRflags, s.rflags);
  if (result == MemWriteResult::kDone) {
    // Past the instruction, which also ends an STI/MOV-SS shadow.
    write(c, Field::kGuestRip, rip + d.length);
    constexpr uint64_t kShadows =
        interruptibility::kBlockingBySti | interruptibility::kBlockingByMovSs;
    if ((intr & kShadows) != 0) write(c, Field::kGuestInterruptibility, intr & ~kShadows);
  }
  return ExitAction::kRetry;
}

}  // namespace microhv::vmx
