// service_runtime: what a hosted service's actors share with the node: its
// definition and config, its store, counters, the operator's view of its
// supervision tree, and the handle of its current root actor. Private to the
// runtime; keeps CAF out of the public headers.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/status.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/storage/store.hpp"
#include "cohort/core/request.hpp"
#include "cohort/core/latency_window.hpp"
#include "cohort/observability/tracer.hpp"

namespace cohort::detail {

class blocking_pool;

/// Routes a request to wherever its service lives. Safe to call from any thread.
class call_router {
 public:
  virtual ~call_router() = default;
  virtual void route(request_ptr req) = 0;
};

/// What one worker is doing, for the watchdog. Written by the worker, read by
/// the watchdog thread.
struct handler_activity {
  std::atomic<std::int64_t> busy_since_ns{0};  ///< steady clock; 0 = idle
  std::atomic<const std::string*> method{nullptr};
  std::atomic<bool> reported{false};
  /// Restart latency (steady clock ns; 0 = none): set by a worker as it
  /// fails, and on its replacement's activity as the time its predecessor
  /// failed, until the replacement has handled its first message.
  std::atomic<std::int64_t> failed_at_ns{0};
  std::atomic<std::int64_t> replaces_failure_at_ns{0};
};

/// What an entity handler is doing, for the watchdog. Entities run on the
/// shared scheduler threads, so a slot per thread (not per entity: there may
/// be a million) is enough to see a handler that holds its thread too long.
/// `child` points into the running entity; the handler's end and the
/// watchdog's read of it both take `m`, so it is never read after the entity
/// could be gone.
struct entity_activity_slot : handler_activity {
  std::mutex m;
  const std::string* child = nullptr;  ///< guarded by m; "entity/<key>"
};

/// Where the events of one topic go: a method of a subscribing service.
struct subscriber_target {
  std::string service;
  std::string method;
};

/// State shared by one service's actors and the node. Safe from any thread.
struct service_runtime {
  service_definition def;
  service_config cfg;
  wire_limits limits;
  std::unique_ptr<store> db;          ///< entity services: the service's own store
  call_router* calls = nullptr;       ///< where outbound calls go
  observability::tracer* tracer = nullptr;  ///< the node's spans (calls, store writes, events); may be null
  bool allow_fault_injection = false;
  in_flight_set in_flight;  ///< admitted requests not answered yet
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::uint64_t> activations{0};
  std::atomic<std::uint64_t> passivations{0};
  std::atomic<std::int64_t> live_entities{0};  ///< awake and hibernated
  std::atomic<std::uint64_t> hibernations{0};    ///< idle entity actors ended, their state kept
  std::atomic<std::uint64_t> wakes{0};           ///< hibernated entities woken by a message
  std::atomic<std::int64_t> hibernated_entities{0};  ///< live entities without an actor now
  std::atomic<std::uint64_t> stuck_handlers{0};
  /// From a worker's failure to its replacement handling its first message.
  latency_window restart_latency;
  /// Entity handlers in progress, one slot per scheduler thread (by the
  /// thread's ordinal; a thread whose slot is taken goes unwatched).
  static constexpr std::size_t entity_activity_slots = 64;
  std::array<entity_activity_slot, entity_activity_slots> entity_activity;

  /// Topic -> the subscribers of this service's events (fixed at start).
  std::map<std::string, std::vector<subscriber_target>, std::less<>> subscribers;
  /// Makes event ids unique across restarts and instances: start time and a random salt.
  std::uint64_t event_epoch = 0;
  std::atomic<std::uint64_t> next_event{0};
  std::atomic<std::uint64_t> events_published{0};   ///< outbox records written (one per subscriber)
  std::atomic<std::uint64_t> events_delivered{0};   ///< acknowledged by their subscriber
  std::atomic<std::uint64_t> event_redeliveries{0};  ///< deliveries that failed and were tried again
  std::atomic<std::uint64_t> events_logged{0};      ///< appended to the event log (not counted as published/delivered)
  std::atomic<std::int64_t> subscriptions{0};       ///< client subscriptions its event hub serves now
  std::atomic<std::uint64_t> resumes{0};            ///< resume calls made for pending entities
  std::atomic<std::uint64_t> quarantines{0};        ///< entity keys put in quarantine after repeated crashes
  /// Publication time (Unix ms) of the oldest event its relay saw undelivered; 0 when none waits.
  std::atomic<std::uint64_t> outbox_oldest_ms{0};
  /// Entities marked pending (unfinished sagas) at the last resume sweep (at
  /// least this many when a sweep stops at its limit); -1 before the first.
  std::atomic<std::int64_t> pending_entities{-1};
  /// Clusters (docs/cluster.md): true when this node serves `key` now (it
  /// owns the key's shard, no handoff is under way, its lease is valid).
  /// Asked before an entity activates and before its writes; empty: every key.
  std::function<bool(std::string_view key)> serves;
  [[nodiscard]] bool serves_key(std::string_view key) const { return !serves || serves(key); }
  /// True when a request for `key` admitted under shard epoch `epoch` may
  /// still run and write here: its shard is served, or is being handed over
  /// and not sealed yet (requests admitted before a handoff complete). Epoch
  /// 0 (not a request's): as serves_key.
  std::function<bool(std::string_view key, std::uint64_t epoch)> admits;
  [[nodiscard]] bool admits_key(std::string_view key, std::uint64_t epoch) const {
    if (!serves) return true;
    return epoch == 0 || !admits ? serves(key) : admits(key, epoch);
  }
  /// Set by an entity that found its store damaged: the root takes the
  /// service down at once (store_corrupt) instead of restarting entities into it.
  std::atomic<bool> store_damaged{false};

