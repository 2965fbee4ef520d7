// How the portable core asks for an interrupt: "deliver vector V to VP n".
// The VT-x back end queues it for event injection on that VP's CPU (kicking
// the CPU if needed); host tests record it.
#pragma once

#include "kernel/base/types.hpp"

namespace microhv {

class InterruptSink {
 public:
  // `auto_eoi`: the SINT is AutoEOI, so the guest will not EOI it.
  virtual void raise(VpIndex vp, uint8_t vector, bool auto_eoi) = 0;

 protected:
  ~InterruptSink() = default;
};

}  // namespace microhv
