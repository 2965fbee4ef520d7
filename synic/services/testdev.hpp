// A control port compatible with QEMU's hyperv-testdev, so that SynIC tests
// written for it (e.g. kvm-unit-tests' hyperv_synic/hyperv_connections) run
// unchanged above microhv. The guest writes a 32-bit value to I/O port
// 0x3000: conn << 24 | ctl << 16 | vp << 8 | sint.
//
// Everything it creates is an ordinary port and connection of the core, in
// the guest's own partition:
//  - MSG_CONN_CREATE: message port targeting (vp, sint) with connection
//    `conn`, so a message posted to `conn` is echoed back to that VP and
//    SINT with its type and payload; a full queue answers
//    INSUFFICIENT_BUFFERS like any port.
//  - EVT_CONN_CREATE: event port targeting (vp, sint) whose single flag is
//    number `conn`, with connection `conn`: SignalEvent(conn, 0) sets flag
//    `conn`.
// Port ids kMessagePortBase|conn and kEventPortBase|conn are reserved for it.
// microhv's own addition (control 0x10, not in QEMU's device):
//  - REFERENCE_TSC_INVALID: with sint = 1 the reference TSC page shows
//    sequence 0 (guests fall back to TIME_REF_COUNT), with 0 it is valid
//    again, so a guest can time both clock paths in one boot.
#pragma once

#include <stdint.h>

#include "kernel/base/log.hpp"
#include "kernel/partition.hpp"

namespace microhv {

class TestDevice {
 public:
  static constexpr uint16_t kIoPort = 0x3000;
  static constexpr uint32_t kMessagePortBase = 0x7E570000;
  static constexpr uint32_t kEventPortBase = 0x7E580000;

  enum class Control : uint8_t {
    kSintRouteCreate = 1,
    kSintRouteDestroy = 2,
    kSintRouteSetSint = 3,  // raise that SINT on that VP
    kMsgConnCreate = 4,
    kMsgConnDestroy = 5,
    kEvtConnCreate = 6,
    kEvtConnDestroy = 7,
    kReferenceTscInvalid = 0x10,
  };

  explicit TestDevice(Partition& guest) : guest_(guest) {}

  // A 32-bit OUT to kIoPort. Returns false (and logs why, rate-limited) when
  // the command was refused; the guest sees nothing either way, as with
  // QEMU's device.
  bool write(uint32_t value);
  // The same, from VP `from`'s OUT instruction; the first one is logged.
  bool write_from(VpIndex from, uint32_t value);

 private:
  struct Route {
    bool used = false;
    uint8_t vp = 0;
    uint8_t sint = 0;
  };
  static constexpr uint32_t kMaxRoutes = 64;

  Route* find_route(uint8_t vp, uint8_t sint);
  bool raise_sint(uint8_t vp, uint8_t sint);

  Partition& guest_;
  Route routes_[kMaxRoutes];
  log::RateLimit first_write_{1};
  log::RateLimit refusals_{16};
  log::RateLimit tsc_logged_{1};
};

}  // namespace microhv
