// What a hypercall handler sees of its call once the ABI (hypercall.cpp) has
// checked the control word and the GPAs (TLFS "Hypercall Interface"): the
// input block -- fixed header, variable header (RCX 26:17, in qwords) and
// rep input elements -- and the rep output elements, each bounds-checked
// against the block the caller declared; and which reps this exit processes.
#pragma once

#include <stdint.h>

#include "hypercall/tlfs/tlfs.hpp"
#include "kernel/platform/guest_memory.hpp"

namespace microhv {

// The reps one exit processes: [start, end) of `count` (0 for simple calls).
// A rep call longer than the ABI's batch is continued: the guest re-executes
// the VMCALL with rep start = end (TLFS "Hypercall Continuation").
struct RepWindow {
  uint32_t start = 0;
  uint32_t end = 0;
  uint32_t count = 0;
};

// A handler's answer. reps_completed counts from the start of the list
// (TLFS "Hypercall Outputs"): on SUCCESS the end of the window, on an error
// the index of the rep that failed (the window's start when the header did).
struct CallResult {
  tlfs::Status status;
  uint32_t reps_completed;
};

class CallInput {
 public:
  struct Layout {
    uint32_t fixed_bytes;    // the call's fixed header
    uint32_t var_qwords;     // the variable header the caller declared
    uint32_t element_bytes;  // one rep input element (0: none)
    uint32_t element_count;  // the rep count
  };
  // The memory form: the whole block lies in one page of guest RAM at `gpa`
  // (checked by the ABI; `memory` refuses anything else anyway).
  CallInput(GuestMemory& memory, Gpa gpa, const Layout& layout)
      : memory_(&memory), gpa_(gpa), layout_(layout) {}
  // The fast form: the 16 bytes of the two input registers.
  CallInput(uint64_t first, uint64_t second, const Layout& layout)
      : regs_{first, second}, layout_(layout) {}

  uint64_t bytes() const;
  uint32_t var_qwords() const { return layout_.var_qwords; }
  // Copies `size` bytes at `offset` within the block; false past its end
  // or when guest memory refuses the read.
  bool read(uint32_t offset, void* dst, uint32_t size) const;
  // Variable header qword `i` (after the fixed header).
  bool var_qword(uint32_t i, uint64_t* value) const;
  // Rep input element `i` (element_bytes of it).
  bool element(uint32_t i, void* dst) const;

 private:
  GuestMemory* memory_ = nullptr;  // nullptr: fast form
  Gpa gpa_{0};
  uint64_t regs_[2] = {0, 0};
  Layout layout_;
};

// Rep output elements, written at the output GPA the ABI checked.
class CallOutput {
 public:
  CallOutput() = default;
  CallOutput(GuestMemory& memory, Gpa gpa, uint32_t element_bytes, uint32_t element_count)
      : memory_(&memory), gpa_(gpa), element_bytes_(element_bytes), count_(element_count) {}
  // Writes output element `i`; false past the list or without output.
  bool element(uint32_t i, const void* src);

 private:
  GuestMemory* memory_ = nullptr;
  Gpa gpa_{0};
  uint32_t element_bytes_ = 0;
  uint32_t count_ = 0;
};

}  // namespace microhv
