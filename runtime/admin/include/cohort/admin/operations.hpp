// operations: what the admin endpoint may ask of a node. The node assembly
// implements it; admin knows no node, so nothing here runs back up.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cohort/core/request.hpp"
#include "cohort/observability/span.hpp"
#include "cohort/runtime/status.hpp"
#include "cohort/storage/store.hpp"
#include "cohort/transport/result.hpp"

namespace cohort::detail {

class admin_operations {
 public:
  virtual ~admin_operations() = default;
  [[nodiscard]] virtual const std::string& name() const noexcept = 0;
  [[nodiscard]] virtual double uptime_s() const = 0;
  [[nodiscard]] virtual std::vector<service_status> services() const = 0;
  [[nodiscard]] virtual node_metrics metrics() const = 0;
  [[nodiscard]] virtual std::vector<instance_status> registry() const = 0;
  /// What keeps the node from being ready (a service not up, draining); empty when ready.
  [[nodiscard]] virtual std::vector<std::string> not_ready() const = 0;
  /// The spans of one trace this node keeps.
  [[nodiscard]] virtual std::vector<observability::span> spans(const std::string& trace_id) const = 0;
  /// Admin endpoints of the service processes this node supervises: `logs`
  /// and `trace` gather theirs too.
  [[nodiscard]] virtual std::vector<std::string> service_process_admins() const = 0;
  virtual result<bool> stop_service(const std::string& name) = 0;
  virtual result<bool> start_service(const std::string& name) = 0;
  virtual result<bool> restart_service(const std::string& name) = 0;
  virtual result<bool> command_child(const std::string& service, const std::string& child,
                                     const std::string& command) = 0;
  /// Process isolation: hands an admin request about `service` to the process
  /// holding its store; false when no child process hosts it.
  virtual bool forward_admin(const std::string& service, request_ptr req) = 0;
  [[nodiscard]] virtual result<store_stats> storage_stats(const std::string& service) const = 0;
  virtual result<std::string> backup(const std::string& service, const std::string& name) = 0;
  virtual result<bool> restore(const std::string& service, const std::string& name) = 0;
  virtual result<bool> verify_store(const std::string& service) = 0;
  virtual result<bool> flush_store(const std::string& service) = 0;
  virtual result<std::string> salvage_store(const std::string& service) = 0;
  /// Cluster verbs (docs/cluster.md): `verb` and its JSON arguments; the answer as JSON text.
  virtual result<std::string> cluster(const std::string& verb, const std::string& args_json) = 0;
};

}  // namespace cohort::detail
