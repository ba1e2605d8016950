// tracer: a node's spans. Decides which traces are recorded (head sampling by
// ratio for traces that start here, the caller's choice for those that arrive
// with a traceparent, errors always), keeps the last spans in memory for
// `cohortctl trace`, and hands them to the OTLP exporter through a bounded
// queue that drops (and counts) rather than make a request wait.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cohort/observability/span.hpp"
#include "cohort/observability/trace_context.hpp"

namespace cohort::observability {

class otlp_exporter;

struct trace_config {
  /// false: no span is made anywhere (the traceparent is still passed on).
  bool enabled = true;
  /// Share of the traces that start at this node that are recorded (0 .. 1).
  /// 0.01 costs ~3% of request/reply throughput, 1 ~10% (bench: tracing rows);
  /// a caller's sampled traceparent is followed whatever this says, and
  /// failed spans are kept always.
  double sample = 0.01;
  /// OTLP/HTTP base address ("http://127.0.0.1:4318"): spans go to <it>/v1/traces
  /// as OTLP JSON. Empty: spans are only kept in memory.
  std::string otlp_endpoint;
  /// Log lines are exported too, to <otlp_endpoint>/v1/logs.
  bool export_logs = false;
  /// Spans kept in memory for `cohortctl trace`.
  std::size_t keep_spans = 4096;
  /// Spans (and log lines) waiting for export at most; beyond, new ones are dropped and counted.
  std::size_t export_queue = 8192;
  std::chrono::milliseconds export_every{500};
  std::chrono::milliseconds export_timeout{2000};
};

struct tracer_stats {
  std::uint64_t recorded = 0;        ///< spans kept
  std::uint64_t export_dropped = 0;  ///< spans and log lines dropped because the export queue was full
  std::uint64_t exported = 0;        ///< spans the collector accepted
  std::uint64_t export_failures = 0; ///< export requests that failed (collector down, refused, timed out)
  std::uint64_t logs_exported = 0;
};

class tracer {
 public:
  tracer(trace_config cfg, std::string node);
  ~tracer();
  tracer(const tracer&) = delete;
  tracer& operator=(const tracer&) = delete;

  [[nodiscard]] bool enabled() const noexcept { return cfg_.enabled; }
  [[nodiscard]] const std::string& node() const noexcept { return node_; }

  /// The context of a request that arrived with `traceparent` (possibly empty
  /// or invalid): its trace continued, or a new trace (with `trace_hint` as
  /// its id when that is a valid trace id), sampled at the configured ratio.
  /// The span id returned is the caller's span (the parent), empty for a new trace.
  [[nodiscard]] trace_context continue_or_start(std::string_view traceparent, std::string_view trace_hint) const;
  /// Whether a trace this node starts is sampled: the configured ratio.
  [[nodiscard]] bool sample_new_trace() const;

  /// Keeps the span when its trace is sampled or the span failed.
  void record(span&& s, bool sampled);

  /// The same, for the spans of every request and call: `fill(span&)` sets
  /// the fields of a cleared span of this thread's whose strings still hold
  /// the buffers of one recorded before (assigned, not constructed: the
  /// buffers are reused), and it is swapped into the memory ring, whose
  /// oldest span comes back for the next fill. Once the ring has gone round,
  /// a sampled request allocates nothing for its span (unless an exporter
  /// takes a copy).
  template <class Fill>
  void record_with(bool sampled, Fill&& fill) {
    if (!cfg_.enabled) return;
    span& s = thread_scratch();
    s.clear();
    fill(s);
    if (!sampled && !s.failed()) return;
    keep(s);
  }

  /// The spans of one trace still in memory, in the order they ended.
  [[nodiscard]] std::vector<span> find(std::string_view trace_id) const;
  [[nodiscard]] tracer_stats stats() const;

 private:
  friend class otlp_exporter;
  /// This thread's span for record_with.
  static span& thread_scratch();
  /// Counts `s`, gives the exporter a copy, and swaps it into the ring (`s`
  /// then holds the span it replaced, or is emptied).
  void keep(span& s);

  trace_config cfg_;
  std::string node_;
  mutable std::mutex mutex_;
  /// The last keep_spans spans: a ring, kept_next_ its oldest once full.
  std::vector<span> kept_;
  std::size_t kept_next_ = 0;
  std::atomic<std::uint64_t> recorded_{0};
  std::unique_ptr<otlp_exporter> exporter_;
};

}  // namespace cohort::observability
