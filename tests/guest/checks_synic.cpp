// Groups "message" (PostMessage delivery and the SIM slot handshake), "seed"
// (every status row of HvCallPostMessage), "event" (SignalEvent) and "sint"
// (non-AutoEOI and masked SINTs).
#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest {
namespace {

constexpr uint32_t kTypeBase = 0x4D560000;  // guest message types: MSB clear, nonzero
constexpr uint32_t type_of(uint32_t seq) {
  return kTypeBase + seq;
}

// Fails every name in `names` with the fixture's reason; returns `ok`.
template <size_t N>
bool prerequisite(bool ok, const char* const (&names)[N]) {
  if (ok) return true;
  for (const char* n : names) fail(n, "prerequisite: %s", fixture_error());
  return false;
}

bool slot_empty(uint8_t sint) {
  return sim_slot(sint)->message_type == tlfs::kMessageTypeNone;
}
bool slot_pending(uint8_t sint) {
  return (sim_slot(sint)->message_flags & tlfs::kMessageFlagPending) != 0;
}

// Waits for one more interrupt than `before`, then a quiet window to catch a
// duplicate; returns the number of interrupts seen since `before`.
uint32_t wait_one(uint8_t vector, uint32_t before) {
  wait_irq(vector, before + 1, kSpinExpect);
  return wait_irq(vector, before + 2, kSpinQuiet) - before;
}

// Repairs the message SINT after an unexpected delivery so later checks start clean.
void repair_slot(uint8_t sint, uint8_t vector) {
  for (int i = 0; i < 20 && !slot_empty(sint); ++i) {
    uint32_t c = irq_count(vector);
    clear_slot_and_eom(sint, true);
    wait_irq(vector, c + 1, kSpinQuiet);
  }
}

// A post that must fail with `expected` and deliver nothing to SINT3.
void expect_post_rejected(const char* name, uint32_t conn, uint32_t type, uint32_t size,
                          Status expected, const char* what) {
  repair_slot(kSintMsg, kVecMsg);
  uint32_t c0 = irq_count(kVecMsg);
  HvResult r = post_message(conn, type, size, 0x55);
  if (is_status(r, Status::kSuccess)) wait_irq(kVecMsg, c0 + 1, kSpinQuiet);
  bool quiet = slot_empty(kSintMsg) && irq_count(kVecMsg) == c0;
  char got[128];
  check(name, is_status(r, expected) && quiet, "%s: expected 0x%04x %s and no delivery, got %s%s",
        what, static_cast<unsigned>(expected), status_text(static_cast<uint16_t>(expected)),
        describe(r, got, sizeof(got)), quiet ? "" : " and a delivery to SINT3");
  repair_slot(kSintMsg, kVecMsg);
}

}  // namespace

