// instance_pool: the instances of one remote service as this node sees them,
// with load balancing (round robin, least outstanding requests, consistent
// hashing on the entity key) and a circuit breaker per instance. Owned by the
// I/O thread; not thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cohort/runtime/node_config.hpp"
#include "cohort/transport/envelope.hpp"

namespace cohort::detail {

/// One instance of a remote service.
struct service_instance {
  enum class breaker { closed, open, half_open };

  std::string endpoint;
  bool registered = false;  ///< came from a heartbeat (else: static config)
  std::chrono::steady_clock::time_point last_seen;
  std::int64_t outstanding = 0;
  breaker state = breaker::closed;
  int consecutive_failures = 0;
  std::chrono::steady_clock::time_point opened_at;
  bool trial_in_flight = false;  ///< half-open: the one request let through
  std::uint64_t requests = 0, failures = 0;
  std::uint64_t retries = 0;  ///< attempts here that retried a request failed at another instance
  std::optional<std::chrono::steady_clock::time_point> last_success;  ///< its last answer in time
};

[[nodiscard]] std::string_view to_string(service_instance::breaker b) noexcept;

class instance_pool {
 public:
  using instance_ptr = std::shared_ptr<service_instance>;
  using clock_type = std::chrono::steady_clock;

  explicit instance_pool(remote_service_config cfg);

  /// Adds (or refreshes) an instance; registered ones expire without heartbeats.
  void add(const std::string& endpoint, bool registered, clock_type::time_point now);
  /// Removes registered instances not seen within `timeout`; returns their endpoints.
  std::vector<std::string> expire(clock_type::time_point now, std::chrono::milliseconds timeout);

  /// An instance for `h` that is not in `tried` and whose breaker lets the
  /// request through, or nullptr when there is none.
  [[nodiscard]] instance_ptr pick(const envelope& h, const std::vector<instance_ptr>& tried, clock_type::time_point now);

  /// Records the outcome of a request sent to `i` (failure: the instance did
  /// not answer in time or was unreachable), driving its breaker.
  void record(const instance_ptr& i, bool failure, clock_type::time_point now);

  [[nodiscard]] const remote_service_config& config() const noexcept { return cfg_; }
  /// This service's retry budget: every request earns `retry_budget` tokens
  /// (up to 100), every retry spends one. One bucket per remote service, so
  /// that retries to one struggling service cannot use up another's.
  double retry_tokens = 10;
  /// Requests refused at once because max_in_flight were out to the service (the bulkhead).
  std::uint64_t bulkhead_rejections = 0;
  [[nodiscard]] const std::vector<instance_ptr>& instances() const noexcept { return instances_; }

 private:
  bool admits(service_instance& i, clock_type::time_point now) const;
  void rebuild_ring();

  remote_service_config cfg_;
  std::vector<instance_ptr> instances_;
  std::map<std::uint64_t, instance_ptr> ring_;  ///< consistent hashing: virtual nodes
  std::uint64_t next_ = 0;
};

/// A 64-bit FNV-1a hash (stable across runs and hosts, unlike std::hash).
[[nodiscard]] std::uint64_t stable_hash(std::string_view s) noexcept;

}  // namespace cohort::detail
