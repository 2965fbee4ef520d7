// Group "smp": delivery across virtual processors. Needs >= 2 CPUs (MP
// services); with one CPU every check prints a SKIP line.
//
// VP index = MP-services processor number: the BSP is VP 0, AP 1 is VP 1.
// The BSP starts AP 1 once (StartupThisAP without waiting) in a command loop
// on our IDT; the BSP sends it commands through a mailbox (program its
// SynIC, read VP_INDEX, wait for a SINT interrupt spinning with IF=1 or in
// `sti; hlt`, free its SIM slot + EOM, exit) and bounds every wait in TSC
// ticks (tsc_hz(): a wait for a delivery ends early, at most 2 s; "nothing
// more" windows are 100 ms): a timeout is a FAIL line, never a hang. A
// halted VP 1 whose wait runs over is woken with an IPI (vector 0x56). The AP never prints; the BSP
// reads the AP's SIM and SIEF pages and its per-CPU interrupt counts directly.
//
// Ports (PortPartition = ConnectionPartition = SELF):
//   0x1011 message, SINT3, VP 1        connection 0x2011
//   0x1012 event,   SINT4, VP 1, flags 0..15   connection 0x2012
//   0x1013 message, SINT3, HV_ANY_VP   connection 0x2013
// VP 1 programs SINT3 = 0x50 and SINT4 = 0x51 (AutoEOI), like VP 0.
// The harness that drives VP 1 is smp_vp1.cpp.
#include "tests/guest/smp_vp1.hpp"

