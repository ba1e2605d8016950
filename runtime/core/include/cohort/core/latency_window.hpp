// latency_window: the last N samples of one latency (restart latency of a
// service's children), for percentiles in status and the bench. Thread-safe;
// recorded rarely (once per restart), so a mutex is cheap enough.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace cohort::detail {

class latency_window {
 public:
  static constexpr std::size_t capacity = 1024;

  struct summary {
    std::uint64_t count = 0;  ///< samples ever recorded
    double p50_us = -1, p99_us = -1, max_us = -1;  ///< over the last `capacity`; -1 when none
  };

  void record(double micros) {
    std::lock_guard<std::mutex> guard(mutex_);
    samples_[count_ % capacity] = micros;
    ++count_;
  }

  [[nodiscard]] summary read() const {
    std::vector<double> v;
    summary s;
    {
      std::lock_guard<std::mutex> guard(mutex_);
      s.count = count_;
      v.assign(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(count_, capacity)));
    }
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    auto at = [&](double p) { return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))]; };
    s.p50_us = at(0.50);
    s.p99_us = at(0.99);
    s.max_us = v.back();
    return s;
  }

 private:
  mutable std::mutex mutex_;
  std::array<double, capacity> samples_{};
  std::uint64_t count_ = 0;
};

}  // namespace cohort::detail