// ------------------------------------------------------------------ message
void group_message() {
  static constexpr const char* kPostOk = "post-message-success";
  static constexpr const char* kInSlot = "post-message-lands-in-sim-slot";
  static constexpr const char* kIrqOnce = "post-message-interrupts-once";
  static constexpr const char* kOnlySlot = "post-message-only-target-slot";
  static constexpr const char* kBusyOk = "post-message-busy-slot-succeeds";
  static constexpr const char* kBusyKeeps = "post-message-busy-slot-keeps-first";
  static constexpr const char* kPendingSet = "post-message-pending-flag-set";
  static constexpr const char* kBusyQuiet = "post-message-busy-slot-no-interrupt";
  static constexpr const char* kEomNext = "post-message-eom-delivers-next";
  static constexpr const char* kPendingTracks = "post-message-pending-flag-while-queued";
  static constexpr const char* kFifo = "post-message-fifo-third-with-240-bytes";
  static constexpr const char* kEomEmpty = "post-message-eom-empty-queue-no-delivery";
  static const char* const kAll[] = {kPostOk,  kInSlot,        kIrqOnce,    kOnlySlot,
                                     kBusyOk,  kBusyKeeps,     kPendingSet, kBusyQuiet,
                                     kEomNext, kPendingTracks, kFifo,       kEomEmpty};
  if (!prerequisite(ensure_hypercall() && ensure_synic() && ensure_port(kPortMsg), kAll)) return;

  const uint8_t s = kSintMsg;
  char why[160];
  repair_slot(s, kVecMsg);
  const uint32_t c0 = irq_count(kVecMsg);

  // Message 1 into the empty slot.
  check_status(kPostOk, post_message(kConnMsg, type_of(1), 16, 1), Status::kSuccess,
               "PostMessage to 0x2001, type 0x4d560001, 16 bytes");
  uint32_t seen = wait_one(kVecMsg, c0);
  bool m1 = slot_matches(s, type_of(1), 16, 1, why, sizeof(why));
  check(kInSlot, m1 && !slot_pending(s), "%s%s", m1 ? "" : why,
        m1 ? "MessagePending set with nothing queued" : "");
  check(kIrqOnce, seen == 1, "vector 0x%x: expected exactly 1 interrupt, got %u", kVecMsg, seen);
  {
    int other = -1;
    for (int i = 0; i < 16; ++i) {
      if (i != s && !slot_empty(static_cast<uint8_t>(i))) other = i;
    }
    check(kOnlySlot, other < 0, "SIM slot %d holds type 0x%x", other,
          other < 0 ? 0u
                    : static_cast<unsigned>(sim_slot(static_cast<uint8_t>(other))->message_type));
  }

  // Messages 2 and 3 while the slot is busy: accepted and queued.
  HvResult r2 = post_message(kConnMsg, type_of(2), 32, 2);
  HvResult r3 = post_message(kConnMsg, type_of(3), tlfs::kMaxPayload, 3);
  {
    char g2[96], g3[96];
    check(kBusyOk, is_status(r2, Status::kSuccess) && is_status(r3, Status::kSuccess),
          "two posts to a busy slot: expected SUCCESS twice, got %s and %s",
          describe(r2, g2, sizeof(g2)), describe(r3, g3, sizeof(g3)));
  }
  m1 = slot_matches(s, type_of(1), 16, 1, why, sizeof(why));
  check(kBusyKeeps, m1, "%s", why);
  check(kPendingSet, slot_pending(s),
        "MessageFlags of the busy slot: expected bit 0 set, got 0x%02x",
        sim_slot(s)->message_flags);
  seen = wait_irq(kVecMsg, c0 + 2, kSpinQuiet) - c0;
  check(kBusyQuiet, seen == 1, "interrupts after queueing: expected still 1, got %u", seen);

  // Clear + EOM: message 2 (message 3 still queued).
  clear_slot_and_eom(s, true);
  seen = wait_one(kVecMsg, c0 + 1) + 1;
  bool m2 = slot_matches(s, type_of(2), 32, 2, why, sizeof(why));
  check(kEomNext, m2 && seen == 2, "after clear+EOM: %s; interrupts expected 2, got %u",
        m2 ? "message 2 ok" : why, seen);
  check(kPendingTracks, m2 && slot_pending(s),
        "message 2 with message 3 queued: expected MessagePending, flags 0x%02x%s",
        sim_slot(s)->message_flags, m2 ? "" : " (message 2 missing)");

  // Clear + EOM: message 3, 240-byte payload, queue now empty.
  clear_slot_and_eom(s, true);
  seen = wait_one(kVecMsg, c0 + 2) + 2;
  bool m3 = slot_matches(s, type_of(3), tlfs::kMaxPayload, 3, why, sizeof(why));
  check(kFifo, m3 && seen == 3 && !slot_pending(s),
        "after the second clear+EOM: %s; interrupts expected 3, got %u; flags 0x%02x (pending "
        "expected clear)",
        m3 ? "message 3 ok" : why, seen, sim_slot(s)->message_flags);

  // Queue empty: clearing and an extra EOM deliver nothing.
  clear_slot_and_eom(s, true);
  seen = wait_irq(kVecMsg, c0 + 4, kSpinQuiet) - c0;
  check(kEomEmpty, slot_empty(s) && seen == 3,
        "EOM with an empty queue: slot type 0x%x, interrupts %u (expected 0, 3)",
        static_cast<unsigned>(sim_slot(s)->message_type), seen);
  repair_slot(s, kVecMsg);
}

