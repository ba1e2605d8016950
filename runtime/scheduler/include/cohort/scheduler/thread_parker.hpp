// thread_parker: puts one thread to sleep until another wakes it, on a futex
// word of its own.
//
// Why not a condition variable shared by every idle thread: glibc's makes the
// signalling side wait for earlier waiters whose timed waits expired to leave
// their group (__condvar_quiesce_and_switch_g1), and the signaller notifies
// under the queue's lock, so the I/O thread, which hands every request to the
// scheduler, sat in futex_wait inside share(): 30% of its time at 64 requests
// in flight (perf, 2026-11-28). A parker has one sleeper and one waker at a
// time (the waker takes the sleeper off the idle list under the lock first),
// so waking is one store and one FUTEX_WAKE, done after the lock is released.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace cohort::scheduler {

class thread_parker {
 public:
  thread_parker() = default;
  /// A worker's data is copied by CAF before its thread starts: a copy is a
  /// fresh parker.
  thread_parker(const thread_parker&) noexcept {}
  thread_parker& operator=(const thread_parker&) = delete;

  /// Called by the sleeper before it makes itself findable by wakers: an
  /// unpark() from then on ends the next park_for() (even one not begun yet).
  void prepare() noexcept { word_.store(0, std::memory_order_relaxed); }

  /// Sleeps until unpark() or `timeout`; true if unparked.
  bool park_for(std::chrono::nanoseconds timeout) noexcept;

  /// Wakes the sleeper (or makes its next park_for() return at once).
  void unpark() noexcept;

 private:
  std::atomic<std::int32_t> word_{0};  ///< 0: not woken; 1: woken
};

}  // namespace cohort::scheduler
