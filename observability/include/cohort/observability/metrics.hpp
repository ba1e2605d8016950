// metrics: a node's metrics in the Prometheus data model. Two kinds: what is
// counted on the hot path (requests by service, method and result code;
// latency histograms), recorded into per-method handles with relaxed atomic
// counters (no lock: a request records on whichever thread answers it), and
// what is read at scrape time from the parts that already keep it (service
// states, restarts, the edge's counters, registry instances, ...), gathered by
// collectors the node registers. Both become prometheus-cpp families at scrape
// time, rendered in the text exposition format by its serializer.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace cohort::observability {

/// One method's request metrics on one side (server: requests this node
/// answered; client: calls its services made). Safe from any thread.
class method_metrics {
 public:
  /// Counts one answered request with its result code ("ok" or an error code)
  /// and observes its duration: three relaxed atomic additions for "ok".
  void record(std::string_view code, std::chrono::steady_clock::duration took);

  /// The histogram's upper bounds in seconds: from 50 µs (an in-process
  /// call) to 10 s (a deadline); one more bucket, +Inf, holds the rest.
  static constexpr std::array<double, 17> bounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                 0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};

 private:
  friend class metrics;
  std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};  ///< not cumulative; the last is +Inf
  std::atomic<std::uint64_t> sum_ns_{0};
  std::atomic<std::uint64_t> ok_{0};
  /// Other codes, a few per method: found under the lock (errors are rarer).
  /// Past 32 codes, new ones count as "other".
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::unique_ptr<std::atomic<std::uint64_t>>>> by_code_;
};

/// Builds gauge and counter families at scrape time.
class family_builder {
 public:
  /// Starts a family; `type` is prometheus::MetricType::Gauge, ::Counter or ::Histogram.
  family_builder& family(std::string name, std::string help, prometheus::MetricType type);
  /// Adds a sample to the family started last.
  family_builder& sample(std::vector<std::pair<std::string, std::string>> labels, double value);
  /// Adds a histogram to the family started last (type Histogram): upper
  /// bounds, cumulative counts per bound followed by the total, and the sum.
  family_builder& histogram(std::vector<std::pair<std::string, std::string>> labels, const std::vector<double>& bounds,
                            const std::vector<std::uint64_t>& cumulative, double sum);
  [[nodiscard]] std::vector<prometheus::MetricFamily> take() { return std::move(families_); }

 private:
  std::vector<prometheus::MetricFamily> families_;
};

class metrics {
 public:
  using collector = std::function<void(family_builder&)>;

  metrics();
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  /// The handle of `service.method` on the server side; label values are
  /// bounded (at most `max_methods` per service, then "other") so that no
  /// caller can grow the series without end.
  method_metrics& server(const std::string& service, const std::string& method);
  /// The same for calls made by services (the client side of ctx.call).
  method_metrics& client(const std::string& service, const std::string& method);

  /// Adds what is read at scrape time.
  void add_collector(collector c);

  /// Every family: the registry's and the collectors'.
  [[nodiscard]] std::vector<prometheus::MetricFamily> collect() const;
  /// Everything in the Prometheus text exposition format (version 0.0.4).
  [[nodiscard]] std::string render() const;
  /// All of it as one prometheus-cpp Collectable (for prometheus::Exposer).
  [[nodiscard]] std::shared_ptr<prometheus::Collectable> collectable();

  static constexpr std::size_t max_services = 256;
  static constexpr std::size_t max_methods = 64;

 private:
  method_metrics& handle(bool server, const std::string& service, const std::string& method);
  method_metrics& find_or_add(bool server, const std::string& service, const std::string& method);

  /// Tells this object's handles apart from another's in a thread's cache
  /// (handle()): never reused, unlike an address.
  const std::uint64_t serial_;
  mutable std::mutex mutex_;
  /// Per side (server, client): service -> method -> handle. Looked up on
  /// every request, so found without building a key.
  using method_handles = std::map<std::string, std::unique_ptr<method_metrics>, std::less<>>;
  std::map<std::string, method_handles, std::less<>> server_handles_, client_handles_;
  std::vector<collector> collectors_;
  std::shared_ptr<prometheus::Collectable> collectable_;
};

}  // namespace cohort::observability
