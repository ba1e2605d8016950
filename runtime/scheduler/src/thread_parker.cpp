#include "cohort/scheduler/thread_parker.hpp"

#include <cerrno>
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cohort::scheduler {

namespace {

static_assert(sizeof(std::atomic<std::int32_t>) == sizeof(std::int32_t), "a futex word is 32 bits");

long futex(std::atomic<std::int32_t>* word, int op, std::int32_t value, const timespec* timeout) {
  return ::syscall(SYS_futex, reinterpret_cast<std::int32_t*>(word), op, value, timeout, nullptr, 0);
}

}  // namespace

bool thread_parker::park_for(std::chrono::nanoseconds timeout) noexcept {
  using clock = std::chrono::steady_clock;
  const auto until = clock::now() + timeout;
  for (;;) {
    if (word_.load(std::memory_order_acquire) != 0) return true;
    const auto left = until - clock::now();
    if (left <= clock::duration::zero()) return false;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    // Sleeps only while the word is still 0 (EAGAIN otherwise); woken early
    // by a signal (EINTR) or spuriously, it looks again.
    if (futex(&word_, FUTEX_WAIT_PRIVATE, 0, &ts) != 0 && errno == ETIMEDOUT)
      return word_.load(std::memory_order_acquire) != 0;
  }
}

void thread_parker::unpark() noexcept {
  word_.store(1, std::memory_order_release);
  futex(&word_, FUTEX_WAKE_PRIVATE, 1, nullptr);
}

}  // namespace cohort::scheduler
