#include "cohort/observability/metrics.hpp"

#include <limits>

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

namespace cohort::observability {

namespace {

constexpr std::size_t max_codes = 32;

/// The bounds in nanoseconds, to place a duration without a conversion.
constexpr std::array<std::int64_t, method_metrics::bounds.size()> bounds_ns() {
  std::array<std::int64_t, method_metrics::bounds.size()> ns{};
  for (std::size_t i = 0; i < ns.size(); ++i) ns[i] = static_cast<std::int64_t>(method_metrics::bounds[i] * 1e9 + 0.5);
  return ns;
}
constexpr auto bound_ns = bounds_ns();

std::atomic<std::uint64_t> next_serial{1};

}  // namespace

void method_metrics::record(std::string_view code, std::chrono::steady_clock::duration took) {
  const auto ns = std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
  std::size_t i = 0;
  while (i < bound_ns.size() && ns > bound_ns[i]) ++i;  // le: a duration equal to a bound is in its bucket
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
  if (code == "ok") {
    ok_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::atomic<std::uint64_t>* counter = nullptr;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    auto find = [this](std::string_view c) -> std::atomic<std::uint64_t>* {
      for (auto& [k, v] : by_code_)
        if (k == c) return v.get();
      return nullptr;
    };
    // A code seen before keeps its series; a new one past the 32nd shares "other".
    counter = find(code);
    if (!counter) {
      const std::string_view as = by_code_.size() < max_codes ? code : std::string_view("other");
      counter = find(as);
      if (!counter) counter = by_code_.emplace_back(std::string(as), std::make_unique<std::atomic<std::uint64_t>>(0))
                                  .second.get();
    }
  }
  counter->fetch_add(1, std::memory_order_relaxed);
}

family_builder& family_builder::family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  families_.push_back(std::move(f));
  return *this;
}

family_builder& family_builder::sample(std::vector<std::pair<std::string, std::string>> labels, double value) {
  auto& f = families_.back();
  prometheus::ClientMetric m;
  for (auto& [k, v] : labels) m.label.push_back({std::move(k), std::move(v)});
  if (f.type == prometheus::MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f.metric.push_back(std::move(m));
  return *this;
}

family_builder& family_builder::histogram(std::vector<std::pair<std::string, std::string>> labels,
                                          const std::vector<double>& bounds, const std::vector<std::uint64_t>& cumulative,
                                          double sum) {
  auto& f = families_.back();
  prometheus::ClientMetric m;
  for (auto& [k, v] : labels) m.label.push_back({std::move(k), std::move(v)});
  for (std::size_t i = 0; i < bounds.size() && i < cumulative.size(); ++i)
    m.histogram.bucket.push_back({cumulative[i], bounds[i]});
  const std::uint64_t total = cumulative.empty() ? 0 : cumulative.back();
  m.histogram.bucket.push_back({total, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = total;
  m.histogram.sample_sum = sum;
  f.metric.push_back(std::move(m));
  return *this;
}

metrics::metrics() : serial_(next_serial.fetch_add(1, std::memory_order_relaxed)) {}

metrics::~metrics() = default;

method_metrics& metrics::server(const std::string& service, const std::string& method) { return handle(true, service, method); }
method_metrics& metrics::client(const std::string& service, const std::string& method) { return handle(false, service, method); }

method_metrics& metrics::handle(bool server, const std::string& service, const std::string& method) {
  // Looked up for every request: a thread finds the few methods it serves or
  // calls in its own cache, without the lock and the two map lookups.
  struct cached {
    std::uint64_t owner = 0;
    bool server = false;
    std::string service, method;
    method_metrics* handle = nullptr;
  };
  thread_local std::array<cached, 8> cache;
  thread_local std::size_t replace_next = 0;
  for (auto& c : cache)
    if (c.owner == serial_ && c.server == server && c.method == method && c.service == service) return *c.handle;
  auto& h = find_or_add(server, service, method);
  auto& slot = cache[replace_next++ % cache.size()];
  slot.owner = serial_;
  slot.server = server;
  slot.service = service;
  slot.method = method;
  slot.handle = &h;
  return h;
}

method_metrics& metrics::find_or_add(bool server, const std::string& service, const std::string& method) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto& services = server ? server_handles_ : client_handles_;
  auto svc = services.find(service);
  if (svc != services.end()) {
    if (auto it = svc->second.find(method); it != svc->second.end()) return *it->second;
  } else {
    svc = services.try_emplace(services.size() < max_services ? service : std::string("other")).first;
  }
  auto& methods = svc->second;
  std::string m = methods.size() < max_methods ? method : "other";
  if (auto again = methods.find(m); again != methods.end()) return *again->second;
  auto h = std::make_unique<method_metrics>();
  auto& out = *h;
  methods.emplace(std::move(m), std::move(h));
  return out;
}

void metrics::add_collector(collector c) {
  std::lock_guard<std::mutex> guard(mutex_);
  collectors_.push_back(std::move(c));
}

namespace {
class whole final : public prometheus::Collectable {
 public:
  explicit whole(const metrics& m) : m_(m) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return m_.collect(); }

 private:
  const metrics& m_;
};
}  // namespace

std::shared_ptr<prometheus::Collectable> metrics::collectable() {
  std::lock_guard<std::mutex> guard(mutex_);
  if (!collectable_) collectable_ = std::make_shared<whole>(*this);
  return collectable_;
}

std::string metrics::render() const { return prometheus::TextSerializer().Serialize(collect()); }

std::vector<prometheus::MetricFamily> metrics::collect() const {
  family_builder b;
  std::vector<collector> collectors;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    collectors = collectors_;
    // The request families, read from the handles' counters: each value read
    // once, so a histogram's buckets, count and +Inf agree with one another.
    const std::vector<double> bounds(method_metrics::bounds.begin(), method_metrics::bounds.end());
    for (const bool server : {true, false}) {
      const auto& services = server ? server_handles_ : client_handles_;
      b.family(server ? "cohort_requests_total" : "cohort_client_requests_total",
               server ? "Requests answered by this node's services, by service, method and result code"
                      : "Calls made through this node (ctx.call and forwarding), by target service, method and result code",
               prometheus::MetricType::Counter);
      for (const auto& [service, methods] : services)
        for (const auto& [method, h] : methods) {
          if (const auto ok = h->ok_.load(std::memory_order_relaxed))
            b.sample({{"code", "ok"}, {"method", method}, {"service", service}}, static_cast<double>(ok));
          std::lock_guard<std::mutex> codes(h->mutex_);
          for (const auto& [code, n] : h->by_code_)
            b.sample({{"code", code}, {"method", method}, {"service", service}},
                     static_cast<double>(n->load(std::memory_order_relaxed)));
        }
      b.family(server ? "cohort_request_duration_seconds" : "cohort_client_request_duration_seconds",
               server ? "Time from a request's arrival at this node to its answer, by service and method"
                      : "Time from a call leaving to its answer, by target service and method",
               prometheus::MetricType::Histogram);
      for (const auto& [service, methods] : services)
        for (const auto& [method, h] : methods) {
          std::vector<std::uint64_t> cumulative;
          std::uint64_t total = 0;
          for (const auto& bucket : h->buckets_) cumulative.push_back(total += bucket.load(std::memory_order_relaxed));
          const double sum = static_cast<double>(h->sum_ns_.load(std::memory_order_relaxed)) / 1e9;
          b.histogram({{"method", method}, {"service", service}}, bounds, cumulative, sum);
        }
    }
  }
  for (const auto& c : collectors) c(b);
  return b.take();
}

}  // namespace cohort::observability
