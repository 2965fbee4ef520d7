#include "hypercall/crash.hpp"

#include "kernel/base/log.hpp"
#include "kernel/hypervisor.hpp"

namespace microhv {
namespace {

namespace msr = tlfs::msr;
namespace ctl = tlfs::crash_ctl;

// At most this many lines of one guest's crash message reach the log (a page
// of text is at most a few dozen lines; a guest cannot flood the port).
constexpr uint32_t kMaxMessageLines = 80;
constexpr uint32_t kLineWidth = 120;

// Prints the guest's text as lines "microhv: crash: | ...": every line of
// the guest (or kLineWidth characters of a long one) on its own, bytes
// outside printable ASCII shown as '.'. Fed in chunks, so the text is never
// held whole.
class LinePrinter {
 public:
  void feed(const uint8_t* text, uint64_t size) {
    for (uint64_t i = 0; i < size; ++i) {
      const uint8_t c = text[i];
      if (c == '\n') {
        flush();
      } else if (c != '\r' && c != 0) {
        line_[used_++] = (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '.';
        if (used_ == kLineWidth) flush();
      }
    }
  }
  void finish() {
    if (used_ > 0) flush();
    if (lines_ > kMaxMessageLines) {
      log::info("crash: (%u more lines not shown)\n", lines_ - kMaxMessageLines);
    }
  }

 private:
  void flush() {
    line_[used_] = '\0';
    if (lines_ < kMaxMessageLines) log::info("crash: | %s\n", line_);
    ++lines_;
    used_ = 0;
  }
  char line_[kLineWidth + 1];
  uint32_t used_ = 0, lines_ = 0;
};

void print_message(GuestMemory& memory, Gpa gpa, uint64_t size) {
  LinePrinter printer;
  uint8_t chunk[256];
  for (uint64_t done = 0; done < size;) {
    const uint64_t n = size - done < sizeof(chunk) ? size - done : sizeof(chunk);
    if (!memory.read(gpa + done, chunk, n)) break;  // checked whole before; cannot fail
    printer.feed(chunk, n);
    done += n;
  }
  printer.finish();
}

void report(Partition& p, VpIndex vp, const uint64_t (&param)[tlfs::kCrashParameterCount],
            bool with_message) {
  log::info(
      "crash: partition %llu reported a crash from VP %u: P0 0x%llx P1 0x%llx P2 0x%llx P3 0x%llx "
      "P4 0x%llx%s\n",
      static_cast<unsigned long long>(p.id().value()), vp.value(),
      static_cast<unsigned long long>(param[0]), static_cast<unsigned long long>(param[1]),
      static_cast<unsigned long long>(param[2]), static_cast<unsigned long long>(param[3]),
      static_cast<unsigned long long>(param[4]), with_message ? " (P3/P4: message)" : "");
  if (with_message) {
    const Gpa gpa(param[3]);
    const uint64_t size = param[4];
    if (size == 0 || size > tlfs::kCrashMessageMax) {
      log::info("crash: message size %llu is outside 1..%llu bytes: not read\n",
                static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(tlfs::kCrashMessageMax));
    } else if (!p.memory().is_ram(gpa, size)) {
      log::info("crash: message at GPA 0x%llx (%llu bytes) is not guest RAM: not read\n",
                static_cast<unsigned long long>(gpa.value()),
                static_cast<unsigned long long>(size));
    } else {
      log::info("crash: message (%llu bytes at GPA 0x%llx):\n",
                static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(gpa.value()));
      print_message(p.memory(), gpa, size);
    }
  }
  log::info("crash: partition %llu stopped: its VPs are parked (microhv keeps running)\n",
            static_cast<unsigned long long>(p.id().value()));
}

}  // namespace

bool is_crash_msr(uint32_t m) {
  return m >= msr::kCrashP0 && m <= msr::kCrashCtl;
}

MsrResult crash_read_msr(Vp& vp, uint32_t m, uint64_t* value) {
  Partition& p = vp.partition();
  LockGuard guard(p.hypervisor().lock);
  *value = m == msr::kCrashCtl ? ctl::kDefined : p.crash.p[m - msr::kCrashP0];
  return MsrResult::kOk;
}

MsrResult crash_write_msr(Vp& vp, uint32_t m, uint64_t value) {
  Partition& p = vp.partition();
  uint64_t param[tlfs::kCrashParameterCount];
  {
    LockGuard guard(p.hypervisor().lock);
    if (m != msr::kCrashCtl) {
      p.crash.p[m - msr::kCrashP0] = value;
      return MsrResult::kOk;
    }
    if ((value & ~ctl::kDefined) != 0) return MsrResult::kGp;
    // Without bit 63 nothing is reported; only the first report counts (the
    // partition stops with it, other VPs may race to the same write).
    if ((value & ctl::kNotify) == 0 || p.crash.reported) return MsrResult::kOk;
    p.crash.reported = true;
    p.set_active(false);
    for (uint32_t i = 0; i < tlfs::kCrashParameterCount; ++i) param[i] = p.crash.p[i];
  }
  // Outside the lock: reading and printing a page of text takes a while.
  report(p, vp.index(), param, (value & ctl::kCrashMessage) != 0);
  return MsrResult::kOk;
}

}  // namespace microhv
