// A test-and-test-and-set spinlock. Never held across VM entry.
#pragma once

#include "kernel/base/log.hpp"

namespace microhv {

class SpinLock {
 public:
  void lock() {
    while (__atomic_exchange_n(&locked_, true, __ATOMIC_ACQUIRE)) {
      while (__atomic_load_n(&locked_, __ATOMIC_RELAXED)) __builtin_ia32_pause();
    }
  }
  void unlock() { __atomic_store_n(&locked_, false, __ATOMIC_RELEASE); }
  bool is_locked() const { return __atomic_load_n(&locked_, __ATOMIC_RELAXED); }

 private:
  bool locked_ = false;
};

// A spinlock whose holder never writes to the log: lines logged while it is
// held wait in the CPU's deferred log (log::hold) and go out right after the
// unlock. Hypervisor::lock is one, so nothing a guest provokes under it
// reaches the polled serial port inside the critical section.
class SpinLockDeferringLog {
 public:
  void lock() {
    lock_.lock();
    log::hold();
  }
  void unlock() {
    const bool pending = log::release();
    lock_.unlock();
    if (pending) log::write_held();
  }
  bool is_locked() const { return lock_.is_locked(); }

 private:
  SpinLock lock_;
};

template <typename Lock>
class LockGuard {
 public:
  explicit LockGuard(Lock& l) : lock_(l) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Lock& lock_;
};

}  // namespace microhv