// ------------------------------------------------------------------ seed
void group_seed() {
  static constexpr const char* kConnId = "seed-invalid-connection-id";
  static constexpr const char* kDeleted = "seed-invalid-port-id-deleted-port";
  static constexpr const char* kDisconnected = "seed-invalid-connection-id-after-disconnect";
  static constexpr const char* kEventPort = "seed-invalid-port-id-event-port";
  static constexpr const char* kTypeMsb = "seed-invalid-parameter-type-msb";
  static constexpr const char* kTypeZero = "seed-invalid-parameter-type-zero";
  static constexpr const char* kSize241 = "seed-invalid-parameter-payload-241";
  static constexpr const char* kSizeHuge = "seed-invalid-parameter-payload-0xffffffff";
  static constexpr const char* kBufAccepted =
      "seed-insufficient-buffers-slot-plus-16-queued-accepted";
  static constexpr const char* kBuf = "seed-insufficient-buffers";
  static constexpr const char* kBufDrain = "seed-insufficient-buffers-drain-in-order";
  static constexpr const char* kBufRecovers = "seed-insufficient-buffers-recovers";
  static constexpr const char* kVp = "seed-invalid-vp-index";
  static constexpr const char* kScontrol = "seed-invalid-synic-state-scontrol-disabled";
  static constexpr const char* kSimp = "seed-invalid-synic-state-simp-disabled";
  static const char* const kAll[] = {kConnId,   kDeleted,     kDisconnected, kEventPort,   kTypeMsb,
                                     kTypeZero, kSize241,     kSizeHuge,     kBufAccepted, kBuf,
                                     kBufDrain, kBufRecovers, kVp,           kScontrol,    kSimp};

  skip("seed-access-denied",
       "microhv grants the guest partition PostMessages; ACCESS_DENIED (and its precedence) is "
       "covered by the host "
       "tests");
  skip("seed-invalid-port-id-inactive-partition",
       "the guest is the only partition and is active; covered by the host tests");
  if (!prerequisite(ensure_hypercall() && ensure_synic() && ensure_port(kPortMsg), kAll)) return;
  char got[128];
  char why[160];

  expect_post_rejected(kConnId, kConnUnknown, type_of(1), 8, Status::kInvalidConnectionId,
                       "PostMessage to unknown connection 0x2fff");

  // Port deleted while the connection stays.
  if (!ensure_port(kPortDel)) {
    fail(kDeleted, "setup: %s", fixture_error());
    fail(kDisconnected, "setup: %s", fixture_error());
  } else {
    HvResult d = delete_port(kPortDel);
    if (!is_status(d, Status::kSuccess)) {
      fail(kDeleted, "DeletePort 0x1003: expected SUCCESS, got %s", describe(d, got, sizeof(got)));
    } else {
      mark_port(kPortDel, false, true);
      expect_post_rejected(kDeleted, kConnDel, type_of(1), 8, Status::kInvalidPortId,
                           "PostMessage to 0x2003 after DeletePort 0x1003");
    }
    HvResult dc = disconnect_port(kConnDel);
    if (!is_status(dc, Status::kSuccess)) {
      fail(kDisconnected, "DisconnectPort 0x2003: expected SUCCESS, got %s",
           describe(dc, got, sizeof(got)));
    } else {
      mark_port(kPortDel, false, false);
      expect_post_rejected(kDisconnected, kConnDel, type_of(1), 8, Status::kInvalidConnectionId,
                           "PostMessage to 0x2003 after DisconnectPort");
    }
  }
  if (!ensure_port(kPortEvt)) {
    fail(kEventPort, "setup: %s", fixture_error());
  } else {
    expect_post_rejected(kEventPort, kConnEvt, type_of(1), 8, Status::kInvalidPortId,
                         "PostMessage to 0x2002 (an event port)");
  }

  expect_post_rejected(kTypeMsb, kConnMsg, 0x80000001u, 8, Status::kInvalidParameter,
                       "MessageType 0x80000001");
  expect_post_rejected(kTypeZero, kConnMsg, 0, 8, Status::kInvalidParameter, "MessageType 0");
  expect_post_rejected(kSize241, kConnMsg, type_of(1), tlfs::kMaxPayload + 1,
                       Status::kInvalidParameter, "PayloadSize 241");
  expect_post_rejected(kSizeHuge, kConnMsg, type_of(1), 0xFFFFFFFFu, Status::kInvalidParameter,
                       "PayloadSize 0xffffffff");

  // INSUFFICIENT_BUFFERS: one message in the slot, 16 queued (the port's 16
  // buffers), the next post fails; then everything drains in order.
  if (!ensure_port(kPortBuf)) {
    static const char* const kBufNames[] = {kBufAccepted, kBuf, kBufDrain, kBufRecovers};
    for (const char* n : kBufNames) fail(n, "setup: %s", fixture_error());
  } else {
    constexpr uint32_t kTotal = 1 + tlfs::kMessageBuffersPerPort;  // 17
    auto size_of = [](uint32_t k) { return 8 + k; };
    repair_slot(kSintMsg, kVecMsg);
    const uint32_t c0 = irq_count(kVecMsg);
    uint32_t accepted = 0;
    HvResult r{};
    for (uint32_t k = 0; k < kTotal; ++k) {
      r = post_message(kConnBuf, type_of(0x100 + k), size_of(k), static_cast<uint8_t>(0x40 + k));
      if (!is_status(r, Status::kSuccess)) break;
      ++accepted;
      if (k == 0) wait_irq(kVecMsg, c0 + 1, kSpinExpect);  // the first one fills the slot
    }
    check(kBufAccepted, accepted == kTotal, "post %u of %u: expected SUCCESS, got %s", accepted + 1,
          kTotal, describe(r, got, sizeof(got)));
    HvResult over = post_message(kConnBuf, type_of(0x1FF), 8, 0x7F);
    check_status(kBuf, over, Status::kInsufficientBuffers,
                 "post with the slot busy and 16 messages queued");
    uint32_t extra = is_status(over, Status::kSuccess) ? 1 : 0;

    // Drain: each clear+EOM must bring the next message, in posting order.
    bool ok = true;
    uint32_t k = 0;
    for (; k < accepted && ok; ++k) {
      wait_irq(kVecMsg, c0 + k + 1, kSpinExpect);
      uint32_t seen = irq_count(kVecMsg) - c0;
      if (!slot_matches(kSintMsg, type_of(0x100 + k), size_of(k), static_cast<uint8_t>(0x40 + k),
                        why, sizeof(why))) {
        ok = false;
        fail(kBufDrain, "message %u: %s", k, why);
      } else if (seen != k + 1) {
        ok = false;
        fail(kBufDrain, "message %u: expected %u interrupts so far, got %u", k, k + 1, seen);
      } else if (slot_pending(kSintMsg) != (k + 1 < accepted + extra)) {
        ok = false;
        fail(kBufDrain, "message %u: MessagePending %s", k,
             slot_pending(kSintMsg) ? "set with nothing queued" : "clear with messages queued");
      } else {
        clear_slot_and_eom(kSintMsg, true);
      }
    }
    if (ok) {
      uint32_t seen = wait_irq(kVecMsg, c0 + accepted + 1, kSpinQuiet) - c0;
      check(kBufDrain, slot_empty(kSintMsg) && seen == accepted && accepted == kTotal,
            "after draining %u messages: slot type 0x%x, %u interrupts", accepted,
            static_cast<unsigned>(sim_slot(kSintMsg)->message_type), seen);
    }
    repair_slot(kSintMsg, kVecMsg);

    uint32_t c1 = irq_count(kVecMsg);
    HvResult again = post_message(kConnBuf, type_of(0x200), 8, 0x11);
    uint32_t seen = wait_one(kVecMsg, c1);
    bool m = slot_matches(kSintMsg, type_of(0x200), 8, 0x11, why, sizeof(why));
    check(kBufRecovers, is_status(again, Status::kSuccess) && m && seen == 1,
          "post after draining: %s, %s, %u interrupts", describe(again, got, sizeof(got)),
          m ? "delivered" : why, seen);
    repair_slot(kSintMsg, kVecMsg);
  }

  // INVALID_VP_INDEX: a port whose target VP (5) does not exist.
  {
    HvResult c = create_port(kPortVp5, tlfs::PortType::kMessage, kSintMsg, 5);
    if (is_status(c, Status::kInvalidVpIndex)) {
      note("%s: CreatePort refused target VP 5 with INVALID_VP_INDEX (PostMessage not reached)",
           kVp);
      pass(kVp);
    } else if (!is_status(c, Status::kSuccess)) {
      fail(kVp, "CreatePort with target VP 5: expected SUCCESS or INVALID_VP_INDEX, got %s",
           describe(c, got, sizeof(got)));
    } else {
      HvResult cn = connect_port(kConnVp5, kPortVp5, tlfs::PortType::kMessage);
      if (!is_status(cn, Status::kSuccess)) {
        fail(kVp, "ConnectPort 0x2005 -> 0x1005 (VP 5): expected SUCCESS, got %s",
             describe(cn, got, sizeof(got)));
      } else {
        note("%s: CreatePort accepted target VP 5; checking PostMessage", kVp);
        expect_post_rejected(kVp, kConnVp5, type_of(1), 8, Status::kInvalidVpIndex,
                             "PostMessage to 0x2005 whose port targets VP 5");
        disconnect_port(kConnVp5);
      }
      delete_port(kPortVp5);
    }
  }

  // INVALID_SYNIC_STATE: SynIC disabled, then SIM page disabled.
  {
    Fault f = wrmsr(tlfs::msr::kScontrol, 0);
    if (f.faulted) {
      fail(kScontrol, "wrmsr SCONTROL=0 raised %s", vector_name(f.vector));
    } else {
      expect_post_rejected(kScontrol, kConnMsg, type_of(1), 8, Status::kInvalidSynicState,
                           "PostMessage with SCONTROL=0");
    }
    wrmsr(tlfs::msr::kScontrol, 1);
    const uint64_t sim = reinterpret_cast<uint64_t>(env.sim);
    f = wrmsr(tlfs::msr::kSimp, sim);
    if (f.faulted) {
      fail(kSimp, "wrmsr SIMP=0x%lx (disabled) raised %s", sim, vector_name(f.vector));
    } else {
      // With the SIM page disabled the slot cannot show a delivery: count interrupts only.
      uint32_t c0 = irq_count(kVecMsg);
      HvResult r = post_message(kConnMsg, type_of(1), 8, 0x66);
      uint32_t seen = wait_irq(kVecMsg, c0 + 1, kSpinQuiet) - c0;
      check(kSimp, is_status(r, Status::kInvalidSynicState) && seen == 0,
            "PostMessage with SIMP disabled: expected 0x0018 INVALID_SYNIC_STATE and no interrupt, "
            "got %s, %u "
            "interrupts",
            describe(r, got, sizeof(got)), seen);
    }
    wrmsr(tlfs::msr::kSimp, sim | 1);
    repair_slot(kSintMsg, kVecMsg);
  }
}

