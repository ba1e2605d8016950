// log: the process's logging, on spdlog. Each part of the runtime logs as a
// component ("store", "http", "security", "registry", ...) whose level is set
// on its own; lines go to stderr as human text or as JSON lines (one object a
// line), and to a bounded ring that the admin endpoint serves (cohortctl logs).
// What the current thread works on (service, actor, trace, caller) is carried
// in a thread-local scope and added to every line logged inside it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

namespace cohort::log {

enum class format { text, json };

struct config {
  format output = format::text;
  /// Level of every component not named in `levels`: trace, debug, info, warn, error, critical, off.
  std::string level = "info";
  /// Level per component, e.g. {"store": "debug", "security": "warn"}.
  std::map<std::string, std::string> levels;
  /// The HTTP front's access log (component "access"): one line a request.
  bool access = false;
  /// Lines kept in memory for `cohortctl logs` (0 = none).
  std::size_t ring_lines = 10000;
};

/// Whether `name` is a level spdlog knows (trace ... off).
[[nodiscard]] bool is_level(std::string_view name);

/// Sets up logging for this process: the output format, levels, the ring.
/// `node` is written on every line. Safe to call again (the last call wins).
void configure(const config& cfg, std::string node);

/// The component's logger, made on first use with the configured output and level.
[[nodiscard]] std::shared_ptr<spdlog::logger> get(const std::string& component);

/// Whether the access log is on (config.access).
[[nodiscard]] bool access_log_on();

/// Extra fields of one line (the access log's method, path, status, ...).
using fields = std::vector<std::pair<std::string_view, std::string>>;

/// What a thread is working on. Views: the strings must outlive the scope.
struct context {
  std::string_view service;
  std::string_view actor;     ///< the actor's path in the supervision tree, e.g. "entity/42", "worker-1"
  std::string_view trace_id;
  std::string_view span_id;   ///< the request's span: the request id of this hop
  std::string_view caller;
  const fields* extra = nullptr;
};

/// Sets the thread's context for its lifetime and restores the one before.
class scope {
 public:
  explicit scope(const context& ctx);
  ~scope();
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;

 private:
  context saved_;
};

/// The current thread's context (empty outside any scope).
[[nodiscard]] const context& current();

}  // namespace cohort::log
