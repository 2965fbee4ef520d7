#include "synic/services/testdev.hpp"

#include "hypercall/time_msr.hpp"
#include "kernel/base/log.hpp"
#include "kernel/hypervisor.hpp"
#include "synic/delivery.hpp"
#include "synic/messaging.hpp"

namespace microhv {

TestDevice::Route* TestDevice::find_route(uint8_t vp, uint8_t sint) {
  for (Route& r : routes_) {
    if (r.used && r.vp == vp && r.sint == sint) return &r;
  }
  return nullptr;
}

bool TestDevice::raise_sint(uint8_t vp_index, uint8_t sint) {
  Vp* vp = guest_.vp(VpIndex(vp_index));
  const Optional<SintIndex> index = sint_index(sint);
  if (vp == nullptr || !index) return false;
  synic_raise(*vp, index.value());  // like any SINT the hypervisor raises: nothing when masked
  return true;
}

bool TestDevice::write_from(VpIndex from, uint32_t value) {
  if (first_write_.allow()) {
    log::info(
        "testdev: 32-bit OUT 0x%08x to port 0x%x from VP %u (first; later ones are not logged)\n",
        value, kIoPort, from.value());
  }
  return write(value);
}

bool TestDevice::write(uint32_t value) {
  uint8_t sint = value & 0xFF;
  uint8_t vp = (value >> 8) & 0xFF;
  auto ctl = static_cast<Control>((value >> 16) & 0xFF);
  uint8_t conn = value >> 24;
  LockGuard guard(guest_.hypervisor().lock);
  tlfs::Status status = tlfs::Status::kSuccess;
  switch (ctl) {
    case Control::kSintRouteCreate: {
      if (find_route(vp, sint) != nullptr) return true;
      for (Route& r : routes_) {
        if (!r.used) {
          r = Route{true, vp, sint};
          return true;
        }
      }
      if (refusals_.allow())
        log::error("testdev: no free SINT route for vp %u sint %u\n", vp, sint);
      return false;
    }
    case Control::kSintRouteDestroy:
      if (Route* r = find_route(vp, sint)) *r = Route{};
      return true;
    case Control::kSintRouteSetSint:
      if (find_route(vp, sint) == nullptr || !raise_sint(vp, sint)) {
        if (refusals_.allow()) {
          log::error("testdev: SET_SINT without a route for vp %u sint %u\n", vp, sint);
        }
        return false;
      }
      return true;
    case Control::kMsgConnCreate:
      status = create_connected_port(
          guest_,
          {PortId(kMessagePortBase | conn), tlfs::PortType::kMessage, sint, VpIndex(vp), 0, 0},
          guest_, ConnectionId(conn));
      break;
    case Control::kMsgConnDestroy:
      disconnect_port(guest_, ConnectionId(conn));
      status = delete_port(guest_, PortId(kMessagePortBase | conn));
      break;
    case Control::kEvtConnCreate:
      status = create_connected_port(
          guest_,
          {PortId(kEventPortBase | conn), tlfs::PortType::kEvent, sint, VpIndex(vp), conn, 1},
          guest_, ConnectionId(conn));
      break;
    case Control::kEvtConnDestroy:
      disconnect_port(guest_, ConnectionId(conn));
      status = delete_port(guest_, PortId(kEventPortBase | conn));
      break;
    case Control::kReferenceTscInvalid:
      // Low byte 1: the page says sequence 0 ("read TIME_REF_COUNT"); 0:
      // valid again. Logged once: it changes what every clock read costs.
      force_reference_tsc_invalid(guest_, sint != 0);
      if (tsc_logged_.allow()) {
        log::info("testdev: reference TSC page %s (later changes are not logged)\n",
                  sint != 0 ? "set to sequence 0: guests read TIME_REF_COUNT" : "valid again");
      }
      return true;
    default:
      if (refusals_.allow()) {
        log::error("testdev: unknown control %u (value 0x%x)\n", static_cast<unsigned>(ctl), value);
      }
      return false;
  }
  if (status != tlfs::Status::kSuccess) {
    if (!refusals_.allow()) return false;
    log::error("testdev: control %u conn %u vp %u sint %u: %s\n", static_cast<unsigned>(ctl), conn,
               vp, sint, tlfs::status_name(status));
    return false;
  }
  return true;
}

}  // namespace microhv