// ------------------------------------------------------------------ event
void group_event() {
  static constexpr const char* kSlow = "event-signal-slow-success";
  static constexpr const char* kFlag = "event-flag-set-at-base-plus-flag";
  static constexpr const char* kIrq = "event-signal-interrupts-once";
  static constexpr const char* kAgain = "event-signal-again-while-set-no-interrupt";
  static constexpr const char* kFast = "event-signal-fast-form";
  static constexpr const char* kLast = "event-signal-last-flag-accepted";
  static constexpr const char* kEqCount = "event-flag-number-equal-count-rejected";
  static constexpr const char* kMaxFast = "event-flag-number-0xffff-rejected-fast";
  static constexpr const char* kUnknown = "event-signal-unknown-connection";
  static constexpr const char* kMsgPort = "event-signal-message-port-rejected";
  static const char* const kAll[] = {kSlow, kFlag,    kIrq,     kAgain,   kFast,
                                     kLast, kEqCount, kMaxFast, kUnknown, kMsgPort};
  if (!prerequisite(
          ensure_hypercall() && ensure_synic() && ensure_port(kPortEvt) && ensure_port(kPortMsg),
          kAll)) {
    return;
  }
  const uint8_t s = kSintEvt;
  volatile uint8_t* flags = sief_flags(s);
  auto flag_set = [&](unsigned bit) { return (flags[bit / 8] >> (bit % 8)) & 1; };
  auto clear_flag = [&](unsigned bit) {
    __atomic_and_fetch(const_cast<uint8_t*>(&flags[bit / 8]),
                       static_cast<uint8_t>(~(1u << (bit % 8))), __ATOMIC_SEQ_CST);
  };
  // Index of the only set bit in the whole SIEF page, or -1 / -2 (none / several).
  auto only_bit = [&]() {
    int found = -1;
    for (int i = 0; i < 4096 * 8; ++i) {
      if ((env.sief[i / 8] >> (i % 8)) & 1) {
        if (found >= 0) return -2;
        found = i;
      }
    }
    return found;
  };
  char got[128];
  const unsigned bit3 = kEvtBaseFlag + 3;
  const uint32_t c0 = irq_count(kVecEvt);

  check_status(kSlow, signal_event(kConnEvt, 3, false), Status::kSuccess,
               "SignalEvent 0x2002 flag 3 (slow)");
  uint32_t seen = wait_one(kVecEvt, c0);
  int only = only_bit();
  int want = s * 2048 + static_cast<int>(bit3);
  check(kFlag, only == want, "SIEF: expected only bit %d (SINT4 region, flag 8+3) set, got %s %d",
        want,
        only == -2   ? "several bits set"
        : only == -1 ? "no bit set"
                     : "only bit",
        only < 0 ? 0 : only);
  check(kIrq, seen == 1, "vector 0x%x: expected exactly 1 interrupt, got %u", kVecEvt, seen);

  HvResult r = signal_event(kConnEvt, 3, false);
  seen = wait_irq(kVecEvt, c0 + 2, kSpinQuiet) - c0;
  check(kAgain, is_status(r, Status::kSuccess) && seen == 1 && flag_set(bit3),
        "signal with the flag already set: expected SUCCESS, no interrupt, flag kept; got %s, %u "
        "interrupts, "
        "flag %u",
        describe(r, got, sizeof(got)), seen, flag_set(bit3));

  clear_flag(bit3);
  r = signal_event(kConnEvt, 3, true);
  seen = wait_one(kVecEvt, c0 + 1) + 1;
  check(kFast, is_status(r, Status::kSuccess) && seen == 2 && flag_set(bit3),
        "fast SignalEvent after the guest cleared the flag: expected SUCCESS, flag set, 2nd "
        "interrupt; got %s, "
        "flag %u, %u interrupts",
        describe(r, got, sizeof(got)), flag_set(bit3), seen);
  clear_flag(bit3);

  const unsigned last = kEvtBaseFlag + kEvtFlagCount - 1;
  r = signal_event(kConnEvt, kEvtFlagCount - 1, false);
  seen = wait_one(kVecEvt, c0 + 2) + 2;
  check(kLast, is_status(r, Status::kSuccess) && flag_set(last) && seen == 3,
        "SignalEvent flag 15 (count 16): expected SUCCESS, SIEF bit %u set, 3rd interrupt; got %s, "
        "bit %u, %u "
        "interrupts",
        last, describe(r, got, sizeof(got)), flag_set(last), seen);
  clear_flag(last);

  r = signal_event(kConnEvt, kEvtFlagCount, false);
  check(kEqCount, is_status(r, Status::kInvalidParameter) && only_bit() == -1,
        "SignalEvent flag 16 (count 16): expected 0x0005 INVALID_PARAMETER and no flag, got %s",
        describe(r, got, sizeof(got)));
  memset(env.sief, 0, 4096);
  r = signal_event(kConnEvt, 0xFFFF, true);
  check(kMaxFast, is_status(r, Status::kInvalidParameter) && only_bit() == -1,
        "fast SignalEvent flag 0xffff: expected 0x0005 INVALID_PARAMETER and no flag, got %s",
        describe(r, got, sizeof(got)));
  memset(env.sief, 0, 4096);
  check_status(kUnknown, signal_event(kConnUnknown, 0, false), Status::kInvalidConnectionId,
               "SignalEvent to unknown connection 0x2fff");
  check_status(kMsgPort, signal_event(kConnMsg, 0, false), Status::kInvalidPortId,
               "SignalEvent to 0x2001 (a message port)");
  // Absorb any stray interrupt from the rejected calls.
  wait_irq(kVecEvt, irq_count(kVecEvt) + 1, kSpinQuiet);
  memset(env.sief, 0, 4096);
}