namespace guest {
namespace {

using namespace guest::smp;

constexpr const char* kStarted = "smp-ap-runs-suite-code";
constexpr const char* kVpIndex = "smp-vp-index-per-cpu";
constexpr const char* kApSynic = "smp-ap-synic-setup";
constexpr const char* kPorts = "smp-ports-target-vp1";
constexpr const char* kSpinOk = "smp-post-to-spinning-vp1-success";
constexpr const char* kSpinSlot = "smp-post-to-spinning-vp1-lands-in-vp1-slot";
constexpr const char* kSpinIrq = "smp-post-to-spinning-vp1-interrupts-vp1-once";
constexpr const char* kHaltWake = "smp-post-to-halted-vp1-wakes-it";
constexpr const char* kHaltIrq = "smp-post-to-halted-vp1-interrupts-vp1-once";
constexpr const char* kEvtFlagSet = "smp-signal-event-vp1-flag-in-vp1-sief";
constexpr const char* kEvtIrq = "smp-signal-event-vp1-interrupts-vp1-once";
constexpr const char* kBusyPending = "smp-busy-slot-vp1-message-pending";
constexpr const char* kBusyEom = "smp-busy-slot-vp1-eom-on-vp1-delivers-next";
constexpr const char* kAnyOk = "smp-any-vp-post-with-vp0-synic-disabled-success";
constexpr const char* kAnyVp1 = "smp-any-vp-post-with-vp0-synic-disabled-goes-to-vp1";
const char* const kAll[] = {kStarted,  kVpIndex,     kApSynic,  kPorts,   kSpinOk,
                            kSpinSlot, kSpinIrq,     kHaltWake, kHaltIrq, kEvtFlagSet,
                            kEvtIrq,   kBusyPending, kBusyEom,  kAnyOk,   kAnyVp1};

}  // namespace

void group_smp() {
  constexpr size_t kCount = sizeof(kAll) / sizeof(kAll[0]);
  if (mp_cpu_count() < 2) {
    char why[200];
    microhv::format(why, sizeof(why), "needs 2 CPUs (%s)", mp_note());
    for (const char* n : kAll) skip(n, why);
    return;
  }
  note("smp: %s", mp_note());
  if (!ensure_hypercall() || !ensure_synic()) {
    char why[200];
    microhv::format(why, sizeof(why), "prerequisite: %s", fixture_error());
    fail_rest(kAll, kCount, why);
    return;
  }
  char got[128], why[200] = "";
  set_non_auto_eoi(kVecWake, true);  // a real IPI: the handler EOIs the local APIC

  // Start VP 1 in the command loop (the rep group uses it too; main.cpp
  // stops it at the end).
  {
    const bool started = start_vp1(why, sizeof(why));
    if (!check(kStarted, started, "%s", why)) {
      microhv::format(why, sizeof(why), "prerequisite: AP 1 does not run suite code");
      fail_rest(kAll + 1, kCount - 1, why);
      return;
    }
  }

  // VP_INDEX per CPU.
  {
    MsrResult bsp = rdmsr(tlfs::msr::kVpIndex);
    bool ran = run(kCmdVpIndex, "rdmsr VP_INDEX on VP 1");
    char ap[220];
    if (!ran) {
      microhv::format(ap, sizeof(ap), "no answer (%s)", g_lost_why);
    } else if (!g_box.ok) {
      microhv::format(ap, sizeof(ap), "%s", g_box.why);
    } else {
      microhv::format(ap, sizeof(ap), "0x%lx", g_box.value);
    }
    check(kVpIndex, ran && g_box.ok && !bsp.fault.faulted && bsp.value == 0 && g_box.value == kAp,
          "VP_INDEX: on the BSP (processor 0) %s0x%lx (expected 0), on AP 1 %s (expected 1)",
          bsp.fault.faulted ? "faulted, " : "", bsp.value, ap);
  }

  // VP 1's SynIC and the ports.
  bool setup = run(kCmdSetup, "programming VP 1's SynIC");
  check(kApSynic, setup && g_box.ok, "%s", setup ? g_box.why : g_lost_why);
  bool ports = make_port(kPortVp1, kConnVp1, tlfs::PortType::kMessage, kSintMsg, kAp, 0, 0, why,
                         sizeof(why)) &&
               make_port(kPortEvtVp1, kConnEvtVp1, tlfs::PortType::kEvent, kSintEvt, kAp, 0, 16,
                         why, sizeof(why));
  check(kPorts, ports, "%s", why);
  if (!setup || !g_box.ok || !ports) {
    microhv::format(why, sizeof(why), "prerequisite: %s",
                    !setup || !g_box.ok ? "VP 1's SynIC setup failed" : "ports targeting VP 1");
    fail_rest(kAll + 4, kCount - 4, why);
    return;
  }
  clear_bsp_slot();

  // A post from VP 0 to a port on VP 1 while VP 1 spins with IF=1.
  {
    Delivery d = post_to_vp1(kConnVp1, 1, false);
    if (!d.ap_ready) {
      fail_rest(kAll + 4, 3, g_lost_why);
    } else {
      char lat[120];
      note("%s: VP 1's handler ran %s (TSC)", kSpinIrq,
           latency(d.post_tsc, d.posted_tsc, d.irq_tsc, lat, sizeof(lat)));
      check_status(kSpinOk, d.post, Status::kSuccess, "PostMessage to 0x2011 (port on VP 1)");
      check(kSpinSlot, d.in_ap_slot && !d.in_bsp_slot, "%s%s", d.in_ap_slot ? "" : d.why,
            d.in_bsp_slot ? "; the message (or another) is in VP 0's SIM slot 3" : "");
      check(kSpinIrq, d.finished && d.ap_irqs == 1 && d.bsp_irqs == 0,
            "interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)%s%s", kVecMsg,
            d.ap_irqs, d.bsp_irqs, d.finished ? "" : "; ", d.finished ? "" : g_lost_why);
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  // The same with VP 1 halted (`sti; hlt`): the delivery must wake it.
  {
    Delivery d = post_to_vp1(kConnVp1, 2, true);
    if (!d.ap_ready) {
      fail_rest(kAll + 7, 2, g_lost_why);
    } else {
      char lat[120];
      note(
          "%s: VP 1 entered hlt at TSC %lu, VP 0 posted at TSC %lu; VP 1 returned from hlt %u "
          "time(s); its handler ran %s",
          kHaltWake, d.halt_tsc, d.post_tsc, d.wakeups,
          latency(d.post_tsc, d.posted_tsc, d.irq_tsc, lat, sizeof(lat)));
      char got2[128];
      check(kHaltWake,
            d.finished && is_status(d.post, Status::kSuccess) && d.in_ap_slot && d.ap_irqs >= 1,
            "PostMessage %s; VP 1 %s; message %s%s", describe(d.post, got2, sizeof(got2)),
            d.finished ? (d.ap_irqs >= 1 ? "woke with the interrupt"
                                         : "was not interrupted (its "
                                           "wait was ended by our IPI)")
                       : g_lost_why,
            d.in_ap_slot ? "in VP 1's slot" : "missing: ", d.in_ap_slot ? "" : d.why);
      check(kHaltIrq, d.finished && d.ap_irqs == 1 && d.bsp_irqs == 0,
            "interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)", kVecMsg, d.ap_irqs,
            d.bsp_irqs);
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  // SignalEvent from VP 0 to an event port on VP 1.
  {
    memset(env.cpu[kAp].sief, 0, 4096);
    memset(env.sief, 0, 4096);
    const uint32_t ap0 = irq_count_on(kAp, kVecEvt);
    const uint32_t bsp0 = irq_count(kVecEvt);
    uint32_t seq = 0;
    if (!begin_wait(&seq, kVecEvt, ap0 + 1, g_expect, g_quiet, false)) {
      fail_rest(kAll + 9, 2, g_lost_why);
    } else {
      const uint64_t began = rdtsc();
      HvResult r = signal_event(kConnEvtVp1, kEvtFlag, false);
      const uint64_t returned = rdtsc();
      bool finished = end_wait(seq, g_expect, g_quiet);
      char lat[120];
      note("%s: VP 1's handler ran %s", kEvtIrq,
           latency(began, returned, irq_tsc_on(kAp, kVecEvt), lat, sizeof(lat)));
      uint32_t bsp = wait_irq(kVecEvt, bsp0 + 1, kSpinQuiet) - bsp0;
      uint32_t ap = irq_count_on(kAp, kVecEvt) - ap0;
      // The only set bit of VP 1's SIEF page must be SINT4's flag 5.
      int found = -1, bits = 0;
      for (int i = 0; i < 4096 * 8; ++i) {
        if ((env.cpu[kAp].sief[i / 8] >> (i % 8)) & 1) {
          found = i;
          ++bits;
        }
      }
      bool bsp_clean = true;
      for (int i = 0; i < 4096; ++i) bsp_clean = bsp_clean && env.sief[i] == 0;
      const int want = kSintEvt * 2048 + kEvtFlag;
      check(kEvtFlagSet, is_status(r, Status::kSuccess) && bits == 1 && found == want && bsp_clean,
            "SignalEvent 0x2012 flag %u: %s; VP 1's SIEF: %d bit(s) set, last %d (expected only "
            "bit %d); VP 0's SIEF %s",
            kEvtFlag, describe(r, got, sizeof(got)), bits, found, want,
            bsp_clean ? "clean" : "has a bit set");
      check(kEvtIrq, finished && ap == 1 && bsp == 0,
            "interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)%s", kVecEvt, ap, bsp,
            finished ? "" : g_lost_why);
    }
    memset(env.cpu[kAp].sief, 0, 4096);
    memset(env.sief, 0, 4096);
  }

  // Busy slot on VP 1: message A stays in the slot, B is queued (SUCCESS,
  // MessagePending, no interrupt); VP 1 frees the slot and writes EOM: B
  // arrives with one interrupt.
  {
    Delivery a = post_to_vp1(kConnVp1, 3, false);
    if (!a.ap_ready || !a.finished || !a.in_ap_slot || a.ap_irqs != 1) {
      microhv::format(why, sizeof(why), "prerequisite: message A was not delivered to VP 1 (%s)",
                      g_ap_lost ? g_lost_why : (a.in_ap_slot ? "no interrupt" : a.why));
      fail_rest(kAll + 11, 2, why);
    } else {
      const uint32_t ap0 = irq_count_on(kAp, kVecMsg);
      uint32_t seq = 0;
      // VP 1 watches for an (unwanted) interrupt while B is posted.
      if (!begin_wait(&seq, kVecMsg, ap0 + 1, g_quiet, 0, false)) {
        fail_rest(kAll + 11, 2, g_lost_why);
      } else {
        HvResult rb = post_message(kConnVp1, kTypeSmp + 4, 40, 0x74);
        bool finished = end_wait(seq, g_quiet, 0);
        uint32_t extra = irq_count_on(kAp, kVecMsg) - ap0;
        char wa[160];
        bool keeps_a =
            slot_matches_in(env.cpu[kAp].sim, kSintMsg, kTypeSmp + 3, 24, 0x73, wa, sizeof(wa));
        bool pending = (ap_slot(kSintMsg)->message_flags & tlfs::kMessageFlagPending) != 0;
        check(kBusyPending,
              finished && is_status(rb, Status::kSuccess) && keeps_a && pending && extra == 0,
              "post B to busy VP 1 slot: %s (expected SUCCESS); slot %s; MessagePending %u "
              "(expected 1); interrupts on VP 1 %u (expected 0)",
              describe(rb, got, sizeof(got)), keeps_a ? "keeps A" : wa, pending ? 1u : 0u, extra);
        // VP 1 frees the slot and writes EOM, then waits for B.
        if (!begin_wait(&seq, kVecMsg, ap0 + 1, g_expect, g_quiet, false, kCmdClearEomWait)) {
          fail(kBusyEom, "%s", g_lost_why);
        } else {
          finished = end_wait(seq, g_expect, g_quiet);
          uint32_t irqs = irq_count_on(kAp, kVecMsg) - ap0;
          char wb[160];
          bool has_b =
              slot_matches_in(env.cpu[kAp].sim, kSintMsg, kTypeSmp + 4, 40, 0x74, wb, sizeof(wb));
          bool still_pending = (ap_slot(kSintMsg)->message_flags & tlfs::kMessageFlagPending) != 0;
          check(kBusyEom, finished && has_b && irqs == 1 && !still_pending && bsp_slot_empty(),
                "after VP 1's clear + EOM: %s; interrupts on VP 1 %u (expected 1); "
                "MessagePending %u (expected 0)%s%s",
                has_b ? "B in VP 1's slot" : wb, irqs, still_pending ? 1u : 0u,
                bsp_slot_empty() ? "" : "; VP 0's slot 3 is not empty", finished ? "" : g_lost_why);
        }
      }
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  // HV_ANY_VP: with VP 0's SynIC disabled the message must go to VP 1.
  {
    bool made = make_port(kPortAny, kConnAny, tlfs::PortType::kMessage, kSintMsg, tlfs::kAnyVp, 0,
                          0, why, sizeof(why));
    Fault f = made ? wrmsr(tlfs::msr::kScontrol, 0) : Fault{};
    if (!made || f.faulted) {
      if (f.faulted)
        microhv::format(why, sizeof(why), "wrmsr SCONTROL=0 on VP 0 raised %s",
                        vector_name(f.vector));
      fail(kAnyOk, "setup: %s", why);
      fail(kAnyVp1, "setup: %s", why);
    } else {
      Delivery d = post_to_vp1(kConnAny, 5, false);
      wrmsr(tlfs::msr::kScontrol, 1);
      if (!d.ap_ready) {
        fail_rest(kAll + 13, 2, g_lost_why);
      } else {
        check_status(kAnyOk, d.post, Status::kSuccess,
                     "PostMessage to 0x2013 (HV_ANY_VP port) with SCONTROL=0 on VP 0");
        check(kAnyVp1, d.in_ap_slot && !d.in_bsp_slot && d.ap_irqs == 1 && d.bsp_irqs == 0,
              "%s%s; interrupts on 0x%x: VP 1 %u (expected 1), VP 0 %u (expected 0)",
              d.in_ap_slot ? "message in VP 1's slot" : d.why,
              d.in_bsp_slot ? "; VP 0's slot 3 is not empty" : "", kVecMsg, d.ap_irqs, d.bsp_irqs);
      }
    }
    clear_ap_slot();
    clear_bsp_slot();
  }

  time_checks_on_vp1();
}

}  // namespace guest
