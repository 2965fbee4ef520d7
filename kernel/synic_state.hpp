// Per-VP Synthetic Interrupt Controller state (TLFS chapter 11), owned by
// the Vp as plain data: the SynIC MSRs and, per SINT, the FIFO of messages
// waiting for their SIM slot. What the MSRs mean is synic/; this is only
// the state and its decoding.
#pragma once

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/base/optional.hpp"
#include "kernel/base/types.hpp"
#include "kernel/message.hpp"

namespace microhv {

// The checked way to name a SINT: nothing for n >= 16.
constexpr Optional<SintIndex> sint_index(uint32_t n) {
  if (n >= tlfs::kSintCount) return kNone;
  return SintIndex(static_cast<uint8_t>(n));
}

struct MessageQueue {  // intrusive FIFO of MessageBuffer indices (kernel/ports.hpp)
  uint16_t head = kNoBuffer;
  uint16_t tail = kNoBuffer;
  uint16_t length = 0;
  bool empty() const { return head == kNoBuffer; }
};

struct SynicState {
  uint64_t scontrol = 0;
  uint64_t simp = 0;
  uint64_t siefp = 0;
  uint64_t sint[tlfs::kSintCount];
  MessageQueue queue[tlfs::kSintCount];
  uint16_t queued_sints = 0;  // bit n: queue[n] is not empty (EOM's fast path)

  SynicState() {
    for (auto& s : sint) s = tlfs::sint_bits::kReset;
  }

  bool enabled() const { return (scontrol & tlfs::synic_msr::kScontrolEnable) != 0; }
  bool sim_enabled() const { return (simp & tlfs::synic_msr::kPageEnable) != 0; }
  bool sief_enabled() const { return (siefp & tlfs::synic_msr::kPageEnable) != 0; }
  Gpa sim_page() const { return Gpa(simp & tlfs::synic_msr::kPageMask); }
  Gpa sief_page() const { return Gpa(siefp & tlfs::synic_msr::kPageMask); }
  uint64_t sint_msr(SintIndex n) const { return sint[n.value()]; }
  bool masked(SintIndex n) const { return (sint_msr(n) & tlfs::sint_bits::kMasked) != 0; }
  bool auto_eoi(SintIndex n) const { return (sint_msr(n) & tlfs::sint_bits::kAutoEoi) != 0; }
  uint8_t vector(SintIndex n) const { return static_cast<uint8_t>(sint_msr(n)); }
  MessageQueue& queue_of(SintIndex n) { return queue[n.value()]; }
  const MessageQueue& queue_of(SintIndex n) const { return queue[n.value()]; }
};

}  // namespace microhv
