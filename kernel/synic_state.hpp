// Per-VP Synthetic Interrupt Controller state (TLFS chapter 11): the SynIC
// MSRs and, per SINT, the FIFO of messages waiting for their SIM slot.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/base/types.hpp"

namespace microhv {

class Vp;

inline constexpr uint16_t kNoBuffer = 0xFFFF;

struct MessageQueue {  // intrusive FIFO of MessagePool buffer indices
  uint16_t head = kNoBuffer;
  uint16_t tail = kNoBuffer;
  uint16_t length = 0;
  bool empty() const { return head == kNoBuffer; }
};

struct SynicState {
  uint64_t scontrol = 0;
  uint64_t simp = 0;
  uint64_t siefp = 0;
  uint64_t sint[kSintCount];
  MessageQueue queue[kSintCount];
  uint16_t queued_sints = 0;  // bit n: queue[n] is not empty (EOM's fast path)

  SynicState() {
    for (auto& s : sint) s = tlfs::sint_bits::kReset;
  }

  bool enabled() const { return (scontrol & 1) != 0; }
  bool sim_enabled() const { return (simp & 1) != 0; }
  bool sief_enabled() const { return (siefp & 1) != 0; }
  Gpa sim_page() const { return Gpa(simp & ~kPageMask); }
  Gpa sief_page() const { return Gpa(siefp & ~kPageMask); }
  bool masked(uint32_t n) const { return (sint[n] & tlfs::sint_bits::kMasked) != 0; }
  bool auto_eoi(uint32_t n) const { return (sint[n] & tlfs::sint_bits::kAutoEoi) != 0; }
  uint8_t vector(uint32_t n) const { return static_cast<uint8_t>(sint[n]); }
};

// Guest acknowledged a message with an EOM write: deliver what is queued.
void synic_end_of_message(Vp& vp);
// The back end observed an EOI of `vector` on this VP: SINTs with that vector
// get their next queued message (TLFS 11.9.3, non-AutoEOI SINTs).
void synic_end_of_interrupt(Vp& vp, uint8_t vector);

}  // namespace microhv
