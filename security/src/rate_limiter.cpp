#include "cohort/security/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace cohort::security {

rate_limiter::rate_limiter(double per_second, double burst, std::size_t max_callers)
    : rate_(per_second), burst_(std::max(1.0, burst)), max_callers_(max_callers) {}

void rate_limiter::refill(bucket& b, clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
  b.last = now;
}

std::optional<std::chrono::milliseconds> rate_limiter::take(const std::string& caller, clock::time_point now) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto it = buckets_.find(caller);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_callers_) {
      // Bounded: forget callers whose buckets are full again (idle ones).
      for (auto i = buckets_.begin(); i != buckets_.end();) {
        refill(i->second, now);
        i = i->second.tokens >= burst_ ? buckets_.erase(i) : std::next(i);
      }
      if (buckets_.size() >= max_callers_) return std::chrono::milliseconds(1000);
    }
    it = buckets_.emplace(caller, bucket{burst_, now}).first;
  }
  refill(it->second, now);
  if (it->second.tokens >= 1) {
    it->second.tokens -= 1;
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil((1 - it->second.tokens) / rate_ * 1000)));
}

std::size_t rate_limiter::callers() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return buckets_.size();
}

}  // namespace cohort::security
