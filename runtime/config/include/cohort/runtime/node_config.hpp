// node_config: what one node hosts and how. Maps one-to-one onto the TOML file
// (docs/operations.md shows every key).
#pragma once

#include <chrono>
#include <functional>
#include <cstddef>
#include <string>
#include <vector>

#include "cohort/actors/service_definition.hpp"
#include "cohort/runtime/supervision.hpp"
#include "cohort/log/log.hpp"
#include "cohort/observability/tracer.hpp"
#include "cohort/security/http_auth.hpp"
#include "cohort/security/security_config.hpp"
#include "cohort/storage/store.hpp"
#include "cohort/transport/result.hpp"
#include "cohort/transport/wire_limits.hpp"

namespace cohort {

/// An entity service's event log for client subscriptions
/// ([services.NAME.events]; docs/services.md, Events for clients).
struct event_log_config {
  /// Keep every event the service publishes in a log clients can subscribe
  /// to (one more write per event, made by the outbox relay). Default: false.
  bool enabled = false;
  /// Events kept at most; older ones are trimmed. Default: 100000.
  std::uint64_t retain_events = 100000;
  /// And for at most this long. Default: 86400000 ms (24 h).
  std::chrono::milliseconds retain{86400000};
  /// Subscriptions served at once; beyond, `_subscribe` answers `overloaded`. Default: 1024.
  std::size_t max_subscribers = 1024;
  /// A subscription that sends no `_ack` for this long is ended (its durable
  /// cursor stays). Default: 30000 ms.
  std::chrono::milliseconds idle_timeout{30000};
};

/// One service hosted by this node ([services.NAME]).
struct service_config {
  std::string name;
  /// A shared library that provides this service (docs/services.md,
  /// Plugins); empty: the service is built into the program. Relative paths
  /// are taken from the config file's folder.
  std::string plugin;
  /// Worker services: actors in the pool. Default: 2.
  std::size_t workers = 2;
  /// Requests admitted at once; beyond it callers get `overloaded`. Default: 10000.
  std::size_t max_in_flight = 10000;
  /// Entity services: durability of state writes ("sync" or "async"). Default: sync.
  durability store_durability = durability::sync;
  /// Entity services: an entity idle this long is passivated. Default: 60000 ms.
  std::chrono::milliseconds entity_idle{60000};
  /// Entity services: an entity whose actor has had nothing to do this long
  /// hibernates (OTP's `hibernate_after`): its actor ends and only its state
  /// stays in memory, under its service's root; its next message wakes it on
  /// a fresh actor without reading the store. It stays live (and counted)
  /// until `entity_idle` passivates it. 0: never. Default: 1000 ms.
  std::chrono::milliseconds entity_hibernate_after{1000};
  /// Entity services: live entity actors at most; a request that would
  /// activate one more gets `overloaded` until idle ones are passivated.
  /// Default: 1000000.
  std::size_t max_live_entities = 1000000;
  /// Event-sourced entities: write a snapshot every this many events. Default: 100.
  std::size_t snapshot_every = 100;
  /// Entity services: how long the result of a request with an idempotency key
  /// is kept to answer its retries. Default: 86400000 ms (24 h).
  std::chrono::milliseconds idempotency_ttl{86400000};
  /// Resumable entity services: how often entities with unfinished work (a
  /// saga cut short by a crash or a failed step) are resumed. Default: 500 ms.
  std::chrono::milliseconds resume_every{500};
  /// Strategy (workers only; entities are always simple_one_for_one), restart
  /// intensity and backoff of the service's root supervisor. Defaults: see
  /// supervision.hpp, except the intensity of entity services (below).
  supervision_policy supervision;
  /// True when the config set max_restarts or restart_period_ms. Otherwise an
  /// entity service gives up only when crashes are widespread: more than 30
  /// in 5 s (one crash affects one key, and a key that keeps crashing is
  /// quarantined after `quarantine_after`); workers keep 3 in 5 s.
  bool intensity_set = false;
  /// Entity services: a key whose actor crashes this many times within
  /// `quarantine_window` is quarantined: its requests get `entity_quarantined`
  /// for `quarantine_for` (or until an operator restarts it), and the rest of
  /// the service keeps serving. 0 turns quarantine off. Default: 3.
  std::size_t quarantine_after = 3;
  /// Default: 10000 ms.
  std::chrono::milliseconds quarantine_window{10000};
  /// Default: 60000 ms.
  std::chrono::milliseconds quarantine_for{60000};
  /// Worker services: restart type of each worker (permanent, transient,
  /// temporary; see supervision.hpp). Default: permanent.
  restart_type worker_restart = restart_type::permanent;
  /// A handler running longer than this is reported by the watchdog (with its
  /// method's name); 0 turns it off. Default (-1): 1000 ms for workers on the
  /// shared scheduler threads, where a blocking handler delays every service;
  /// off for services with blocking methods, whose workers have threads of
  /// their own and are expected to wait.
  std::chrono::milliseconds handler_timeout{-1};
  /// What the watchdog does about a stuck worker: report it, or also replace it
  /// with a fresh worker (the stuck one quits once its handler returns). Default: false (report).
  bool replace_stuck = false;
  /// Entity services: the event log clients subscribe to.
  event_log_config events;
};

/// How a node spreads requests over the instances of a remote service.
enum class balance_policy {
  round_robin,        ///< each instance in turn
  least_outstanding,  ///< the instance with the fewest requests in flight from this node
  consistent_hash,    ///< by entity key: the same key lands on the same instance while the set is stable
};

/// A service hosted elsewhere, reached over the wire ([remote.NAME]).
struct remote_service_config {
  std::string name;
  /// Its instances' endpoints, e.g. "tcp://10.0.0.7:7400" (DNS names work:
  /// ZeroMQ resolves them). More may register with heartbeats. Default: none.
  std::vector<std::string> endpoints;
  /// Default: round_robin; entity services usually want consistent_hash.
  balance_policy balance = balance_policy::round_robin;
  /// One attempt's share of the deadline; 0 gives an attempt the whole
  /// remaining deadline. A dead instance costs a caller at most this before a
  /// retry moves the request elsewhere. Default: 0.
  std::chrono::milliseconds attempt_timeout{0};
  /// Retries of an idempotent request (or one with an idempotency key) after an
  /// instance failed to answer, each on another instance. Default: 2.
  std::size_t max_retries = 2;
  /// Retries may add at most this share of requests (a retry budget, so that
  /// retries cannot multiply an overload). Default: 0.1.
  double retry_budget = 0.1;
  /// Consecutive failures that open an instance's circuit breaker. Default: 5.
  std::size_t breaker_failures = 5;
  /// How long an open breaker keeps an instance out before one trial request. Default: 1000 ms.
  std::chrono::milliseconds breaker_cooldown{1000};
  /// Bulkhead: requests this node has in flight to the service, over all its
  /// instances; beyond it callers get `overloaded` at once. Default: 10000.
  std::size_t max_in_flight = 10000;
  /// The node is not ready (/health/ready 503) while no instance of this
  /// service is available (none known, or every breaker open): a front that
  /// cannot reach payments should not take checkouts. Default: false.
  bool required = false;
};

/// The HTTP/JSON front ([http]); off unless `listen` is set.
struct http_config {
  /// "host:port" to listen on, e.g. "127.0.0.1:8080"; port 0 picks a free one. Default: "" (off).
  std::string listen;
  /// Largest request body; larger ones get 413. Default: 1 MiB.
  std::size_t max_body_bytes = 1u << 20;
  /// A client must send a whole request (headers and body) within this, and an
  /// idle keep-alive connection is closed after it. Default: 10000 ms.
  std::chrono::milliseconds read_timeout{10000};
  /// HTTP requests in flight at once; beyond it 429 at once. Default: 10000.
  std::size_t max_in_flight = 10000;
  /// TLS: a PEM certificate (chain) and its private key; both or neither.
  /// Read again when either file changes. Default: "" (plain HTTP, loopback only).
  std::string tls_cert_file;
  std::string tls_key_file;
  [[nodiscard]] bool tls() const noexcept { return !tls_cert_file.empty(); }
  /// Callers (API tokens, JWTs), per-route access, rate limits and CORS
  /// ([[http.token]], [http.jwt], [[http.route]], rate_per_s, cors_origins).
  security::http_security_config auth;
};

/// [cluster]: entity services sharded across nodes, coordinated by etcd
/// (docs/cluster.md). Absent: a node on its own, no etcd.
struct cluster_config {
  /// etcd client URLs ("http://host:2379"). Empty: no cluster.
  std::vector<std::string> etcd;
  /// The cluster's name: its keys live under /cohort/<name>/ in etcd. Default: "cohort".
  std::string name = "cohort";
  /// The endpoint other nodes reach this node at. Default: the first listener as bound.
  std::string advertise;
  /// The membership lease. A node that cannot renew it stops serving its
  /// shards before it can expire (fencing). Default: 5000 ms (at least 2000).
  std::chrono::milliseconds lease_ttl{5000};
  /// Shards per entity service (fixed once the cluster stores its map). Default: 64.
  std::uint32_t shards = 64;
  /// The entity services that are sharded. Default: every entity service hosted.
  std::vector<std::string> services;
  /// How often the node reads the cluster's state from etcd. Default: 200 ms.
  std::chrono::milliseconds poll{200};
  /// Requests for a shard that is changing hands wait this long for the new
  /// owner at most (then `unavailable`). Default: 10000 ms.
  std::chrono::milliseconds hold_timeout{10000};
  /// The largest piece of a shard transfer this node asks for in one
  /// node-to-node message (an export up to it comes in one answer with its
  /// manifest). Default: 524288 (512 KiB); between 1024 and 4194304.
  std::uint32_t transfer_chunk_bytes = 512 * 1024;
  [[nodiscard]] bool enabled() const noexcept { return !etcd.empty(); }
};

/// Everything about one node ([node], [limits], [services.*], [remote.*]).
struct node_config {
  /// Name used in logs. Default: "cohort".
  std::string name = "cohort";
  /// Instance name, for several instances of a service on one machine: stores
  /// go to <data_dir>/<service>-<instance>/. Default: "" (<data_dir>/<service>/).
  std::string instance;
  /// Client endpoints (ZeroMQ ROUTER binds); "tcp://127.0.0.1:*" picks a free port. Default: tcp://127.0.0.1:7400.
  std::vector<std::string> listen{"tcp://127.0.0.1:7400"};
  /// Admin endpoint for cohortctl (same protocol, service "admin"); empty turns it off.
  /// Default: tcp://127.0.0.1:7401 (loopback only).
  std::string admin = "tcp://127.0.0.1:7401";
  /// "none": services run as actor groups in this process. "process": each
  /// service runs in a child process of its own, supervised by this one, so a
  /// segfault in one service cannot take the others down (needs a config file).
  /// Default: "none".
  std::string isolation = "none";
  /// The config file this came from (set by load_node_config; not a TOML key).
  std::string source_path;
  /// Registries (gateways) this node announces its services to, with a
  /// heartbeat every heartbeat_ms; they drop it after 3 missed heartbeats.
  /// Default: none.
  std::vector<std::string> register_with;
  /// The endpoint registries should use to reach this node. Default: the first
  /// listen endpoint as bound.
  std::string advertise;
  /// Heartbeat period. Default: 500 ms.
  std::chrono::milliseconds heartbeat{500};
  /// ZeroMQ heartbeats on every connection between nodes (and to clients):
  /// a connection silent for peer_timeout_ms is closed and made again, so
  /// traffic flows again soon after a silent partition heals (not after TCP's
  /// retransmission backoff). 0 turns them off. Defaults: 500 and 1500 ms.
  std::chrono::milliseconds peer_heartbeat{500};
  std::chrono::milliseconds peer_timeout{1500};
  /// Allows `cohortctl crash` (fault injection for drills). Default: false.
  bool allow_fault_injection = false;
  /// Directory holding one store per service: <data_dir>/<service>/. Default: "cohort-data".
  std::string data_dir = "cohort-data";
  /// Where backups go: <backup_root>/<service>/<name>. Default: "" (<data_dir>/backups).
  std::string backup_root;
  /// On SIGINT/SIGTERM, how long in-flight requests may take to finish. Default: 5000 ms.
  std::chrono::milliseconds drain_timeout{5000};
  /// Deadline for requests that carry none. Default: 30000 ms.
  std::chrono::milliseconds default_deadline{30000};
  /// How far apart the clocks of two hosts may be. A request's time in transit
  /// (its `sent_ms` to its arrival) counts against its deadline beyond this
  /// much, so requests held up by a partition are dropped, not run late.
  /// Default: 250 ms.
  std::chrono::milliseconds max_clock_skew{250};
  /// CAF scheduler threads; 0 means one per core but one (the node's I/O
  /// thread and ZeroMQ's need a core of their own: on 2 cores this moved
  /// request/reply throughput from 0.38 to 0.51 of raw ZeroMQ), and at least
  /// two, so that one handler that blocks without saying so cannot stop every
  /// service of a small machine while the watchdog reports it. Default: 0.
  std::size_t scheduler_threads = 0;
  /// Microseconds the I/O thread keeps polling without sleeping (yielding in
  /// between) after its last event: trades a little CPU on a quiet node for
  /// not paying a wake-up per request. Time, not a count of polls: a poll's
  /// cost changes with the code and the machine, the gap between a client's
  /// requests does not. 0 turns spinning off; a node that hosts no services
  /// (a pure gateway) never spins. Default: 200.
  int io_spin_us = 200;
  /// Megabytes the memtables of all this node's stores may hold together
  /// (writes not yet flushed to table files; storage/memory_budget.hpp):
  /// past it, the store being written flushes. RocksDB's own bound is per
  /// column family, nine per store. 0: that bound alone. Default: 256.
  std::size_t store_memory_mb = 256;
  /// CAF scheduling policy:
  /// - "affinity" (default; runtime/scheduler): CAF's one shared queue, but
  ///   an actor that a running actor sends to runs next on the same thread,
  ///   with no wake-up of another (a call and its reply stay on one thread);
  ///   an idle thread takes such a job within 0.5 ms if its thread stays
  ///   busy. 3-4x the in-process call rate of "sharing" (bench/README.md);
  /// - "sharing": CAF's one queue; idle threads sleep on a condition
  ///   variable and every send to an idle actor wakes one;
  /// - "stealing": CAF's per-thread queues; idle threads poll with growing
  ///   sleeps (~100 us more latency on a quiet node).
  std::string scheduler_policy = "affinity";
  /// Limits on input from peers ([limits]).
  wire_limits limits;
  std::vector<service_config> services;
  std::vector<remote_service_config> remotes;
  http_config http;
  /// [metrics] listen: "host:port" of a plain HTTP endpoint that serves only
  /// GET /metrics (Prometheus), for nodes without an HTTP front. Loopback
  /// unless the config says otherwise. Default: "" (off; /metrics is on the HTTP front).
  std::string metrics_listen;
  /// [metrics] requests: count requests and their latency per service and
  /// method (the hot-path part of the metrics; the rest is read at scrape
  /// time and costs nothing between scrapes). Default: true.
  bool request_metrics = true;
  /// [log]: text or JSON lines, levels per component, the HTTP access log,
  /// the ring of recent lines (docs/observability.md).
  log::config log;
  /// [trace]: sampling, spans kept for `cohortctl trace`, OTLP/HTTP export.
  observability::trace_config trace;
  /// The clock entities' reminders are due by (Unix ms). Empty: the wall
  /// clock. Not in TOML: for tests that move time themselves.
  std::function<std::uint64_t()> reminder_clock;
  /// Keys, the trust list and who may do what ([security], docs/security.md).
  security::security_config security;
  /// [cluster]: shards across nodes through etcd (docs/cluster.md).
  cluster_config cluster;
};

/// The default node config (loopback ports, HTTP on 127.0.0.1:8080) hosting every service in `hosted`.
[[nodiscard]] node_config default_node_config(const std::vector<service_definition>& hosted);

/// Where a service's store lives: <data_dir>/<service>[-<instance>].
[[nodiscard]] std::string store_dir(const node_config& cfg, const std::string& service);
/// The values `scheduler_policy` takes (the config loader and the benches' options check against it).
inline const std::vector<std::string>& scheduler_policies() {
  static const std::vector<std::string> names{"affinity", "sharing", "stealing"};
  return names;
}
/// Where backups go: `backup_root`, or <data_dir>/backups when it is empty.
[[nodiscard]] std::string backup_root(const node_config& cfg);

/// Reads a TOML config. Unknown keys, wrong types, unknown service names and a
/// missing file are errors naming the key (with its line) or the file.
[[nodiscard]] result<node_config> load_node_config(const std::string& path,
                                                   const std::vector<std::string>& known_services);

/// As load_node_config, from text; `source` names it in messages.
[[nodiscard]] result<node_config> parse_node_config(std::string_view toml_text, const std::string& source,
                                                    const std::vector<std::string>& known_services);

}  // namespace cohort