  /// Workers on threads of their own: the service declares blocking methods.
  [[nodiscard]] bool dedicated_threads() const { return def.kind == service_kind::workers && def.has_blocking_methods(); }
  /// Where those workers run (set by the host before its first worker starts;
  /// kept across restarts, so a replacement takes its predecessor's thread).
  std::shared_ptr<blocking_pool> blocking;
  /// The watchdog's limit for this service's handlers (0 = not watched).
  [[nodiscard]] std::chrono::milliseconds handler_timeout() const {
    if (cfg.handler_timeout.count() >= 0) return cfg.handler_timeout;
    return dedicated_threads() ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1000);
  }

  /// The outbox relay of this service: told when new events were written.
  void set_relay(caf::actor relay);
  /// `written`: the outbox keys just written (a scan that already passed
  /// them starts over from the lowest); an empty key: every scan from the start.
  void poke_outbox(std::vector<std::string> written = {});
  /// The event hub of this service (client subscriptions; its event log's
  /// writer); empty when the service keeps no event log or it is restarting.
  void set_event_hub(caf::actor hub);
  [[nodiscard]] caf::actor event_hub() const;
  /// The reminder scheduler of this service: told when new reminders were written.
  void set_reminder_scheduler(caf::actor scheduler);
  /// `earliest_due`: the earliest due time (Unix ms) among the reminders just
  /// written; 0 when anything may have been written (a handoff's data): the
  /// scheduler's next scan starts from the beginning.
  void poke_reminders(std::uint64_t earliest_due = 0);
  /// The clock reminders are due by (Unix ms): the wall clock, or a test's.
  std::function<std::uint64_t()> clock_ms;
  [[nodiscard]] std::uint64_t now_ms() const { return clock_ms ? clock_ms() : wall_clock_ms(); }

  void record_failure(std::string reason);
  [[nodiscard]] std::string last_failure() const;

  /// The root actor requests go to; empty while the service is down.
  [[nodiscard]] caf::actor root() const;
  void set_root(caf::actor root);
  /// Marks the service down (its root gave up, or its store did not open).
  void mark_down(std::string reason);
  [[nodiscard]] bool down(std::string* reason = nullptr) const;

  /// The operator's view of the children, kept by the root actor.
  void publish_children(std::vector<child_status> children);
  [[nodiscard]] std::vector<child_status> children() const;

  /// The running workers of a worker service, for routing without a hop
  /// through the root. Published by the root; read from any thread.
  void publish_workers(std::vector<caf::actor> workers);
  /// The next worker round-robin, or an empty handle when none runs.
  [[nodiscard]] caf::actor next_worker();

  /// Activity markers of the workers, for the watchdog.
  void publish_activities(std::vector<std::pair<std::string, std::shared_ptr<handler_activity>>> a);
  [[nodiscard]] std::vector<std::pair<std::string, std::shared_ptr<handler_activity>>> activities() const;

 private:
  mutable std::mutex mutex_;
  std::string last_failure_;
  caf::actor root_;
  caf::actor relay_;
  caf::actor reminder_scheduler_;
  caf::actor event_hub_;
  bool down_ = false;
  std::string down_reason_;
  std::vector<child_status> children_;
  std::vector<std::pair<std::string, std::shared_ptr<handler_activity>>> activities_;
  /// Read on every delivery, written when a worker starts or stops: a
  /// reader-writer lock (libstdc++'s atomic_load of a shared_ptr took a
  /// mutex from a global pool, and copied the pointer, on every delivery).
  mutable std::shared_mutex workers_mutex_;
  std::vector<caf::actor> workers_;
  std::atomic<std::uint64_t> next_worker_{0};
};

/// Spawns the root actor of a service: it supervises the worker pool or the
/// entity actors per the service's policy and routes requests to them. When
/// it gives up it exits with an error naming the last failure.
caf::actor spawn_service(caf::actor_system& sys, std::shared_ptr<service_runtime> svc);

/// Delivers a request to a service's root actor.
void deliver(const caf::actor& service, request_ptr req);

/// Operator commands for one child of a service ("worker-2", "entity/<key>").
enum class child_command { restart, stop, start, crash, replace_stuck };
void command_child(const caf::actor& service, child_command cmd, const std::string& child_id);

}  // namespace cohort::detail