// ------------------------------------------------------------------ sint
void group_sint() {
  static constexpr const char* kNoAuto = "sint-non-autoeoi-delivers";
  static constexpr const char* kNoAuto2 = "sint-non-autoeoi-redelivers-after-eoi";
  static constexpr const char* kMasked = "sint-masked-message-in-slot-no-interrupt";
  static const char* const kAll[] = {kNoAuto, kNoAuto2, kMasked};
  if (!prerequisite(ensure_hypercall() && ensure_synic(), kAll)) return;
  char got[128], why[160];

  if (!ensure_port(kPortNoAuto)) {
    fail(kNoAuto, "setup: %s", fixture_error());
    fail(kNoAuto2, "setup: %s", fixture_error());
  } else {
    const uint32_t c0 = irq_count(kVecNoAuto);
    for (uint32_t k = 1; k <= 2; ++k) {
      const char* name = k == 1 ? kNoAuto : kNoAuto2;
      HvResult r =
          post_message(kConnNoAuto, type_of(0x300 + k), 12, static_cast<uint8_t>(0x30 + k));
      uint32_t seen = wait_one(kVecNoAuto, c0 + k - 1) + k - 1;
      bool m = slot_matches(kSintNoAuto, type_of(0x300 + k), 12, static_cast<uint8_t>(0x30 + k),
                            why, sizeof(why));
      check(name, is_status(r, Status::kSuccess) && m && seen == k,
            "post %u to SINT5 (vector 0x%x, handler EOIs the APIC): %s, %s, interrupts expected %u "
            "got %u",
            k, kVecNoAuto, describe(r, got, sizeof(got)), m ? "delivered" : why, k, seen);
      clear_slot_and_eom(kSintNoAuto, false);
    }
    repair_slot(kSintNoAuto, kVecNoAuto);
  }

  if (!ensure_port(kPortMasked)) {
    fail(kMasked, "setup: %s", fixture_error());
  } else {
    const uint32_t c0 = irq_count(kVecMasked);
    HvResult r = post_message(kConnMasked, type_of(0x400), 20, 0x44);
    uint32_t seen = wait_irq(kVecMasked, c0 + 1, kSpinQuiet) - c0;
    bool m = slot_matches(kSintMasked, type_of(0x400), 20, 0x44, why, sizeof(why));
    check(kMasked, is_status(r, Status::kSuccess) && m && seen == 0,
          "post to masked SINT6: expected SUCCESS, message in slot 6, no interrupt; got %s, %s, %u "
          "interrupts",
          describe(r, got, sizeof(got)), m ? "in slot" : why, seen);
    clear_slot_and_eom(kSintMasked, true);
  }
}

}  // namespace guest
