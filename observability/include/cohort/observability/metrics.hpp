// metrics: a node's metrics in the Prometheus data model (prometheus-cpp).
// Two kinds: what is counted on the hot path (requests by service, method and
// result code; latency histograms), recorded into per-method handles resolved
// once, and what is read at scrape time from the parts that already keep it
// (service states, restarts, the edge's counters, registry instances, ...),
// gathered by collectors the node registers. Rendered in the text exposition
// format by prometheus-cpp's serializer.
#pragma once

#include <atomic>
#include <chrono>
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
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace cohort::observability {

/// One method's request metrics on one side (server: requests this node
/// answered; client: calls its services made). Safe from any thread.
class method_metrics {
 public:
  /// Counts one answered request with its result code ("ok" or an error code)
  /// and observes its duration.
  void record(std::string_view code, std::chrono::steady_clock::duration took);

 private:
  friend class metrics;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Histogram* duration_ = nullptr;
  std::map<std::string, std::string> labels_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, prometheus::Counter*>> by_code_;  ///< few codes: a short list
  /// The "ok" series once made: most requests count there without the lock.
  std::atomic<prometheus::Counter*> ok_{nullptr};
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

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* server_requests_;
  prometheus::Family<prometheus::Histogram>* server_duration_;
  prometheus::Family<prometheus::Counter>* client_requests_;
  prometheus::Family<prometheus::Histogram>* client_duration_;
  mutable std::mutex mutex_;
  /// Per side (server, client): service -> method -> handle. Looked up on
  /// every request, so found without building a key.
  using method_handles = std::map<std::string, std::unique_ptr<method_metrics>, std::less<>>;
  std::map<std::string, method_handles, std::less<>> server_handles_, client_handles_;
  std::vector<collector> collectors_;
  std::shared_ptr<prometheus::Collectable> collectable_;
};

}  // namespace cohort::observability
