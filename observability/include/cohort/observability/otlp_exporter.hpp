// otlp_exporter: sends spans (and log lines) to an OpenTelemetry collector
// over OTLP/HTTP with the JSON encoding (opentelemetry-proto's JSON mapping:
// hex ids, nanosecond times as strings, enums as numbers), from a thread of its
// own, in batches. libcurl does the HTTP. A collector that is down, slow or
// refusing costs failed batches (counted), never a request's time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cohort/log/log_ring.hpp"
#include "cohort/observability/span.hpp"
#include "cohort/observability/tracer.hpp"

namespace cohort::observability {

/// The OTLP JSON document (ExportTraceServiceRequest) for these spans, one
/// resourceSpans entry per service (service.name), node as service.instance.id.
[[nodiscard]] nlohmann::json otlp_traces_document(const std::vector<span>& spans, const std::string& node);
/// The OTLP JSON document (ExportLogsServiceRequest) for these log lines.
[[nodiscard]] nlohmann::json otlp_logs_document(const std::vector<log::record>& lines, const std::string& node);

class otlp_exporter {
 public:
  otlp_exporter(const trace_config& cfg, std::string node);
  ~otlp_exporter();  ///< sends what is queued (bounded by the timeout), then stops

  /// Queues a span; false (and counted) when the queue is full. Never blocks on the network.
  bool push(const span& s);
  bool push(const log::record& r);

  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> exported{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> logs_exported{0};

 private:
  void run();
  bool post(const std::string& url, const std::string& body);

  trace_config cfg_;
  std::string node_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<span> spans_;
  std::deque<log::record> lines_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cohort::observability
