#include "hypercall/call_args.hpp"

namespace microhv {

uint64_t CallInput::bytes() const {
  return static_cast<uint64_t>(layout_.fixed_bytes) + 8ull * layout_.var_qwords +
         static_cast<uint64_t>(layout_.element_bytes) * layout_.element_count;
}

bool CallInput::read(uint32_t offset, void* dst, uint32_t size) const {
  const uint64_t end = static_cast<uint64_t>(offset) + size;
  if (end > bytes()) return false;
  if (memory_ != nullptr) return memory_->read(gpa_ + offset, dst, size);
  if (end > sizeof(regs_)) return false;  // the ABI never builds a larger fast block
  __builtin_memcpy(dst, reinterpret_cast<const uint8_t*>(regs_) + offset, size);
  return true;
}

bool CallInput::var_qword(uint32_t i, uint64_t* value) const {
  if (i >= layout_.var_qwords) return false;
  return read(layout_.fixed_bytes + 8 * i, value, 8);
}

bool CallInput::element(uint32_t i, void* dst) const {
  if (i >= layout_.element_count || layout_.element_bytes == 0) return false;
  const uint64_t offset = layout_.fixed_bytes + 8ull * layout_.var_qwords +
                          static_cast<uint64_t>(i) * layout_.element_bytes;
  return offset <= 0xFFFFFFFFull && read(static_cast<uint32_t>(offset), dst, layout_.element_bytes);
}

bool CallOutput::element(uint32_t i, const void* src) {
  if (memory_ == nullptr || i >= count_) return false;
  return memory_->write(gpa_ + static_cast<uint64_t>(i) * element_bytes_, src, element_bytes_);
}

}  // namespace microhv
