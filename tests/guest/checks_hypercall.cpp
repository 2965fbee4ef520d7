// Groups "hypercall" (the x64 hypercall ABI) and "port" (CreatePort,
// ConnectPort).
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr uint64_t kPost = static_cast<uint64_t>(tlfs::CallCode::kPostMessage);
constexpr uint64_t kUnknownCode = 0xFFFF;
constexpr uint64_t kOutsideRam = 0xF000000000ull;  // 960 GiB: no guest RAM there

// A PostMessage input to an unknown connection at env.in + offset: if the ABI
// check under test were missing, the call would fail with
// INVALID_CONNECTION_ID instead and post nothing.
uint64_t harmless_post_at(size_t offset) {
  memset(env.in, 0, 2 * 4096);
  tlfs::PostMessageInput in{};
  in.connection_id = kConnUnknown;
  in.message_type = 1;
  in.payload_size = 4;
  memcpy(env.in + offset, &in, sizeof(in));
  return reinterpret_cast<uint64_t>(env.in) + offset;
}

// The call ran, returned a status other than SUCCESS and did not fault.
bool check_refused(const char* name, const HvResult& r, const char* what) {
  char got[128];
  bool ok = r.ran && !r.fault.faulted && (r.rax & 0xFFFF) != 0;
  return check(name, ok, "%s: expected a failure status, got %s", what,
               describe(r, got, sizeof(got)));
}

}  // namespace

// ------------------------------------------------------------------ hypercall
void group_hypercall() {
  ensure_hypercall();
  const uint64_t out = reinterpret_cast<uint64_t>(env.out);
  char got[128];

  check_status("hypercall-page-unknown-code", hypercall(kUnknownCode, harmless_post_at(0), out),
               Status::kInvalidHypercallCode, "call code 0xffff through the hypercall page");
  check_status("hypercall-vmcall-direct-unknown-code",
               hypercall(kUnknownCode, harmless_post_at(0), out, Via::kVmcall),
               Status::kInvalidHypercallCode, "call code 0xffff by a direct VMCALL");
  check_status("hypercall-vmcall-direct-post-unknown-connection",
               hypercall(kPost, harmless_post_at(0), out, Via::kVmcall),
               Status::kInvalidConnectionId, "PostMessage to connection 0x2fff by a direct VMCALL");

  {
    static const unsigned kBits[] = {27, 28, 29, 30, 44, 45, 46, 47, 60, 61, 62, 63};
    const char* name = "hypercall-reserved-control-bits";
    bool ok = true;
    for (unsigned bit : kBits) {
      HvResult r = hypercall(kPost | (1ull << bit), harmless_post_at(0), out);
      if (!is_status(r, Status::kInvalidHypercallInput)) {
        fail(name,
             "PostMessage with control bit %u set: expected 0x0003 INVALID_HYPERCALL_INPUT, got %s",
             bit, describe(r, got, sizeof(got)));
        ok = false;
        break;
      }
    }
    if (ok) pass(name);
  }
  check_status("hypercall-rep-count-on-simple-call",
               hypercall(kPost | (1ull << tlfs::control::kRepCountShift), harmless_post_at(0), out),
               Status::kInvalidHypercallInput, "PostMessage with rep count 1");
  check_status("hypercall-rep-start-on-simple-call",
               hypercall(kPost | (1ull << tlfs::control::kRepStartShift), harmless_post_at(0), out),
               Status::kInvalidHypercallInput, "PostMessage with rep start 1");
  check_status(
      "hypercall-var-header-on-simple-call",
      hypercall(kPost | (1ull << tlfs::control::kVarHeaderShift), harmless_post_at(0), out),
      Status::kInvalidHypercallInput, "PostMessage with variable header size 1");
  check_status("hypercall-misaligned-input", hypercall(kPost, harmless_post_at(4), out),
               Status::kInvalidAlignment, "PostMessage input at page+4");
  check_status("hypercall-input-crosses-page", hypercall(kPost, harmless_post_at(4096 - 8), out),
               Status::kInvalidAlignment, "256-byte PostMessage input at page+0xff8");
  check_status("hypercall-input-outside-ram", hypercall(kPost, kOutsideRam, out),
               Status::kInvalidAlignment, "PostMessage input GPA 0xf000000000");
  skip("hypercall-cpl3-ud",
       "VMCALL from CPL3 (#UD) needs a ring-3 setup; covered by the host tests");
}

// ------------------------------------------------------------------ port
void group_port() {
  ensure_hypercall();
  using tlfs::PortType;

  HvResult r = create_port(kPortMsg, PortType::kMessage, kSintMsg, 0);
  bool created = check_status("port-create-message", r, Status::kSuccess,
                              "CreatePort 0x1001 message SINT3 VP0");
  r = connect_port(kConnMsg, kPortMsg, PortType::kMessage);
  bool connected =
      check_status("port-connect-message", r, Status::kSuccess, "ConnectPort 0x2001 -> 0x1001");
  mark_port(kPortMsg, created, connected);

  check_refused("port-create-duplicate-fails",
                create_port(kPortMsg, PortType::kMessage, kSintMsg, 0), "CreatePort 0x1001 again");
  check_refused("port-connect-duplicate-fails",
                connect_port(kConnMsg, kPortMsg, PortType::kMessage), "ConnectPort 0x2001 again");

  r = create_port(kPortEvt, PortType::kEvent, kSintEvt, 0, kEvtBaseFlag, kEvtFlagCount);
  created = check_status("port-create-event", r, Status::kSuccess,
                         "CreatePort 0x1002 event SINT4 flags 8..23");
  r = connect_port(kConnEvt, kPortEvt, PortType::kEvent);
  connected =
      check_status("port-connect-event", r, Status::kSuccess, "ConnectPort 0x2002 -> 0x1002");
  mark_port(kPortEvt, created, connected);

  r = create_port(kPortBig, PortType::kEvent, kSintEvt, 0, 0, tlfs::kFlagsPerSint + 1);
  check_refused("port-create-event-flag-count-too-large", r, "CreatePort event with 2049 flags");
  if (is_status(r, Status::kSuccess)) delete_port(kPortBig);

  r = create_port(kPortBadSint, PortType::kMessage, 16, 0);
  check_refused("port-create-invalid-sint", r, "CreatePort message port with target SINT 16");
  if (is_status(r, Status::kSuccess)) delete_port(kPortBadSint);

  r = connect_port(kConnUnknown - 1, kPortUnknown, PortType::kMessage);
  check_refused("port-connect-unknown-port", r, "ConnectPort 0x2ffe -> nonexistent port 0x1fff");
  if (is_status(r, Status::kSuccess)) disconnect_port(kConnUnknown - 1);
}

}  // namespace guest
