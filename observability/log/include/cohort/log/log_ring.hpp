// log_ring: the recent log lines of this process, kept as records in a bounded
// ring, for `cohortctl logs` (gathered from every node and merged by time).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cohort::log {

struct record {
  std::int64_t time_us = 0;  ///< Unix time in microseconds
  std::string level, node, component, service, actor, trace_id, span_id, caller, message;
  std::vector<std::pair<std::string, std::string>> fields;
};

/// Which lines to return; empty strings match everything.
struct query {
  std::string trace_id;
  std::string service;
  std::string component;
  std::int64_t since_us = 0;  ///< only lines at or after this time
  std::size_t limit = 1000;   ///< the newest `limit` lines that match
};

/// The lines in the ring that match, oldest first.
[[nodiscard]] std::vector<record> recent(const query& q);

/// Lines dropped from the ring to make room, since the start.
[[nodiscard]] std::uint64_t ring_overwritten();

/// Called with every line logged (after the ring), e.g. by a log exporter.
/// Must not block and must not log. nullptr to stop.
void set_listener(std::function<void(const record&)> listener);

/// The record as a JSON object (the fields of a JSON log line).
[[nodiscard]] nlohmann::ordered_json to_json(const record& r);

}  // namespace cohort::log
