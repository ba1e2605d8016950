// status: what a node reports about itself to operators (cohortctl, /health):
// its services and their supervision trees, the remote instances it routes
// to, and the counters of its edge. Plain values, safe to copy anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cohort {

/// One child of a service's supervision tree.
struct child_status {
  std::string id;            ///< "worker-1", "entity/<key>"
  std::string kind;          ///< "worker" or "entity"
  std::string restart;       ///< restart type: permanent, transient, temporary
  std::string state;         ///< running, restarting, stopped, crashed
  std::uint64_t restarts = 0;
  std::string last_failure;
};

/// A hosted service as an operator sees it.
struct service_status {
  std::string name;
  std::string kind;          ///< "workers" or "entities"
  std::string state;         ///< "up" or "down"
  std::string down_reason;   ///< why it is down (its store did not open, its supervisor gave up, an operator stopped it)
  std::string strategy;      ///< supervision strategy
  double uptime_s = 0;       ///< since the service (re)started
  std::uint64_t stuck_handlers = 0;  ///< handlers the watchdog found blocked past handler_timeout_ms
  std::vector<child_status> children;
  int pid = -1;              ///< process isolation: the service's child process
  std::int64_t in_flight = 0;
  std::uint64_t restarts = 0;
  /// Worker restarts timed inside the node: from the failure to the
  /// replacement handling its first message (last 1024; -1: none yet).
  std::uint64_t restarts_timed = 0;
  double restart_latency_p50_us = -1, restart_latency_p99_us = -1, restart_latency_max_us = -1;
  /// Services with blocking methods: the threads their workers run on now,
  /// and ever started (a restart reuses its predecessor's thread); -1 for
  /// services whose workers share the node's scheduler.
  std::int64_t blocking_threads = -1;
  std::int64_t blocking_threads_started = -1;
  std::uint64_t activations = 0;
  std::uint64_t passivations = 0;
  std::int64_t live_entities = 0;        ///< entities in memory: with an actor, or hibernated
  std::int64_t hibernated_entities = 0;  ///< of those, hibernated: state kept, no actor (entity_hibernate_after_ms)
  std::uint64_t hibernations = 0;        ///< idle entity actors ended with their state kept
  std::uint64_t wakes = 0;               ///< hibernated entities woken by a message (no store read)
  std::string last_failure;
  std::uint64_t resumes = 0;             ///< resume calls for entities with unfinished work (sagas)
  std::uint64_t quarantines = 0;         ///< entity keys quarantined after repeated crashes
  std::uint64_t events_published = 0;    ///< outbox records written (one per subscriber)
  std::uint64_t events_delivered = 0;    ///< acknowledged by their subscriber
  std::uint64_t event_redeliveries = 0;  ///< deliveries that failed and were tried again
  double outbox_oldest_age_s = 0;        ///< age of the oldest event not yet delivered (0: none waits)
  std::uint64_t events_logged = 0;       ///< events appended to its event log (client subscriptions)
  std::int64_t subscriptions = -1;       ///< clients subscribed to its events now; -1: it keeps no event log
  std::int64_t pending_entities = -1;    ///< entities with unfinished work (sagas) at the last sweep; -1: not counted
};

/// One instance of a remote service as this node routes to it.
struct instance_status {
  std::string service;
  std::string endpoint;
  std::string source;   ///< "config" or "heartbeat"
  std::string breaker;  ///< closed, open, half_open
  std::int64_t outstanding = 0;
  std::uint64_t requests = 0, failures = 0;
  double last_seen_s = 0;  ///< seconds since its last heartbeat (registered ones)
  std::uint64_t retries = 0;  ///< attempts here that retried a request failed at another instance
  std::uint64_t service_bulkhead_rejections = 0;  ///< of the whole service (the same on each of its rows)
  double last_success_s = -1;  ///< seconds since it last answered in time; -1: never
};

/// Counters of the node's edge.
struct node_metrics {
  std::uint64_t requests = 0;
  std::uint64_t rejected = 0;
  std::uint64_t malformed_frames = 0;
  std::uint64_t replies = 0;
  std::uint64_t expired_in_transit = 0;  ///< requests whose deadline passed before they arrived: dropped
  std::uint64_t refused = 0;             ///< requests refused by admission (unauthenticated, forbidden)
  std::uint64_t refused_registrations = 0;  ///< registry heartbeats not from an authenticated node: ignored
  std::uint64_t refused_connections = 0;    ///< connections whose key the ZAP handler refused
};

}  // namespace cohort
