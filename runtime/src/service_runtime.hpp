// service_runtime: what a hosted service's actors share, and the spawn function
// of its root actor. Private to the runtime; keeps CAF out of the public headers.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <caf/fwd.hpp>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/storage/store.hpp"
#include "request.hpp"

namespace cohort::detail {

/// Routes a request to wherever its service lives. Safe to call from any thread.
class call_router {
 public:
  virtual ~call_router() = default;
  virtual void route(request_ptr req) = 0;
};

/// State shared by one service's actors. Counters are safe from any thread.
struct service_runtime {
  service_definition def;
  service_config cfg;
  wire_limits limits;
  std::unique_ptr<store> db;          ///< entity services: the service's own store
  call_router* calls = nullptr;       ///< where outbound calls go
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::uint64_t> activations{0};
  std::atomic<std::uint64_t> passivations{0};
  std::atomic<std::int64_t> live_entities{0};

  void record_failure(std::string reason);
  [[nodiscard]] std::string last_failure() const;

 private:
  mutable std::mutex failure_mutex_;
  std::string last_failure_;
};

/// Spawns the root actor of a service: it owns the worker pool or the entity
/// table, routes requests to them and replaces crashed workers.
caf::actor spawn_service(caf::actor_system& sys, std::shared_ptr<service_runtime> svc);

/// Delivers a request to a service's root actor.
void deliver(const caf::actor& service, request_ptr req);

}  // namespace cohort::detail
