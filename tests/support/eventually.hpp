// eventually: the one way tests wait for a state, polled, bounded in time.
// Tests order themselves by observed state, never by a sleep.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace cohort::test {

/// Polls `cond` every `every` for at most `limit`; true once it holds.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds limit = std::chrono::milliseconds(5000),
                       std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(every);
  }
  return cond();
}

}  // namespace cohort::test
