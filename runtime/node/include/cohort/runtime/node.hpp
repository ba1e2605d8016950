// node: one Cohort process: an actor system, a ZeroMQ context, the services it
// hosts and the endpoints it listens on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/runtime/status.hpp"

namespace zmq {
class context_t;
}

namespace cohort {
namespace detail {
class request;
}  // namespace detail


/// A running node. start() binds every endpoint before any service starts, so
/// a taken port fails fast. Safe to call from any thread.
class node {
 public:
  /// Starts a node hosting the configured services, taken from `catalog`.
  [[nodiscard]] static result<std::unique_ptr<node>> start(node_config cfg,
                                                           std::vector<service_definition> catalog);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// The endpoints actually bound (wildcard ports resolved), in config order.
  [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept;
  /// The HTTP/JSON front as bound, "http://host:port" (empty when off).
  [[nodiscard]] const std::string& http_endpoint() const noexcept;
  /// The admin endpoint actually bound (empty when off).
  [[nodiscard]] const std::string& admin_endpoint() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] double uptime_s() const;
  /// The node's ZeroMQ context, for in-process clients on inproc:// endpoints.
  [[nodiscard]] zmq::context_t& context() noexcept;

  [[nodiscard]] std::vector<service_status> services() const;
  [[nodiscard]] node_metrics metrics() const;
  /// The remote services' instances. Only from the admin handler (the I/O thread).
  [[nodiscard]] std::vector<instance_status> registry() const;
  /// Readiness (/health/ready, `cohortctl health`): what keeps the node from
  /// serving everything it should (a service not up, draining); empty when ready.
  [[nodiscard]] std::vector<std::string> not_ready() const;
  /// The spans of one trace this node keeps in memory (`cohortctl trace`).
  [[nodiscard]] std::vector<observability::span> spans(const std::string& trace_id) const;
  /// What the node's tracer counted: spans kept, exported, dropped, failed exports.
  [[nodiscard]] observability::tracer_stats trace_stats() const;
  /// The admin endpoints of the service processes this node supervises
  /// (process isolation; empty otherwise): their logs and spans are theirs.
  [[nodiscard]] std::vector<std::string> service_process_admins() const;

  /// Operator control of a whole service: stop marks it down (callers get
  /// `unavailable`), start and restart bring it back with a fresh supervision
  /// tree. Errors: `unknown_service`, and `unavailable` when its store cannot open.
  result<bool> stop_service(const std::string& name);
  result<bool> start_service(const std::string& name);
  result<bool> restart_service(const std::string& name);

  /// Operator control of one child ("worker-2", "entity/<key>"): "restart",
  /// "stop", "start", or "crash" (fault injection; only when the config sets
  /// node.allow_fault_injection). Errors: `unknown_service`, `bad_request`.
  result<bool> command_child(const std::string& service, const std::string& child, const std::string& command);

  /// The store of an entity service: keys, size on disk, compactions, commits.
  /// Errors: `unknown_service`, `bad_request` (the service has no store), `unavailable`.
  result<store_stats> storage_stats(const std::string& service) const;
  /// Writes a consistent checkpoint of a service's store as backup `name`, in
  /// <backup_root>/<service>/<name> (which must not exist), while the service
  /// keeps serving. Returns that directory. A name that is not a plain file
  /// name (a path, "..") is a `bad_request`: backups stay under the root.
  result<std::string> backup(const std::string& service, const std::string& name);
  /// Replaces a service's store with backup `name`: the service stops, the
  /// backup is copied beside the store and swapped in with one atomic rename
  /// (a crash leaves the old store or the new one, never a mix), and the
  /// service starts on it. Errors: `unknown_service`, `bad_request` (no such backup).
  result<bool> restore(const std::string& service, const std::string& name);
  /// Checks every block of a service's store (open or down); `store_corrupt` names the file.
  result<bool> verify_store(const std::string& service);
  /// Writes a service's memory tables to table files.
  result<bool> flush_store(const std::string& service);
  /// For a service that is down with a damaged log: accepts the loss of the
  /// log after the damage, starts the service, and says what was dropped.
  result<std::string> salvage_store(const std::string& service);

  /// [cluster] (docs/cluster.md): an operator verb (status, shards, drain,
  /// undrain, rebalance, reassign) with JSON arguments; the answer as JSON text.
  result<std::string> cluster_command(const std::string& verb, const std::string& args_json);
  /// The cluster as this node sees it (JSON text); empty without [cluster].
  [[nodiscard]] std::string cluster_status() const;

  /// In process isolation, sends an admin request about `service` (storage,
  /// backup, restore, verify, flush, salvage) to that service's process,
  /// which holds its store, and answers `req` with its reply. False when the
  /// service is not hosted by a child process. On the I/O thread.
  bool forward_admin(const std::string& service, std::shared_ptr<detail::request> req);

  /// Stops accepting requests, lets in-flight ones finish within the drain
  /// timeout, stops the actors and closes the stores. Idempotent.
  void stop();

 private:
  struct impl;
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace cohort
