// The hypercall ABI engine (TLFS "Hypercall Interface"): decodes the control
// word, checks it against the shape of the call -- simple or rep, fixed and
// variable header, rep elements -- checks the input and output GPAs, runs
// rep calls in batches and continues long ones. The call table it runs
// against is hypercall/hypercall.cpp's; tests hand it their own.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hypercall/call_args.hpp"
#include "hypercall/hypercall.hpp"

namespace microhv {

struct CallShape {
  uint32_t fixed_bytes;        // the fixed input header
  bool var_header;             // accepts a variable header (RCX 26:17)
  uint32_t in_element_bytes;   // rep input element; a call with elements is a rep call
  uint32_t out_element_bytes;  // rep output element
  constexpr bool rep() const { return in_element_bytes != 0 || out_element_bytes != 0; }
};

using CallHandler = CallResult (*)(Vp& caller, const CallInput& in, CallOutput& out,
                                   RepWindow reps);

struct CallSpec {
  tlfs::CallCode code;
  CallShape shape;
  uint32_t privilege;  // CPUID 0x40000003.EBX bit the caller needs (0: none)
  uint32_t hints;      // CPUID 0x40000004.EAX bits the partition must offer (0: none)
  CallHandler handler;
};

// Reps one exit processes at most. Why 64: a rep of the calls microhv has
// (a GVA range to flush) is an 8-byte read, and each exit makes at most one
// round trip to the target VPs (an NMI kick, their INVVPIDs and their
// acknowledgments, a few microseconds on hardware), so a batch stays well
// inside the TLFS's 50 us per hypercall; a full page of GVA ranges (509)
// takes 8 exits, between which the caller takes its pending interrupts.
inline constexpr uint32_t kRepBatch = 64;

HypercallOutcome dispatch_hypercall(Vp& caller, const HypercallRegs& regs, const CallSpec* table,
                                    size_t table_size);

}  // namespace microhv
