// http_front: the HTTP/JSON front of a node (Boost.Beast). POST
// /v1/<service>/<method> with a JSON body becomes a service call; the reply
// becomes JSON, errors map to HTTP statuses (docs/gateway.md). One thread of
// its own runs the connections; requests go to the node's router like any
// other and their replies come back to this thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cohort/runtime/node_config.hpp"
#include "cohort/core/request.hpp"
#include "cohort/observability/tracer.hpp"

namespace cohort::detail {

class http_front {
 public:
  using router = std::function<void(request_ptr)>;
  /// JSON for GET /health: {"services": [...], "remotes": [...]}.
  using health = std::function<nlohmann::json()>;
  using predicate = std::function<bool(const envelope&)>;
  /// What keeps the node from being ready (a service not up, draining); empty when ready.
  using readiness = std::function<std::vector<std::string>()>;
  using exposition = std::function<std::string()>;  ///< GET /metrics: Prometheus text

  /// Binds `cfg.listen` ("host:port", port 0 picks one); with TLS files,
  /// speaks HTTPS only. Throws std::system_error (bind), std::runtime_error
  /// (certificate, key or auth config). JSON bodies and replies are held to
  /// `limits`, like native frames. Methods for which `internal` holds are
  /// never reachable here (403).
  http_front(const http_config& cfg, const wire_limits& limits, std::chrono::milliseconds default_deadline,
             router route, health status, predicate internal = {}, readiness not_ready = {},
             exposition metrics = {}, observability::tracer* tracer = nullptr);
  ~http_front();

  void start();
  void stop();

  /// Requests refused with 429 because max_in_flight were in flight (the front's bulkhead).
  [[nodiscard]] std::uint64_t overloaded() const noexcept;

  /// "http://host:port" (or "https://...") as bound.
  [[nodiscard]] const std::string& endpoint() const noexcept;

  struct impl;  ///< public so that the connections in http_front.cpp can use it

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace cohort::detail
