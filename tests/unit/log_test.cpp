// Logs a guest can trigger: never written while Hypervisor::lock is held
// (the serial port is polled; a line written there stretches the section
// every CPU spins on), and rate-limited. The test installs the per-CPU
// deferred log the back end gives each CPU and a sink that records, for
// every write, whether the core's lock was held at that moment.
#include "kernel/base/log.hpp"

#include <string>

#include "synic/services/testdev.hpp"
#include "synic/services/vmbus_host.hpp"
#include "tests/unit/harness.hpp"

using namespace microhv;
using namespace microhv::test;
using tlfs::Status;

namespace {

struct Recorded {
  std::string text;
  bool under_lock;
};

struct SinkProbe {
  const Hypervisor* hv = nullptr;
  std::vector<Recorded> writes;
  log::DeferredLog cpu;  // "this CPU's" deferred log

  static SinkProbe*& current() {
    static SinkProbe* p = nullptr;
    return p;
  }
  static void write(void* self, const char* text, size_t len) {
    auto* probe = static_cast<SinkProbe*>(self);
    probe->writes.push_back(
        {std::string(text, len), probe->hv != nullptr && probe->hv->lock.is_locked()});
  }
  static log::DeferredLog* locate() { return &current()->cpu; }

  explicit SinkProbe(const Hypervisor* watched) : hv(watched) {
    current() = this;
    log::set_sink(&SinkProbe::write, this);
    log::set_deferred_log(&SinkProbe::locate);
  }
  ~SinkProbe() {
    log::set_deferred_log(nullptr);
    log::set_sink(nullptr);
    current() = nullptr;
  }
  size_t lines_containing(const char* what) const {
    size_t n = 0;
    for (const Recorded& w : writes) {
      for (size_t at = w.text.find(what); at != std::string::npos; at = w.text.find(what, at + 1)) {
        ++n;
      }
    }
    return n;
  }
  bool any_under_lock() const {
    for (const Recorded& w : writes) {
      if (w.under_lock) return true;
    }
    return false;
  }
};

struct LinuxGuest : Guest {
  VmbusHost host;
  LinuxGuest() : Guest(1) {
    REQUIRE(host.attach(*hv, *partition, PartitionId(2)));
    enable_synic(0, 2);
  }
  Status send(const void* body, uint32_t size) {
    tlfs::PostMessageInput in{};
    in.connection_id = vmbus::kConnectionIdV5;
    in.message_type = vmbus::kMessageType;
    in.payload_size = size;
    std::memcpy(in.payload, body, size);
    return status(kPost, &in, sizeof(in));
  }
  Status initiate_contact(uint32_t vp) {
    uint32_t m[10] = {vmbus::kInitiateContact, 0, vmbus::version(5, 3), vp, 2};
    return send(m, sizeof(m));
  }
};

}  // namespace

TEST_CASE("Log: the VMBus host's lines are written after Hypervisor::lock is dropped") {
  LinuxGuest g;
  SinkProbe probe(g.hv);
  REQUIRE(g.initiate_contact(0) == Status::kSuccess);
  CHECK(probe.lines_containing("vmbus: INITIATE_CONTACT version 5.3, reply to VP 0 SINT 2: "
                               "accepted") == 1);
  CHECK(probe.lines_containing("vmbus: reply 15 delivered to VP 0 SINT 2") == 1);
  CHECK_FALSE(probe.any_under_lock());
  CHECK(probe.cpu.used == 0);
  CHECK(probe.cpu.depth == 0);
}

TEST_CASE("Log: the test device's refusals are written after Hypervisor::lock is dropped") {
  Guest g(1);
  TestDevice dev(*g.partition);
  SinkProbe probe(g.hv);
  CHECK_FALSE(dev.write(0x00FF0000));  // unknown control
  CHECK(probe.lines_containing("testdev: unknown control 255") == 1);
  CHECK_FALSE(probe.any_under_lock());
}

TEST_CASE("Log: a guest posting in a loop gets a bounded number of VMBus lines") {
  LinuxGuest g;
  SinkProbe probe(g.hv);
  uint32_t junk[2] = {0x999, 0};  // not implemented: ignored, still accepted
  for (int i = 0; i < 1000; ++i) REQUIRE(g.send(junk, sizeof(junk)) == Status::kSuccess);
  const size_t served = probe.lines_containing("vmbus: PostMessage served");
  const size_t ignored = probe.lines_containing("vmbus: channel message 2457");
  CHECK(served == 32);
  CHECK(ignored == 16);
  CHECK(probe.lines_containing("later ones are not logged") == 2);
  for (int i = 0; i < 1000; ++i) REQUIRE(g.initiate_contact(7) == Status::kInvalidVpIndex);
  CHECK(probe.lines_containing("vmbus: PostMessage served") == served);
}

TEST_CASE("Log: lines held in a critical section are written in order at its end") {
  SinkProbe probe(nullptr);
  log::hold();
  log::info("first %d\n", 1);
  log::error("second\n");
  CHECK(probe.writes.empty());
  log::hold();  // nested: only the outermost end writes
  log::info("third\n");
  CHECK_FALSE(log::release());
  CHECK(probe.writes.empty());
  REQUIRE(log::release());
  CHECK(probe.writes.empty());  // the caller writes once it has dropped its lock
  log::write_held();
  REQUIRE(probe.writes.size() == 1);
  CHECK(probe.writes[0].text == "microhv: first 1\nmicrohv: error: second\nmicrohv: third\n");
  log::info("after\n");  // not held: at once
  REQUIRE(probe.writes.size() == 2);
  CHECK(probe.writes[1].text == "microhv: after\n");
}

TEST_CASE("Log: a full deferred log drops whole lines and says how many") {
  SinkProbe probe(nullptr);
  log::hold();
  for (int i = 0; i < 200; ++i) log::info("line %03d of a flood\n", i);
  REQUIRE(log::release());
  log::write_held();
  REQUIRE(probe.writes.size() == 2);
  const std::string& kept = probe.writes[0].text;
  CHECK(kept.size() <= log::DeferredLog::kCapacity);
  CHECK(kept.back() == '\n');
  const size_t kept_lines = probe.lines_containing("of a flood");
  CHECK(kept_lines == kept.size() / std::string("microhv: line 000 of a flood\n").size());
  CHECK(probe.writes[1].text == "microhv: error: " + std::to_string(200 - kept_lines) +
                                    " log lines dropped: the per-CPU deferred log was full\n");
}

TEST_CASE("Log: a CPU that stops inside a critical section writes what it held") {
  SinkProbe probe(nullptr);
  log::hold();
  log::info("held\n");
  log::stop_holding();
  REQUIRE(probe.writes.size() == 1);
  CHECK(probe.writes[0].text == "microhv: held\n");
  log::info("fault report\n");
  REQUIRE(probe.writes.size() == 2);
  CHECK(probe.cpu.depth == 0);
}

TEST_CASE("Log: without a deferred log (boot, or no per-CPU state yet) lines go out at once") {
  std::vector<std::string> out;
  log::set_sink([](void* o, const char* t,
                   size_t n) { static_cast<std::vector<std::string>*>(o)->emplace_back(t, n); },
                &out);
  log::hold();
  log::info("direct\n");
  CHECK_FALSE(log::release());
  log::set_sink(nullptr);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == "microhv: direct\n");
}
