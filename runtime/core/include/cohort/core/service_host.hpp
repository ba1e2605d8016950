// service_host: the services this process hosts: their runtimes and
// supervision roots, routing to them, their lifecycle (start, stop, restart,
// child commands), the watchdog over their handlers, their status, and the
// storage verbs on their stores. It knows no socket, no HTTP and no child
// process: the node assembly connects those to it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/fwd.hpp>

#include "cohort/actors/service_definition.hpp"
#include "cohort/core/request.hpp"
#include "cohort/core/service_runtime.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/runtime/status.hpp"
#include "cohort/storage/memory_budget.hpp"

namespace cohort::detail {

class service_host {
 public:
  /// Checks the configured services against the catalog (known names, valid
  /// supervision, subscriptions naming real methods). When `host_here` is
  /// false (process isolation) it validates only and hosts nothing.
  static result<std::unique_ptr<service_host>> create(const node_config& cfg,
                                                      const std::vector<service_definition>& catalog,
                                                      bool host_here, call_router* calls,
                                                      observability::tracer* tracer = nullptr);
  ~service_host();
  service_host(const service_host&) = delete;
  service_host& operator=(const service_host&) = delete;

  /// Opens the stores and spawns every root (a service whose store does not
  /// open stays down, the others serve), then starts the watchdog.
  void start(caf::actor_system& actors);

  [[nodiscard]] bool hosts(const std::string& service) const { return services_.count(service) > 0; }
  /// Delivers a request to the hosted service it names; answers `unavailable`
  /// when it is down and `overloaded` past its in-flight bound.
  void deliver(request_ptr req);

  [[nodiscard]] std::vector<service_status> status() const;
  [[nodiscard]] std::int64_t in_flight() const;
  /// Answers every request its services still hold with `err` (a drain that
  /// timed out): their callers hear now, whatever the handlers do.
  std::size_t fail_in_flight(const error_info& err);

  result<bool> stop_service(const std::string& name);
  result<bool> start_service(const std::string& name);
  result<bool> restart_service(const std::string& name);
  result<bool> command_child(const std::string& service, const std::string& child, const std::string& command);

  [[nodiscard]] result<store_stats> storage_stats(const std::string& service) const;
  result<std::string> backup(const std::string& service, const std::string& name);
  result<bool> restore(const std::string& service, const std::string& name);
  result<bool> verify_store(const std::string& service);
  result<bool> flush_store(const std::string& service);
  result<std::string> salvage_store(const std::string& service);

  /// Clusters: who decides which keys of `service` this node serves (before start()).
  void set_serves(const std::string& service, std::function<bool(std::string_view)> serves,
                  std::function<bool(std::string_view, std::uint64_t)> admits);
  /// The open store of entity service `service`, or null.
  [[nodiscard]] store* store_of(const std::string& service) const;
  /// Tells entity service `service` to stop the live entities it no longer serves.
  void release_unserved(const std::string& service);
  /// Records of entity service `service` were ingested (a shard taken over):
  /// its outbox relay scans from the start and its reminder scheduler reads again.
  void data_arrived(const std::string& service);

  /// Stops the watchdog and sends every root the shutdown exit (the caller
  /// then waits for the actor system to finish).
  void shutdown();
  /// Closes the stores; after the actors are gone.
  void close();

 private:
  using clock_type = std::chrono::steady_clock;
  struct hosted {
    std::shared_ptr<service_runtime> svc;
    clock_type::time_point started;
  };
  explicit service_host(node_config cfg)
      : cfg_(std::move(cfg)),
        memory_(cfg_.store_memory_mb > 0 ? std::make_shared<memory_budget>(cfg_.store_memory_mb << 20) : nullptr) {}

  result<bool> start(hosted& h);
  void stop(hosted& h, const std::string& why);
  bool stop_and_wait(hosted& h, const std::string& why, std::chrono::milliseconds limit = std::chrono::seconds(10));
  [[nodiscard]] service_status status_of(const std::string& name, const hosted& h) const;
  result<hosted*> entity_service(const std::string& name);
  [[nodiscard]] result<store*> open_store(const std::string& name) const;
  void watch();
  void stop_watchdog();

  node_config cfg_;
  /// What the memtables of this node's stores may hold together ([node] store_memory_mb).
  std::shared_ptr<memory_budget> memory_;
  caf::actor_system* actors_ = nullptr;
  std::unordered_map<std::string, hosted> services_;  // fixed after create()

  std::thread watchdog_;
  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_wake_;
  bool watchdog_stop_ = false;
};

}  // namespace cohort::detail
