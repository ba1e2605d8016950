#include "cohort/observability/tracer.hpp"

#include <atomic>
#include <limits>
#include <random>

#include "cohort/log/log.hpp"
#include "cohort/observability/otlp_exporter.hpp"

namespace cohort::observability {

const char* to_string(span_kind k) noexcept {
  switch (k) {
    case span_kind::internal: return "internal";
    case span_kind::server: return "server";
    case span_kind::client: return "client";
    case span_kind::producer: return "producer";
    case span_kind::consumer: return "consumer";
  }
  return "internal";
}

std::uint64_t unix_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

namespace {

std::int64_t steady_ns(std::chrono::steady_clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

/// The wall clock minus the steady clock, and the steady time it was read at.
/// Re-read every clock_offset_ttl: a step of the wall clock (an operator, NTP
/// stepping) reaches span times within that, a slew (parts per million) is
/// below a span's resolution. Two relaxed atomics: a reader that sees one new
/// and one old value only re-reads the offset sooner.
std::atomic<std::int64_t> clock_offset_ns{0};
std::atomic<std::int64_t> clock_offset_read_at{std::numeric_limits<std::int64_t>::min()};
constexpr std::int64_t clock_offset_ttl_ns = 100'000'000;  // 100 ms

}  // namespace

std::uint64_t unix_ns_at(std::chrono::steady_clock::time_point t) noexcept {
  const auto at = steady_ns(t);
  const auto read_at = clock_offset_read_at.load(std::memory_order_relaxed);
  const bool stale = read_at == std::numeric_limits<std::int64_t>::min() || at - read_at > clock_offset_ttl_ns ||
                     read_at - at > clock_offset_ttl_ns;
  if (stale) {
    const auto steady_now = steady_ns(std::chrono::steady_clock::now());
    const auto offset = static_cast<std::int64_t>(unix_ns()) - steady_now;
    clock_offset_ns.store(offset, std::memory_order_relaxed);
    clock_offset_read_at.store(steady_now, std::memory_order_relaxed);
    return static_cast<std::uint64_t>(at + offset);
  }
  return static_cast<std::uint64_t>(at + clock_offset_ns.load(std::memory_order_relaxed));
}

tracer::tracer(trace_config cfg, std::string node) : cfg_(std::move(cfg)), node_(std::move(node)) {
  if (cfg_.enabled && !cfg_.otlp_endpoint.empty()) {
    exporter_ = std::make_unique<otlp_exporter>(cfg_, node_);
    if (cfg_.export_logs) log::set_listener([ex = exporter_.get()](const log::record& r) { ex->push(r); });
  }
}

tracer::~tracer() {
  if (exporter_ && cfg_.export_logs) log::set_listener(nullptr);
}

trace_context tracer::continue_or_start(std::string_view traceparent, std::string_view trace_hint) const {
  if (!traceparent.empty())
    if (auto ctx = parse_traceparent(traceparent)) return *ctx;
  trace_context ctx;
  ctx.trace_id = is_trace_id(trace_hint) ? std::string(trace_hint) : new_trace_id();
  ctx.sampled = sample_new_trace();
  return ctx;
}

bool tracer::sample_new_trace() const {
  if (!cfg_.enabled || cfg_.sample <= 0) return false;
  if (cfg_.sample >= 1) return true;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 1)(rng) < cfg_.sample;
}

void tracer::record(span&& s, bool sampled) {
  if (!cfg_.enabled || (!sampled && !s.failed())) return;
  keep(s);
}

span& tracer::thread_scratch() {
  thread_local span scratch;
  return scratch;
}

void tracer::keep(span& s) {
  recorded_.fetch_add(1, std::memory_order_relaxed);
  if (exporter_) exporter_->push(s);
  if (cfg_.keep_spans == 0) return;
  std::lock_guard<std::mutex> guard(mutex_);
  if (kept_.size() < cfg_.keep_spans) {
    kept_.push_back(std::move(s));
    return;
  }
  std::swap(kept_[kept_next_], s);
  kept_next_ = (kept_next_ + 1) % kept_.size();
}

std::vector<span> tracer::find(std::string_view trace_id) const {
  std::vector<span> out;
  std::lock_guard<std::mutex> guard(mutex_);
  // Oldest first: from kept_next_ round to it (0 until the ring is full).
  for (std::size_t i = 0; i < kept_.size(); ++i) {
    const auto& s = kept_[(kept_next_ + i) % kept_.size()];
    if (s.trace_id == trace_id) out.push_back(s);
  }
  return out;
}

tracer_stats tracer::stats() const {
  tracer_stats st;
  st.recorded = recorded_.load(std::memory_order_relaxed);
  if (exporter_) {
    st.export_dropped = exporter_->dropped.load(std::memory_order_relaxed);
    st.exported = exporter_->exported.load(std::memory_order_relaxed);
    st.export_failures = exporter_->failures.load(std::memory_order_relaxed);
    st.logs_exported = exporter_->logs_exported.load(std::memory_order_relaxed);
  }
  return st;
}

}  // namespace cohort::observability
