// The smp group's harness (checks_smp.cpp): VP 1 runs a command loop that
// the BSP drives through a mailbox, and every wait is bounded. Internal to
// checks_smp.cpp and smp_vp1.cpp.
#pragma once

#include <stdarg.h>

#include "kernel/base/log.hpp"
#include "tests/guest/suite.hpp"

namespace guest::smp {

constexpr unsigned kAp = 1;
constexpr uint8_t kVecWake = kIrqBase + 6;  // IPI that ends a halted wait on timeout
constexpr uint32_t kPortVp1 = 0x1011, kConnVp1 = 0x2011;
constexpr uint32_t kPortEvtVp1 = 0x1012, kConnEvtVp1 = 0x2012;
constexpr uint32_t kPortAny = 0x1013, kConnAny = 0x2013;
constexpr uint16_t kEvtFlag = 5;  // of flags 0..15
constexpr uint32_t kTypeSmp = 0x4D560500;

// ------------------------------------------------------------------ mailbox
enum Cmd : uint32_t {
  kCmdSetup = 1,
  kCmdVpIndex,
  kCmdWait,
  kCmdClearEomWait,
  kCmdCall,
  kCmdExit,
  kCmdTimeSample,  // read TIME_REF_COUNT, the TSC page at `arg`, TIME_REF_COUNT
  kCmdStimerHalt,  // STIMER0 CONFIG = arg, COUNT = now + ticks; wait halted for `vector`
};

struct Box {
  // Request (written by the BSP before it bumps seq).
  uint32_t cmd;
  uint8_t vector;
  uint32_t target;      // wait until irq_count(vector) >= target ...
  uint64_t ticks;       // ... at most this many TSC ticks (spinning; a halted
                        // wait ends on the target or the BSP's abort) ...
  uint64_t quiet;       // ... then this many more, to catch a duplicate
  bool halt;            // wait in `sti; hlt` instead of spinning
  void (*call)(void*);  // kCmdCall: runs on VP 1 (with IF = 0) until it returns; it
  void* call_arg;       // should return soon after `abort` is set
  uint64_t arg;         // the time commands' argument
  // Control.
  uint32_t seq;      // BSP: request number
  uint32_t done;     // AP: number of the last finished request
  uint32_t waiting;  // AP: number of the request whose wait loop has begun
  uint32_t abort;    // BSP: stop waiting now
  uint32_t running;  // AP: in the loop
  // Results (valid once done == seq).
  bool ok;
  uint64_t value;
  uint32_t count;    // irq_count(vector) at the end of the wait
  uint32_t wakeups;  // returns from hlt
  uint64_t halt_tsc;
  uint64_t res[3];  // the time commands' results
  char why[200];
};
extern Box g_box;
extern uint32_t g_seq;
extern bool g_ap_lost;  // a request was never answered: later ones fail at once
extern char g_lost_why[240];
extern uint64_t g_expect;  // a wait for something that should happen: 2 s, ends early
extern uint64_t g_quiet;   // a window in which nothing more may happen: 100 ms
extern uint64_t g_answer;  // VP 1 answering a request: 1 s

// ---- VP 1 (runs there under StartupThisAP): the command loop.
void ap_main(void*);

// ---- BSP side.
// Starts VP 1's command loop once per boot (MP services may start an AP
// only once here); later calls return whether it runs. The smp and rep
// groups share it; stop_vp1() (declared in suite.hpp) ends it.
bool start_vp1(char* why, size_t cap);
// kCmdCall: runs fn(arg) on VP 1; true once it has started there.
bool begin_call(uint32_t* seq, void (*fn)(void*), void* arg);
// Asks the call to return (abort) and waits for it.
bool end_call(uint32_t seq);
// Records that VP 1 stopped answering; later requests fail at once.
void lost(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Why VP 1 is silent (an exception it took, or nothing known).
const char* ap_silence(const char* what);
// Posts a request into the mailbox; returns its number.
uint32_t send(Cmd cmd, uint8_t vector = 0, uint32_t target = 0, uint64_t ticks = 0,
              uint64_t quiet = 0, bool halt = false);
// Waits (bounded) until `field` holds `seq`.
bool wait_for(const uint32_t& field, uint32_t seq, uint64_t ticks);
// Waits for request `seq` to be done; wakes VP 1 and gives up after `ticks`.
bool finish(uint32_t seq, uint64_t ticks, const char* what);
// A request VP 1 answers at once.
bool run(Cmd cmd, const char* what);
// Starts a wait on VP 1 for irq_count(vector) >= target; true once the
// wait loop runs.
bool begin_wait(uint32_t* seq, uint8_t vector, uint32_t target, uint64_t ticks, uint64_t quiet,
                bool halt, Cmd cmd = kCmdWait);
bool end_wait(uint32_t seq, uint64_t ticks, uint64_t quiet);
volatile tlfs::Message* ap_slot(uint8_t sint);
bool bsp_slot_empty();
void clear_bsp_slot();
void clear_ap_slot();
// FAIL lines for the checks `names` that cannot run any more.
void fail_rest(const char* const* names, size_t n, const char* why);
const char* latency(uint64_t began, uint64_t returned, uint64_t irq, char* buf, size_t cap);

// Posts to connection `conn` while VP 1 waits (spinning or halted) for one
// more SINT3 interrupt. Fills the results for the checks.
struct Delivery {
  HvResult post;
  bool ap_ready;  // VP 1 entered its wait
  bool finished;  // VP 1 answered
  uint32_t ap_irqs, bsp_irqs;
  uint32_t wakeups;
  uint64_t halt_tsc, post_tsc, posted_tsc, irq_tsc;
  bool in_ap_slot, in_bsp_slot;
  char why[160];
};

Delivery post_to_vp1(uint32_t conn, uint32_t seq_no, bool halt);

// The time group's checks on VP 1 (checks_time_vp1.cpp), run by the smp
// group while VP 1's command loop is up and its SynIC programmed.
void time_checks_on_vp1();
// VP 1's side of kCmdTimeSample and kCmdStimerHalt.
void ap_time_command(Box& b, uint32_t seq);
void ap_wait(Box& b, uint32_t seq);
bool make_port(uint32_t port, uint32_t conn, tlfs::PortType type, uint8_t sint, uint32_t vp,
               uint16_t base, uint16_t count, char* why, size_t cap);

}  // namespace guest::smp
