// span: one timed operation of a trace (a request served, a call made, a
// store write, an event delivered), as recorded by a node and exported (OTLP).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cohort::observability {

/// OTLP's SpanKind numbering.
enum class span_kind : int { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 };

[[nodiscard]] const char* to_string(span_kind k) noexcept;

struct span {
  std::string trace_id;
  std::string span_id;
  std::string parent_span_id;  ///< empty for a trace's root
  std::string name;            ///< "orders.checkout", "POST /orders/checkout", "store.commit", ...
  std::string service;         ///< the Cohort service it belongs to (OTLP resource service.name)
  span_kind kind = span_kind::internal;
  std::uint64_t start_ns = 0;  ///< Unix time in ns
  std::uint64_t end_ns = 0;
  std::string code = "ok";     ///< "ok" or the error code
  std::vector<std::pair<std::string, std::string>> attributes;

  [[nodiscard]] bool failed() const noexcept { return code != "ok"; }

  /// Every field back to its default, the strings' buffers kept (for a span
  /// written again in place: tracer::record_with).
  void clear() {
    for (auto* field : {&trace_id, &span_id, &parent_span_id, &name, &service}) field->clear();
    kind = span_kind::internal;
    start_ns = end_ns = 0;
    code.assign("ok");
    attributes.clear();
  }
};

/// The wall clock in Unix ns, as spans count it.
[[nodiscard]] std::uint64_t unix_ns() noexcept;

/// The wall clock in Unix ns at `t`, a steady-clock instant of this process:
/// `t` plus the clocks' offset, re-read when it is older than 100 ms (or `t`
/// is more than 100 ms from when it was read). A span in progress keeps the
/// steady time its request already read; its end is
/// unix_ns_at(steady_clock::now()): one clock read per span.
[[nodiscard]] std::uint64_t unix_ns_at(std::chrono::steady_clock::time_point t) noexcept;

}  // namespace cohort::observability
