// histogram: counts of observed values in fixed buckets, lock-free on the
// writer's side; read as a snapshot (cumulative counts, as Prometheus wants).
// The store keeps its commit latency and group-commit batch sizes in these.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace cohort {

struct histogram_snapshot {
  std::vector<double> bounds;                ///< upper bounds, ascending (+Inf implied)
  std::vector<std::uint64_t> cumulative;     ///< observations <= each bound, then the total
  double sum = 0;
};

class histogram {
 public:
  explicit histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
  }

  void observe(double v) noexcept {
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    // One writer (the committer thread): a load and a store are enough.
    sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }

  [[nodiscard]] histogram_snapshot snapshot() const {
    histogram_snapshot s;
    s.bounds = bounds_;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      running += counts_[i].load(std::memory_order_relaxed);
      s.cumulative.push_back(running);
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

}  // namespace cohort
