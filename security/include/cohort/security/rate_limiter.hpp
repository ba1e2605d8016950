// rate_limiter: a token bucket per caller, so that one caller cannot take a
// front's capacity (or a service's restart intensity) from the others.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace cohort::security {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// `per_second` tokens a second, at most `burst` saved up; at most
  /// `max_callers` buckets (full, i.e. idle, ones are dropped first).
  rate_limiter(double per_second, double burst, std::size_t max_callers = 100000);

  /// Takes one token for `caller`; when none is left, how long until one is.
  [[nodiscard]] std::optional<std::chrono::milliseconds> take(const std::string& caller, clock::time_point now = clock::now());

  [[nodiscard]] std::size_t callers() const;

 private:
  struct bucket {
    double tokens;
    clock::time_point last;
  };
  void refill(bucket& b, clock::time_point now) const;

  double rate_, burst_;
  std::size_t max_callers_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, bucket> buckets_;
};

}  // namespace cohort::security
