#include "cohort/observability/metrics.hpp"

#include <limits>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace cohort::observability {

namespace {

// Seconds: from 50 µs (an in-process call) to 10 s (a deadline).
const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                         0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1,
                                                         2.5,     5,      10};
  return b;
}

}  // namespace

void method_metrics::record(std::string_view code, std::chrono::steady_clock::duration took) {
  duration_->Observe(std::chrono::duration<double>(took).count());
  if (code == "ok")
    if (auto* ok = ok_.load(std::memory_order_acquire)) {
      ok->Increment();
      return;
    }
  prometheus::Counter* c = nullptr;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    for (auto& [k, v] : by_code_)
      if (k == code) c = v;
    if (!c) {
      // Codes are the runtime's and the services' own (a few each); past 32 they share one series.
      auto labels = labels_;
      labels["code"] = by_code_.size() < 32 ? std::string(code) : "other";
      c = &requests_->Add(labels);
      by_code_.emplace_back(std::string(code), c);
      if (code == "ok") ok_.store(c, std::memory_order_release);
    }
  }
  c->Increment();
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

metrics::metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  server_requests_ = &prometheus::BuildCounter()
                          .Name("cohort_requests_total")
                          .Help("Requests answered by this node's services, by service, method and result code")
                          .Register(*registry_);
  server_duration_ = &prometheus::BuildHistogram()
                          .Name("cohort_request_duration_seconds")
                          .Help("Time from a request's arrival at this node to its answer, by service and method")
                          .Register(*registry_);
  client_requests_ = &prometheus::BuildCounter()
                          .Name("cohort_client_requests_total")
                          .Help("Calls made through this node (ctx.call and forwarding), by target service, method and result code")
                          .Register(*registry_);
  client_duration_ = &prometheus::BuildHistogram()
                          .Name("cohort_client_request_duration_seconds")
                          .Help("Time from a call leaving to its answer, by target service and method")
                          .Register(*registry_);
}

metrics::~metrics() = default;

method_metrics& metrics::server(const std::string& service, const std::string& method) { return handle(true, service, method); }
method_metrics& metrics::client(const std::string& service, const std::string& method) { return handle(false, service, method); }

method_metrics& metrics::handle(bool server, const std::string& service, const std::string& method) {
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
  h->labels_ = {{"service", svc->first}, {"method", m}};
  h->requests_ = server ? server_requests_ : client_requests_;
  h->duration_ = &(server ? server_duration_ : client_duration_)->Add(h->labels_, latency_buckets());
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
  auto families = registry_->Collect();
  std::vector<collector> collectors;
  {
    std::lock_guard<std::mutex> guard(mutex_);
    collectors = collectors_;
  }
  family_builder b;
  for (const auto& c : collectors) c(b);
  auto more = b.take();
  families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  return families;
}

}  // namespace cohort::observability
