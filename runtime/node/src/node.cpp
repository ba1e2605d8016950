#include "cohort/runtime/node.hpp"
#include "cohort/scheduler/affinity_sharing.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "cohort/admin/admin_service.hpp"
#include "cohort/cluster/cluster_agent.hpp"
#include "cohort/cluster/resend_backoff.hpp"
#include "cohort/core/service_host.hpp"
#include "cohort/gateway/http_front.hpp"
#include "cohort/isolation/process_host.hpp"
#include "cohort/isolation/runtime_dir.hpp"
#include "cohort/net/io_loop.hpp"
#include "cohort/log/log.hpp"
#include "cohort/log/log_ring.hpp"
#include "cohort/observability/metrics.hpp"
#include "cohort/observability/tracer.hpp"
#include <prometheus/exposer.h>

namespace cohort {

namespace {
using clock_type = std::chrono::steady_clock;
}

// The assembly of a node: the ZeroMQ edge (io_loop), the HTTP front, the
// services hosted here (service_host) or in child processes (process_host),
// and the admin endpoint, connected to one another. Everything below the
// node knows none of the others.
struct node::impl final : detail::call_router, cluster::cluster_host {
  node_config cfg;
  /// Spans of this node; outlives everything that records them (destroyed last but one).
  std::unique_ptr<observability::tracer> tracer;
  zmq::context_t ctx{1};
  /// Keys, trust list, ZAP handler: before the I/O loop, which uses it, and gone after it.
  std::unique_ptr<security::node_security> security;
  std::unique_ptr<detail::io_loop> io;
  /// Request counts and latencies (hot path), and what /metrics reads at scrape time.
  std::unique_ptr<observability::metrics> metrics = std::make_unique<observability::metrics>();
  std::unique_ptr<prometheus::Exposer> exposer;  ///< [metrics] listen: /metrics without [http]
  /// The calls this node's services make (ctx.call): counted on the client side, then routed.
  struct outbound_calls final : detail::call_router {
    impl* node = nullptr;
    void route(detail::request_ptr req) override {
      if (node->cfg.request_metrics) {
        auto& m = node->metrics->client(req->header.service, req->header.method);
        req->observer = [&m, start = req->made_or_now()](const detail::request&, std::string_view code) {
          m.record(code, clock_type::now() - start);
        };
      }
      node->route_traced(std::move(req), false);
    }
  } outbound;
  std::unique_ptr<caf::actor_system_config> actor_cfg;
  std::unique_ptr<caf::actor_system> actors;
  std::unique_ptr<detail::service_host> host;  ///< the services hosted in this process
  std::unordered_set<std::string> remotes;  ///< services reached over the wire (pools on the I/O thread)
  std::vector<std::string> endpoints;
  std::string admin_endpoint;
  std::unique_ptr<detail::http_front> http;  ///< the HTTP/JSON front, when [http] listen is set
  std::string http_endpoint;
  std::unique_ptr<detail::process_host> processes;  ///< isolation = "process"
  std::unique_ptr<detail::admin_operations> admin;  ///< what the admin endpoint may ask of this node
  std::unique_ptr<detail::admin_worker> admin_worker;  ///< where its slow verbs run
  std::string runtime_dir;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};  ///< stop() may be called from several threads: it runs once
  node* owner = nullptr;
  clock_type::time_point started = clock_type::now();

  // ---- [cluster]: entity services sharded across nodes (docs/cluster.md) ----
  std::unique_ptr<cluster::cluster_agent> cluster;
  /// Requests for shards changing hands, routed again when the map moves on.
  std::mutex held_mutex;
  std::deque<std::pair<detail::request_ptr, clock_type::time_point>> held;
  static constexpr std::size_t max_held = 100000;
  std::atomic<std::int64_t> released_revision{-1};  ///< the map revision entities were last let go for
  /// Sharded services' default keys: a request without a key is routed by the key it will run with.
  std::unordered_map<std::string, std::string> default_keys;

  void route_sharded(detail::request_ptr req) {
    auto& h = req->header;
    if (h.key.empty())
      if (auto it = default_keys.find(h.service); it != default_keys.end()) h.key = it->second;
    const bool forwarded = h.shard != envelope::no_shard;
    auto d = cluster->route(h.service, h.key, forwarded);
    switch (d.kind) {
      case cluster::route_decision::local: {
        const auto came_with = std::make_pair(h.shard, h.epoch);
        h.shard = d.shard, h.epoch = d.epoch;
        if (cluster->track(*req, h.service, d.shard, d.precopy)) return host->deliver(std::move(req));
        std::tie(h.shard, h.epoch) = came_with;
      }
        [[fallthrough]];  // its pre-copy ended a moment ago: held until the shard has its new owner
      case cluster::route_decision::hold:
        // Held unless the view moved on since it was read above (then routed by the newer one).
        if (hold_unless_moved_on(req, [](const cluster::route_decision& now) {
              return now.kind != cluster::route_decision::hold && now.kind != cluster::route_decision::local;
            }))
          return;
        break;
      case cluster::route_decision::forward:
        return forward_sharded(std::move(req), d);
      case cluster::route_decision::wrong_shard: {
        // Named in full, so that the sender (a node forwarding, or a client
        // that talks to owners itself) can send it there.
        error_info err{errc::wrong_shard, d.why};
        err.owner = std::make_shared<const shard_owner>(shard_owner{d.owner, d.endpoint, d.key, d.shard, d.shards, d.epoch});
        req->fail(err);
        return;
      }
      case cluster::route_decision::unavailable:
        req->fail({errc::unavailable, d.why});
        return;
    }
    req->fail({errc::overloaded, "this node holds " + std::to_string(max_held) +
                                     " requests for shards changing hands; retry shortly"});
  }

  /// Forwards a request to the owner this node believes in. The owner may
  /// have handed the shard on a moment ago (this node's view is one poll
  /// behind): its `wrong_shard` is not the caller's business, so the request
  /// waits with the held ones and is routed again by the newer view (within
  /// hold_timeout_ms). It did not run there: routing it again is safe.
  void forward_sharded(detail::request_ptr req, const cluster::route_decision& d) {
    envelope h = req->header;
    h.shard = d.shard, h.epoch = d.epoch;
    auto payload = req->payload;
    const auto deadline = req->deadline;
    auto inner = std::make_shared<detail::request>(
        std::move(h), std::move(payload), deadline,
        [this, req, owner = d.owner, epoch = d.epoch](const envelope& reply, payload_bytes&& p) {
          if (reply.kind == message_kind::error) {
            auto err = decode_error_payload(p, wire_limits{});
            if (err.is(errc::wrong_shard)) {
              // The shard moved on. The watch usually brought this node the
              // change before the old owner's answer came back (it answers the
              // requests it held once it sees the same change): routed by that
              // view at once, or held until the view names another owner.
              req->header.shard = envelope::no_shard, req->header.epoch = 0;
              // Or the other way round: the node it was sent to has not seen
              // the epoch this node sent it under (it took the shard a moment
              // ago and its own view is behind). It will within milliseconds;
              // this node's view will not change for it: sent again shortly,
              // less often after many re-sends (resend_backoff), until its deadline.
              if (err.owner && err.owner->epoch < epoch && io->on_io_thread()) {
                io->after(cluster::resend_backoff(req->resends++), [this, req] { route(req); });
                return;
              }
              if (hold_unless_moved_on(req, [&owner, epoch](const cluster::route_decision& now) {
                    return now.kind == cluster::route_decision::local ||
                           (now.kind == cluster::route_decision::forward && (now.owner != owner || now.epoch != epoch));
                  }))
                return;
            }
            req->fail(err);
            return;
          }
          req->header.shard = reply.shard, req->header.epoch = reply.epoch;
          req->respond(std::move(p));
        });
    forward_to_member(d.owner, d.endpoint, d.key, std::move(inner));
  }

  /// Holds `req` until ownership changes, unless this node's view has
  /// moved on already (`moved_on` of what the view says now), in which case
  /// it is routed by it at once. The view is read under `held_mutex`: every
  /// change of it is followed by ownership_changed, which takes the same
  /// lock to route what is held, so a request is either routed by the newer
  /// view or seen by the call that follows the change, never left waiting
  /// for the next poll (`poll_ms`). False: not held, the node holds too many.
  template <class MovedOn>
  bool hold_unless_moved_on(const detail::request_ptr& req, MovedOn moved_on) {
    {
      std::lock_guard<std::mutex> guard(held_mutex);
      const auto& h = req->header;
      if (!moved_on(cluster->route(h.service, h.key, h.shard != envelope::no_shard))) {
        if (held.size() >= max_held) return false;
        held.emplace_back(req, clock_type::now());
        return true;
      }
    }
    route(req);
    return true;
  }

  /// A request to another member, over the node-to-node link (CURVE with
  /// the member's published key when our trust list knows it as a node).
  void forward_to_member(const std::string& name, const std::string& endpoint, const std::string& key,
                         detail::request_ptr req) {
    auto go = [this, endpoint, key, name](detail::request_ptr r) {
      auto pool = member_link(name, endpoint, key);
      if (pool)
        io->forward_remote(*pool, std::move(r));
      else
        r->fail(pool.error());
    };
    if (io->on_io_thread()) return go(std::move(req));
    io->post([go, req = std::move(req)]() mutable { go(std::move(req)); });
  }

  /// The link to a member (made on first use; I/O thread only): its pool's name.
  result<std::string> member_link(const std::string& name, const std::string& endpoint, const std::string& key) {
    auto pool = "_node/" + name + "@" + endpoint;
    if (io->remote_services().count(pool)) return pool;
    if (!key.empty()) {
      if (!security || !security->trusts_node(key))
        return error_info{errc::unauthenticated, "cluster member '" + name +
                                                     "' publishes a key this node does not trust as a node: add it "
                                                     "to the trust list (docs/cluster.md)"};
      io->learn_server_key(endpoint, key);
    }
    remote_service_config rc;
    rc.name = pool;
    rc.endpoints = {endpoint};
    rc.max_retries = 0;  // one owner: nowhere else to go
    io->add_remote_service(rc);
    return pool;
  }

  // cluster_host
  store* store_of(const std::string& service) override { return host->store_of(service); }
  void data_arrived(const std::string& service) override { host->data_arrived(service); }
  void ownership_changed(bool let_go) override {
    std::deque<std::pair<detail::request_ptr, clock_type::time_point>> again;
    {
      std::lock_guard<std::mutex> guard(held_mutex);
      again.swap(held);
    }
    const auto now = clock_type::now();
    for (auto& [req, since] : again) {
      if (now - since > cfg.cluster.hold_timeout) {
        req->fail({errc::unavailable, "shard " + std::to_string(req->header.shard) + " of '" + req->header.service +
                                          "' is changing hands and did not settle within hold_timeout_ms"});
        continue;
      }
      if (now >= req->deadline) {  // route() measures from when it was made, long before
        req->fail({errc::timeout, "deadline passed while " + req->header.service + "." + req->header.method +
                                      " waited for its shard to change hands"});
        continue;
      }
      route(std::move(req));
    }
    // Walking every live entity is not free (a million of them): only when
    // the map moved on (a new revision), not on every poll's fresh read.
    auto v = cluster->view();
    const auto previous = released_revision.exchange(v->revision);
    if (let_go || previous != v->revision) {
      for (const auto& s : cfg.cluster.services) host->release_unserved(s);
    }
    // Worker services hosted by other members: found through the cluster, as
    // heartbeats would announce them (no static endpoints), kept while the
    // member holds its lease. Every poll, changed view or not: each refresh
    // is what keeps the instance from expiring, like a heartbeat.
    io->post([this, v] {
      for (const auto& [name, m] : v->members) {
        if (name == cfg.name || m.endpoint.empty()) continue;
        if (!m.key.empty()) {
          if (!security || !security->trusts_node(m.key)) continue;
          io->learn_server_key(m.endpoint, m.key);
        }
        for (const auto& s : m.hosts)
          if (!host->hosts(s) && !cluster->sharded(s) && s.size() < 256) io->refresh_instance(s, m.endpoint);
      }
    });
  }
  result<std::string> call_peer(const cluster::member& to, const std::string& method, std::string payload,
                                std::chrono::milliseconds timeout) override {
    auto answer = std::make_shared<std::promise<result<std::string>>>();
    auto got = answer->get_future();
    send_to_peer(to, method, std::move(payload), timeout, [answer](result<std::string> r) {
      answer->set_value(std::move(r));
    });
    if (got.wait_for(timeout + std::chrono::seconds(1)) != std::future_status::ready)
      return error_info{errc::timeout, "node '" + to.name + "' did not answer _cluster." + method};
    return got.get();
  }
  void connect_peer(const cluster::member& to) override {
    io->post([this, to] { (void)member_link(to.name, to.endpoint, to.key); });
  }
  void tell_peer(const cluster::member& to, const std::string& method, std::string payload,
                 std::chrono::milliseconds timeout) override {
    send_to_peer(to, method, std::move(payload), timeout, [](result<std::string>) {});
  }
  void send_to_peer(const cluster::member& to, const std::string& method, std::string payload,
                    std::chrono::milliseconds timeout, std::function<void(result<std::string>)> done) {
    envelope h;
    h.service = "_cluster";
    h.method = method;
    h.id = 1;
    h.deadline_ms = static_cast<std::uint32_t>(timeout.count());
    auto req = std::make_shared<detail::request>(std::move(h), std::move(payload), clock_type::now() + timeout,
                                                 [done = std::move(done)](const envelope& reply, payload_bytes&& p) {
                                                   if (reply.kind == message_kind::error)
                                                     done(decode_error_payload(p, wire_limits{}));
                                                   else
                                                     done(std::move(p).take());
                                                 });
    forward_to_member(to.name, to.endpoint, to.key, std::move(req));
  }

  /// Ingress from the sockets: refuse new work while draining.
  void admit(detail::request_ptr req) {
    if (cfg.request_metrics) {
      auto& m = metrics->server(req->header.service, req->header.method);
      req->observer = [&m, start = req->made_or_now()](const detail::request&, std::string_view code) {
        m.record(code, clock_type::now() - start);
      };
    }
    if (draining.load(std::memory_order_relaxed)) {
      req->fail({errc::unavailable, "node '" + cfg.name + "' is shutting down"});
      return;
    }
    route_traced(std::move(req), true);
  }

  /// Routes with this hop's span: a request served here gets a server span;
  /// one that arrived from outside and goes on to a remote instance gets a
  /// client span (the forward). Calls this node's handlers make to remote
  /// services have their client span already (made where the call was made).
  void route_traced(detail::request_ptr req, bool from_outside) {
    if (tracer->enabled()) {
      if (host->hosts(req->header.service))
        detail::begin_span(*req, tracer.get(), observability::span_kind::server);
      else if (from_outside)
        detail::begin_span(*req, tracer.get(), observability::span_kind::client);
    }
    route(std::move(req));
  }


  void route(detail::request_ptr req) override {
    const auto& h = req->header;
    // Measured from when the request was made (a call out, or the I/O
    // thread's round that read it: microseconds ago), not a clock read per
    // request; the handler checks the deadline again when it starts.
    if (req->made_or_now() >= req->deadline) {
      req->fail({errc::timeout, "deadline passed before " + h.service + "." + h.method + " was routed"});
      return;
    }
    if (cluster) {
      if (h.service == "_cluster") return cluster->handle(std::move(req));
      if (cluster->sharded(h.service)) return route_sharded(std::move(req));
    }
    if (host->hosts(h.service)) return host->deliver(std::move(req));
    // Anything not hosted here may be remote, configured or registered by
    // heartbeat: the I/O thread, which owns the instance pools, decides.
    {
      std::string why;
      if (processes && remotes.count(h.service) && !processes->ready(h.service, &why)) {
        req->fail({errc::unavailable, "service '" + h.service + "' is unavailable: " + why});
        return;
      }
      if (io->on_io_thread()) {  // a request from our own sockets: no hop needed
        auto service = req->header.service;
        return io->forward_remote(service, std::move(req));
      }
      io->post([this, req = std::move(req)]() mutable {
        auto service = req->header.service;
        io->forward_remote(service, std::move(req));
      });
      return;
    }
  }

  /// What keeps this node from being ready: draining, or a service not up.
  std::vector<std::string> not_ready() const {
    std::vector<std::string> why;
    if (draining.load()) why.push_back("node '" + cfg.name + "' is draining");
    if (!owner) return {"node '" + cfg.name + "' is starting"};
    for (const auto& s : owner->services())
      if (s.state != "up") why.push_back(s.name + " is " + s.state + (s.down_reason.empty() ? "" : ": " + s.down_reason));
    // Required remote services: at least one instance whose breaker lets requests through.
    bool any_required = false;
    for (const auto& r : cfg.remotes) any_required = any_required || r.required;
    if (any_required && !processes) {
      auto instances = owner->registry();
      for (const auto& r : cfg.remotes) {
        if (!r.required) continue;
        std::size_t known = 0, open = 0;
        for (const auto& i : instances)
          if (i.service == r.name) known++, open += i.breaker == "open";
        if (known == 0 || open == known)
          why.push_back(r.name + " (required) has no available instance: " + std::to_string(known) + " known, " +
                        std::to_string(open) + " with an open breaker");
      }
    }
    return why;
  }

  /// What /health answers besides ready or not: every service's state and
  /// every remote dependency's (instances, breakers, last success).
  nlohmann::json health_json() const {
    using json = nlohmann::json;
    json out = {{"services", detail::services_json(owner->services())}, {"remotes", json::array()}};
    if (cfg.remotes.empty() || processes) return out;
    auto instances = owner->registry();
    for (const auto& r : cfg.remotes) {
      std::size_t known = 0, available = 0;
      double last_success = -1;
      for (const auto& i : instances) {
        if (i.service != r.name) continue;
        known++;
        available += i.breaker != "open";
        if (i.last_success_s >= 0 && (last_success < 0 || i.last_success_s < last_success)) last_success = i.last_success_s;
      }
      out["remotes"].push_back({{"service", r.name}, {"required", r.required}, {"instances", known},
                                {"available", available},
                                {"last_success_s", last_success < 0 ? json(nullptr) : json(last_success)}});
    }
    return out;
  }

  /// What /metrics reads at scrape time.
  void collect(observability::family_builder& b) const {
    using prometheus::MetricType;
    auto services = owner->services();
    auto per_service = [&](const char* name, const char* help, MetricType type, auto value) {
      b.family(name, help, type);
      for (const auto& s : services) b.sample({{"service", s.name}}, static_cast<double>(value(s)));
    };
    per_service("cohort_service_up", "1 when the service is up, 0 when it is down", MetricType::Gauge,
                [](const service_status& s) { return s.state == "up" ? 1 : 0; });
    per_service("cohort_service_restarts_total", "Restarts made by the service's supervisors", MetricType::Counter,
                [](const service_status& s) { return s.restarts; });
    // Worker restarts timed inside the node: failure to the replacement's first message (last 1024).
    for (auto [name, pick] : {std::pair{"cohort_service_restart_latency_p50_seconds", &service_status::restart_latency_p50_us},
                              std::pair{"cohort_service_restart_latency_p99_seconds", &service_status::restart_latency_p99_us}}) {
      b.family(name, "Worker restart latency inside the node (failure to the replacement's first message; last 1024)",
               MetricType::Gauge);
      for (const auto& s : services)
        if (s.*pick >= 0) b.sample({{"service", s.name}}, s.*pick / 1e6);
    }
    b.family("cohort_service_blocking_threads", "Threads the workers of a service with blocking methods run on",
             MetricType::Gauge);
    for (const auto& s : services)
      if (s.blocking_threads >= 0) b.sample({{"service", s.name}}, static_cast<double>(s.blocking_threads));
    per_service("cohort_service_in_flight", "Requests admitted and not answered yet", MetricType::Gauge,
                [](const service_status& s) { return s.in_flight; });
    per_service("cohort_service_stuck_handlers_total", "Handlers the watchdog found past handler_timeout_ms",
                MetricType::Counter, [](const service_status& s) { return s.stuck_handlers; });
    per_service("cohort_entities_live", "Live entities (in memory: awake or hibernated)", MetricType::Gauge,
                [](const service_status& s) { return s.live_entities; });
    per_service("cohort_entities_hibernated", "Live entities hibernated (state kept, no actor)", MetricType::Gauge,
                [](const service_status& s) { return s.hibernated_entities; });
    per_service("cohort_entity_hibernations_total", "Idle entity actors ended with their state kept in memory",
                MetricType::Counter, [](const service_status& s) { return s.hibernations; });
    per_service("cohort_entity_wakes_total", "Hibernated entities woken by a message (no store read)",
                MetricType::Counter, [](const service_status& s) { return s.wakes; });
    per_service("cohort_entity_activations_total", "Entity activations (state loaded)", MetricType::Counter,
                [](const service_status& s) { return s.activations; });
    per_service("cohort_entity_passivations_total", "Entity passivations (idle actors stopped)", MetricType::Counter,
                [](const service_status& s) { return s.passivations; });
    per_service("cohort_entity_quarantines_total", "Entity keys quarantined after repeated crashes", MetricType::Counter,
                [](const service_status& s) { return s.quarantines; });
    per_service("cohort_resumes_total", "Resume calls for entities with unfinished work (sagas)", MetricType::Counter,
                [](const service_status& s) { return s.resumes; });
    per_service("cohort_events_published_total", "Outbox records written (one per subscriber)", MetricType::Counter,
                [](const service_status& s) { return s.events_published; });
    per_service("cohort_events_delivered_total", "Outbox records acknowledged by their subscriber", MetricType::Counter,
                [](const service_status& s) { return s.events_delivered; });
    per_service("cohort_event_redeliveries_total", "Event deliveries that failed and were tried again", MetricType::Counter,
                [](const service_status& s) { return s.event_redeliveries; });
    per_service("cohort_events_logged_total", "Events appended to the service's event log (client subscriptions)",
                MetricType::Counter, [](const service_status& s) { return s.events_logged; });
    b.family("cohort_subscriptions", "Client subscriptions to the service's events served now", MetricType::Gauge);
    for (const auto& s : services)
      if (s.subscriptions >= 0) b.sample({{"service", s.name}}, static_cast<double>(s.subscriptions));
    per_service("cohort_outbox_oldest_age_seconds", "Age of the oldest event its relay knows to be undelivered (0: none)",
                MetricType::Gauge, [](const service_status& s) { return s.outbox_oldest_age_s; });
    b.family("cohort_entities_pending", "Entities with unfinished work (sagas in progress) at the last resume sweep",
             MetricType::Gauge);
    for (const auto& s : services)
      if (s.pending_entities >= 0) b.sample({{"service", s.name}}, static_cast<double>(s.pending_entities));
    per_service("cohort_outbox_backlog", "Events published and not yet delivered", MetricType::Gauge,
                [](const service_status& s) {
                  return s.events_published > s.events_delivered ? s.events_published - s.events_delivered : 0;
                });
    const auto m = owner->metrics();
    auto edge = [&](const char* name, const char* help, std::uint64_t v) {
      b.family(name, help, MetricType::Counter).sample({}, static_cast<double>(v));
    };
    edge("cohort_edge_requests_total", "Well-formed requests admitted at the native front", m.requests);
    edge("cohort_edge_rejected_total", "Requests answered with an error at the native front", m.rejected);
    edge("cohort_edge_malformed_frames_total", "Messages that were not a valid Cohort request", m.malformed_frames);
    edge("cohort_edge_expired_in_transit_total", "Requests that arrived after their deadline: dropped, never run",
         m.expired_in_transit);
    edge("cohort_security_refused_requests_total", "Requests refused by admission (unauthenticated, forbidden)", m.refused);
    edge("cohort_security_refused_registrations_total", "Registry heartbeats not from an authenticated node: ignored",
         m.refused_registrations);
    edge("cohort_security_refused_connections_total", "Connections whose key the ZAP handler refused",
         m.refused_connections);
    // Remote services: instances, breakers, load (labels bounded by the registry's limits).
    auto instances = owner->registry();
    b.family("cohort_remote_instances", "Known instances of a remote service", MetricType::Gauge);
    std::map<std::string, int> per_remote;
    for (const auto& i : instances) per_remote[i.service]++;
    for (const auto& [svc, count] : per_remote) b.sample({{"service", svc}}, count);
    b.family("cohort_remote_breaker_open", "1 while an instance's circuit breaker keeps requests away (open or half-open)",
             MetricType::Gauge);
    for (const auto& i : instances) b.sample({{"service", i.service}, {"endpoint", i.endpoint}}, i.breaker == "closed" ? 0 : 1);
    b.family("cohort_remote_outstanding", "Requests in flight from this node to an instance", MetricType::Gauge);
    for (const auto& i : instances) b.sample({{"service", i.service}, {"endpoint", i.endpoint}}, static_cast<double>(i.outstanding));
    b.family("cohort_remote_requests_total", "Attempts sent to an instance", MetricType::Counter);
    for (const auto& i : instances) b.sample({{"service", i.service}, {"endpoint", i.endpoint}}, static_cast<double>(i.requests));
    b.family("cohort_remote_retries_total", "Attempts at an instance that retried a request failed at another",
             MetricType::Counter);
    for (const auto& i : instances) b.sample({{"service", i.service}, {"endpoint", i.endpoint}}, static_cast<double>(i.retries));
    b.family("cohort_remote_bulkhead_rejections_total",
             "Requests refused at once because max_in_flight were out to the remote service", MetricType::Counter);
    std::map<std::string, std::uint64_t> rejections;
    for (const auto& i : instances) rejections[i.service] = i.service_bulkhead_rejections;
    for (const auto& [svc, count] : rejections) b.sample({{"service", svc}}, static_cast<double>(count));
    if (http) {
      b.family("cohort_http_overloaded_total", "HTTP requests refused (429) because the front had max_in_flight",
               MetricType::Counter)
          .sample({}, static_cast<double>(http->overloaded()));
    }
    b.family("cohort_remote_failures_total", "Attempts to an instance that got no answer in time or could not be sent",
             MetricType::Counter);
    for (const auto& i : instances) b.sample({{"service", i.service}, {"endpoint", i.endpoint}}, static_cast<double>(i.failures));
    b.family("cohort_node_draining", "1 while the node drains before stopping", MetricType::Gauge)
        .sample({}, draining.load() ? 1 : 0);
    b.family("cohort_node_uptime_seconds", "Seconds since the node started", MetricType::Gauge)
        .sample({}, std::chrono::duration<double>(clock_type::now() - started).count());
    // Stores of the entity services hosted in this process (in process
    // isolation a service's store lives in its process: not here).
    std::vector<std::pair<std::string, store_stats>> stores;
    for (const auto& s : services)
      if (s.kind == "entities" && host->hosts(s.name))
        if (auto st = host->storage_stats(s.name)) stores.emplace_back(s.name, std::move(*st));
    auto per_store = [&](const char* name, const char* help, MetricType type, auto value) {
      b.family(name, help, type);
      for (const auto& [service, st] : stores) b.sample({{"service", service}}, static_cast<double>(value(st)));
    };
    per_store("cohort_store_commits_total", "Group commits written (one fsync each with durability = sync)",
              MetricType::Counter, [](const store_stats& st) { return st.commits; });
    per_store("cohort_store_writes_total", "Writes (entity batches) made durable, folded into group commits",
              MetricType::Counter, [](const store_stats& st) { return st.committed_writes; });
    per_store("cohort_store_failed_writes_total", "Writes that could not be made durable (disk full, I/O error)",
              MetricType::Counter, [](const store_stats& st) { return st.failed_commits; });
    per_store("cohort_store_written_bytes_total", "Bytes of the batches written", MetricType::Counter,
              [](const store_stats& st) { return st.bytes_written; });
    per_store("cohort_store_pending_compaction_bytes", "Bytes RocksDB estimates compaction still has to rewrite",
              MetricType::Gauge, [](const store_stats& st) { return st.pending_compaction_bytes; });
    per_store("cohort_store_memtable_bytes",
              "Bytes of writes held in memory, not yet flushed to table files (past [node] store_memory_mb for "
              "all stores together, the store being written flushes)",
              MetricType::Gauge, [](const store_stats& st) { return st.memtable_bytes; });
    per_store("cohort_store_running_compactions", "Compactions running now", MetricType::Gauge,
              [](const store_stats& st) { return st.running_compactions; });
    per_store("cohort_store_size_bytes", "Bytes the store takes on disk", MetricType::Gauge,
              [](const store_stats& st) { return st.size_on_disk_bytes; });
    per_store("cohort_store_free_bytes", "Bytes free on the store's file system", MetricType::Gauge,
              [](const store_stats& st) { return st.free_bytes; });
    per_store("cohort_store_writes_refused", "1 while the store refuses writes after a failure (it resumes by itself)",
              MetricType::Gauge, [](const store_stats& st) { return st.write_error.empty() ? 0 : 1; });
    b.family("cohort_store_commit_duration_seconds", "Time of each group commit's write and fsync", MetricType::Histogram);
    for (const auto& [service, st] : stores)
      b.histogram({{"service", service}}, st.commit_seconds.bounds, st.commit_seconds.cumulative, st.commit_seconds.sum);
    b.family("cohort_store_commit_batch_writes", "Writes folded into each group commit", MetricType::Histogram);
    for (const auto& [service, st] : stores)
      b.histogram({{"service", service}}, st.batch_writes.bounds, st.batch_writes.cumulative, st.batch_writes.sum);
    const auto t = tracer->stats();
    b.family("cohort_trace_spans_total", "Spans kept (sampled, or failed)", MetricType::Counter)
        .sample({}, static_cast<double>(t.recorded));
    b.family("cohort_trace_spans_exported_total", "Spans the OTLP collector accepted", MetricType::Counter)
        .sample({}, static_cast<double>(t.exported));
    b.family("cohort_trace_spans_dropped_total", "Spans and log lines dropped because the export queue was full",
             MetricType::Counter)
        .sample({}, static_cast<double>(t.export_dropped));
    b.family("cohort_trace_export_failures_total", "OTLP export requests that failed (collector down, refused, slow)",
             MetricType::Counter)
        .sample({}, static_cast<double>(t.export_failures));
    b.family("cohort_log_lines_overwritten_total", "Log lines pushed out of the in-memory ring by newer ones",
             MetricType::Counter)
        .sample({}, static_cast<double>(log::ring_overwritten()));
  }

  /// The route to a service process's admin endpoint (never a service name: '/' is not allowed in those).
  static std::string admin_route(const std::string& service) { return "_admin/" + service; }

  /// Process isolation: every service runs in a supervised child process,
  /// reached like a remote service over ipc://.
  result<bool> start_processes() {
    if (cfg.source_path.empty())
      return error_info{errc::bad_request, "isolation = \"process\" needs the node to be started from a config file"};
    const auto tmp = std::filesystem::temp_directory_path();
    if (auto stale = detail::remove_stale_runtime_dirs(cfg.name, tmp))
      log::get("node")->info("removed {} runtime director{} left by killed nodes named '{}'", stale,
                             stale == 1 ? "y" : "ies", cfg.name);
    auto dir = detail::make_runtime_dir(cfg.name, tmp);
    if (!dir) return dir.error();
    runtime_dir = *dir;
    char self_path[4096];
    auto n = ::readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n <= 0) return error_info{errc::unavailable, "cannot find this program's path"};
    processes = std::make_unique<detail::process_host>(
        cfg, std::string(self_path, static_cast<std::size_t>(n)), runtime_dir, [this](const std::string& service) {
          // Requests in flight to a dead process get an answer now, not at their deadline.
          io->post([this, endpoint = processes->endpoint_of(service), service] {
            io->fail_remote(endpoint, {errc::unavailable, "the process of service '" + service + "' died"});
          });
        });
    for (const auto& s : cfg.services) {
      remote_service_config r;
      r.name = s.name;
      r.endpoints = {processes->endpoint_of(s.name)};
      r.max_retries = 0;  // one process per service: nowhere else to go
      io->add_remote_service(r);
      remotes.insert(s.name);
      // The child's own admin endpoint, for the storage verbs (its store lives there).
      remote_service_config admin;
      admin.name = admin_route(s.name);
      admin.endpoints = {"ipc://" + runtime_dir + "/" + s.name + ".admin.sock"};
      admin.max_retries = 0;
      io->add_remote_service(admin);
    }
    processes->start();
    return true;
  }

};

namespace {
/// The node as the admin endpoint sees it.
class admin_adapter final : public detail::admin_operations {
 public:
  explicit admin_adapter(node& n) : n_(n) {}
  const std::string& name() const noexcept override { return n_.name(); }
  double uptime_s() const override { return n_.uptime_s(); }
  std::vector<service_status> services() const override { return n_.services(); }
  node_metrics metrics() const override { return n_.metrics(); }
  std::vector<instance_status> registry() const override { return n_.registry(); }
  std::vector<std::string> not_ready() const override { return n_.not_ready(); }
  std::vector<observability::span> spans(const std::string& trace_id) const override { return n_.spans(trace_id); }
  std::vector<std::string> service_process_admins() const override { return n_.service_process_admins(); }
  result<bool> stop_service(const std::string& s) override { return n_.stop_service(s); }
  result<bool> start_service(const std::string& s) override { return n_.start_service(s); }
  result<bool> restart_service(const std::string& s) override { return n_.restart_service(s); }
  result<bool> command_child(const std::string& s, const std::string& c, const std::string& cmd) override {
    return n_.command_child(s, c, cmd);
  }
  bool forward_admin(const std::string& s, detail::request_ptr r) override { return n_.forward_admin(s, std::move(r)); }
  result<store_stats> storage_stats(const std::string& s) const override { return n_.storage_stats(s); }
  result<std::string> backup(const std::string& s, const std::string& b) override { return n_.backup(s, b); }
  result<bool> restore(const std::string& s, const std::string& b) override { return n_.restore(s, b); }
  result<bool> verify_store(const std::string& s) override { return n_.verify_store(s); }
  result<bool> flush_store(const std::string& s) override { return n_.flush_store(s); }
  result<std::string> salvage_store(const std::string& s) override { return n_.salvage_store(s); }
  result<std::string> cluster(const std::string& verb, const std::string& args) override {
    return n_.cluster_command(verb, args);
  }

 private:
  node& n_;
};
}  // namespace

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() { stop(); }

result<std::unique_ptr<node>> node::start(node_config cfg, std::vector<service_definition> catalog) {
  auto p = std::make_unique<impl>();
  p->cfg = cfg;
  impl* self = p.get();
  log::configure(cfg.log, cfg.name);
  p->tracer = std::make_unique<observability::tracer>(cfg.trace, cfg.name);
  p->io = std::make_unique<detail::io_loop>(p->ctx, cfg.limits, cfg.default_deadline,
                                            // Spinning saves the wake-up of replies from local actors; a
                                            // node without services (a pure gateway) has none to wait for.
                                            std::chrono::microseconds(cfg.services.empty() ? 0 : cfg.io_spin_us),
                                            [self](detail::request_ptr r) { self->admit(std::move(r)); });
  p->io->set_max_clock_skew(cfg.max_clock_skew);
  p->io->set_liveness({cfg.peer_heartbeat, cfg.peer_timeout, cfg.peer_timeout});

  // Security first: a public endpoint without keys and a trust list, or a
  // remote whose key is unknown, fails the start before any socket binds.
  auto security_cfg = cfg.security;
  security_cfg.keyless_internal = cfg.allow_fault_injection;  // crash drills from this host
  auto sec = security::node_security::start(p->ctx, security_cfg, cfg.data_dir);
  if (!sec) return sec.error();
  p->security = std::move(*sec);
  for (const auto& ep : cfg.listen)
    if (auto err = p->security->check_public(ep, "[node] listen")) return *err;
  if (!cfg.admin.empty())
    if (auto err = p->security->check_public(cfg.admin, "[node] admin")) return *err;
  // [metrics] listen is plain HTTP with no authentication: loopback only, unless insecure on purpose
  // (a public scrape goes through the HTTP front's /metrics, with TLS and a token).
  if (!cfg.metrics_listen.empty() && !cfg.security.insecure && !security::is_loopback_endpoint("tcp://" + cfg.metrics_listen))
    return error_info{errc::bad_request, "refusing to serve [metrics] on " + cfg.metrics_listen +
                                             ", a non-loopback address, without authentication: scrape the HTTP "
                                             "front's /metrics (TLS, a token), or set [security] insecure = true"};
  if (!cfg.http.listen.empty() && !cfg.security.insecure &&
      !security::is_loopback_endpoint("tcp://" + cfg.http.listen) && !(cfg.http.tls() && cfg.http.auth.enabled()))
    return error_info{errc::bad_request, "refusing to serve HTTP on " + cfg.http.listen +
                                             ", a non-loopback address, without TLS (tls_cert_file, tls_key_file) and "
                                             "callers that authenticate ([[http.token]] or [http.jwt]); docs/security.md. "
                                             "Or set [security] insecure = true on purpose"};
  for (const auto& r : cfg.remotes)
    for (const auto& ep : r.endpoints)
      if (auto keys = p->security->client_keys(ep); !keys)
        return error_info{keys.error().code, "[remote." + r.name + "]: " + keys.error().message};
  for (const auto& ep : cfg.register_with)
    if (auto keys = p->security->client_keys(ep); !keys)
      return error_info{keys.error().code, "[node] register_with: " + keys.error().message};
  p->io->set_security(p->security.get());
  auto internal = std::make_shared<std::unordered_set<std::string>>();
  for (const auto& d : catalog)
    for (const auto& [method, spec] : d.methods)
      if (spec.internal) internal->insert(d.name + "." + method);
  // `_cluster.*` (shard transfers between nodes) is for nodes only.
  auto is_internal = [internal](const envelope& h) {
    return h.service == "_cluster" || internal->count(h.service + "." + h.method) > 0;
  };
  p->io->set_internal_predicate(is_internal);

  // Validate the whole service list before anything starts.
  p->outbound.node = p.get();
  auto host = detail::service_host::create(cfg, catalog, cfg.isolation != "process", &p->outbound, p->tracer.get());
  if (!host) return host.error();
  p->host = std::move(*host);

  // Bind first: a taken port fails the start before any service runs.
  auto bind = [&](const std::string& ep, bool admin) -> std::optional<error_info> {
    try {
      auto bound = p->io->bind(ep, admin);
      (admin ? p->admin_endpoint : p->endpoints.emplace_back()) = bound;
      return std::nullopt;
    } catch (const zmq::error_t& e) {
      return error_info{errc::unavailable, "cannot listen on " + ep + ": " + e.what()};
    }
  };
  for (const auto& ep : cfg.listen)
    if (auto err = bind(ep, false)) return *err;
  if (!cfg.admin.empty())
    if (auto err = bind(cfg.admin, true)) return *err;
  if (!cfg.http.listen.empty()) {
    try {
      p->http = std::make_unique<detail::http_front>(
          cfg.http, cfg.limits, cfg.default_deadline, [self](detail::request_ptr r) { self->admit(std::move(r)); },
          [self] { return self->health_json(); }, is_internal,
          [self] { return self->not_ready(); }, [self] { return self->metrics->render(); }, self->tracer.get());
      p->http_endpoint = p->http->endpoint();
    } catch (const std::exception& e) {
      return error_info{errc::unavailable, "cannot listen on http " + cfg.http.listen + ": " + e.what()};
    }
  }

  p->actor_cfg = std::make_unique<caf::actor_system_config>();
  auto threads = cfg.scheduler_threads > 0
                     ? cfg.scheduler_threads
                     : std::max<std::size_t>(2, std::thread::hardware_concurrency() > 1 ? std::thread::hardware_concurrency() - 1 : 1);
  p->actor_cfg->set("scheduler.max-threads", threads);
  p->actor_cfg->set("logger.verbosity", caf::atom("quiet"));
  p->actor_cfg->set("scheduler.policy", cfg.scheduler_policy == "stealing" ? caf::atom("stealing") : caf::atom("sharing"));
  if (cfg.scheduler_policy == "affinity") scheduler::use_affinity_sharing(*p->actor_cfg);
  p->actors = std::make_unique<caf::actor_system>(*p->actor_cfg);

  for (const auto& r : cfg.remotes) {
    p->io->add_remote_service(r);
    p->remotes.insert(r.name);
  }
  // Retrying elsewhere is safe for idempotent methods and idempotency keys only.
  auto idempotent = std::make_shared<std::unordered_set<std::string>>();
  for (const auto& d : catalog)
    for (const auto& [method, spec] : d.methods)
      if (spec.idempotent) idempotent->insert(d.name + "." + method);
  p->io->set_retry_predicate([idempotent](const envelope& h) {
    return !h.idempotency_key.empty() || idempotent->count(h.service + "." + h.method) > 0;
  });

  if (cfg.cluster.enabled()) {
    if (cfg.isolation == "process")
      return error_info{errc::bad_request, "[cluster] needs isolation = \"none\": a shard's store must live in the node "
                                           "that hands it over (docs/cluster.md)"};
    if (p->endpoints.empty()) return error_info{errc::bad_request, "[cluster] needs a [node] listen endpoint"};
    // A keyless loopback listener makes every peer anonymous, members too:
    // their handoff calls (`_cluster`, nodes only) would be refused for good.
    if (!cfg.security.insecure && cfg.security.keyless_loopback && security::is_loopback_endpoint(p->endpoints.front()))
      return error_info{errc::bad_request,
                        "[cluster] on a loopback endpoint (" + p->endpoints.front() +
                            ") needs [security] keyless_loopback = false: members must reach each other with their "
                            "keys to hand shards over (docs/cluster.md)"};
    std::vector<std::string> sharded = cfg.cluster.services;
    if (sharded.empty())
      for (const auto& s : cfg.services)
        for (const auto& d : catalog)
          if (d.name == s.name && d.kind == service_kind::entities) sharded.push_back(s.name);
    std::vector<std::string> hosted;
    for (const auto& s : sharded)
      if (p->host->hosts(s)) hosted.push_back(s);
    p->cfg.cluster.services = sharded;
    for (const auto& d : catalog)
      if (!d.default_key.empty()) p->default_keys[d.name] = d.default_key;
    const auto advertised = cfg.cluster.advertise.empty() ? p->endpoints.front() : cfg.cluster.advertise;
    const bool curve = p->io->mode_of(p->endpoints.front()) == security::listener_mode::curve;
    std::vector<std::string> all_hosted;
    for (const auto& s : cfg.services) all_hosted.push_back(s.name);
    p->cluster = std::make_unique<cluster::cluster_agent>(cfg.cluster, cfg.name, advertised,
                                                          curve ? p->security->keys().public_key : std::string(),
                                                          sharded, hosted, all_hosted, cfg.data_dir, *p);
    for (const auto& s : hosted)
      p->host->set_serves(
          s, [agent = p->cluster.get(), s](std::string_view key) { return agent->serves(s, key); },
          [agent = p->cluster.get(), s](std::string_view key, std::uint64_t epoch) { return agent->admits(s, key, epoch); });
  }
  p->host->start(*p->actors);
  if (cfg.isolation == "process") {
    if (auto started = p->start_processes(); !started) return started.error();
  }
  // CAF 0.17 keeps a reference to the system's logger in a thread-local of every
  // thread that made or used the system, and its destructor waits for the
  // logger to die: drop this thread's reference so stop() works from any thread.
  caf::logger::set_current_actor_system(nullptr);
  auto out = std::unique_ptr<node>(new node(std::move(p)));
  node* raw = out.get();
  raw->impl_->admin = std::make_unique<admin_adapter>(*raw);
  raw->impl_->admin_worker = std::make_unique<detail::admin_worker>();
  raw->impl_->io->set_admin_handler([admin = raw->impl_->admin.get(), worker = raw->impl_->admin_worker.get()](
                                        detail::request_ptr r) { detail::handle_admin(*admin, *worker, std::move(r)); });
  if (!cfg.register_with.empty()) {
    std::vector<std::string> hosted;
    for (const auto& s : cfg.services) hosted.push_back(s.name);
    const auto& advertised = cfg.advertise.empty() ? raw->impl_->endpoints.front() : cfg.advertise;
    // A custom advertise address names the first listener as others see it.
    const bool curve = raw->impl_->io->mode_of(raw->impl_->endpoints.front()) == security::listener_mode::curve;
    raw->impl_->io->announce(cfg.register_with, advertised, hosted, cfg.heartbeat, curve);
  }
  raw->impl_->io->set_registration_timeout(cfg.heartbeat * 3);
  raw->impl_->owner = raw;
  raw->impl_->metrics->add_collector([self = raw->impl_.get()](observability::family_builder& b) { self->collect(b); });
  if (!cfg.metrics_listen.empty()) {
    try {
      raw->impl_->exposer = std::make_unique<prometheus::Exposer>(cfg.metrics_listen);
      raw->impl_->exposer->RegisterCollectable(raw->impl_->metrics->collectable());
    } catch (const std::exception& e) {
      return error_info{errc::unavailable, "cannot listen on [metrics] " + cfg.metrics_listen + ": " + e.what()};
    }
  }
  raw->impl_->io->start();
  if (raw->impl_->cluster) raw->impl_->cluster->start();
  if (raw->impl_->http) raw->impl_->http->start();
  return out;
}

const std::vector<std::string>& node::endpoints() const noexcept { return impl_->endpoints; }

const std::string& node::http_endpoint() const noexcept { return impl_->http_endpoint; }

const std::string& node::admin_endpoint() const noexcept { return impl_->admin_endpoint; }

std::vector<std::string> node::not_ready() const { return impl_->not_ready(); }

std::vector<observability::span> node::spans(const std::string& trace_id) const { return impl_->tracer->find(trace_id); }

observability::tracer_stats node::trace_stats() const { return impl_->tracer->stats(); }

std::vector<std::string> node::service_process_admins() const {
  std::vector<std::string> out;
  if (!impl_->processes) return out;
  for (const auto& s : impl_->cfg.services) out.push_back("ipc://" + impl_->runtime_dir + "/" + s.name + ".admin.sock");
  return out;
}

zmq::context_t& node::context() noexcept { return impl_->ctx; }

const std::string& node::name() const noexcept { return impl_->cfg.name; }

double node::uptime_s() const {
  return std::chrono::duration<double>(clock_type::now() - impl_->started).count();
}

std::vector<service_status> node::services() const {
  std::vector<service_status> out;
  out = impl_->host->status();
  if (impl_->processes)
    for (auto& s : impl_->processes->status()) out.push_back(std::move(s));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

node_metrics node::metrics() const {
  const auto& c = impl_->io->counters();
  return {c.requests.load(),
          c.rejected.load(),
          c.malformed_frames.load(),
          c.replies.load(),
          c.expired_in_transit.load(),
          c.refused.load(),
          c.refused_registrations.load(),
          impl_->security ? impl_->security->refused_connections() : 0};
}

std::vector<instance_status> node::registry() const {
  // The instance pools belong to the I/O thread: read them there.
  auto collect = [io = impl_->io.get()] {
    std::vector<instance_status> out;
    auto now = clock_type::now();
    for (const auto& [name, pool] : io->remote_services())
      for (const auto& i : pool.instances())
        out.push_back({name, i->endpoint, i->registered ? "heartbeat" : "config",
                       std::string(detail::to_string(i->state)), i->outstanding, i->requests, i->failures,
                       i->registered ? std::chrono::duration<double>(now - i->last_seen).count() : 0.0, i->retries,
                       pool.bulkhead_rejections,
                       i->last_success ? std::chrono::duration<double>(now - *i->last_success).count() : -1.0});
    return out;
  };
  if (impl_->io->on_io_thread()) return collect();
  auto answer = std::make_shared<std::promise<std::vector<instance_status>>>();
  auto result = answer->get_future();
  impl_->io->post([answer, collect] { answer->set_value(collect()); });
  if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) return {};
  return result.get();
}

result<bool> node::stop_service(const std::string& name) {
  if (impl_->processes) return impl_->processes->command(name, "stop");
  return impl_->host->stop_service(name);
}

result<bool> node::start_service(const std::string& name) {
  if (impl_->processes) return impl_->processes->command(name, "start");
  return impl_->host->start_service(name);
}

result<bool> node::restart_service(const std::string& name) {
  if (impl_->processes) return impl_->processes->command(name, "restart");
  return impl_->host->restart_service(name);
}

result<bool> node::command_child(const std::string& service, const std::string& child, const std::string& command) {
  return impl_->host->command_child(service, child, command);
}

result<store_stats> node::storage_stats(const std::string& service) const { return impl_->host->storage_stats(service); }

result<std::string> node::backup(const std::string& service, const std::string& name) {
  return impl_->host->backup(service, name);
}

result<bool> node::restore(const std::string& service, const std::string& name) {
  return impl_->host->restore(service, name);
}

bool node::forward_admin(const std::string& service, detail::request_ptr req) {
  if (!impl_->processes || !impl_->remotes.count(service)) return false;
  envelope h = req->header;
  h.service = "admin";
  auto deadline = req->deadline;
  auto payload = req->payload;
  auto inner = std::make_shared<detail::request>(
      std::move(h), std::move(payload), deadline, [req](const envelope& reply, payload_bytes&& p) {
        if (reply.kind == message_kind::error)
          req->fail(decode_error_payload(p, wire_limits{}));
        else
          req->respond(std::move(p));
      });
  impl_->io->forward_remote(impl::admin_route(service), std::move(inner));
  return true;
}

result<std::string> node::cluster_command(const std::string& verb, const std::string& args_json) {
  if (!impl_->cluster) return error_info{errc::unavailable, "node '" + name() + "' is not in a cluster (no [cluster])"};
  auto args = nlohmann::json::parse(args_json, nullptr, false);
  auto out = impl_->cluster->command(verb, args.is_object() ? args : nlohmann::json::object());
  if (!out) return out.error();
  return out->dump();
}

std::string node::cluster_status() const {
  return impl_->cluster ? impl_->cluster->status_json().dump() : std::string();
}

result<bool> node::verify_store(const std::string& service) { return impl_->host->verify_store(service); }

result<bool> node::flush_store(const std::string& service) { return impl_->host->flush_store(service); }

result<std::string> node::salvage_store(const std::string& service) { return impl_->host->salvage_store(service); }

void node::stop() {
  auto& p = *impl_;
  if (p.stopped.exchange(true)) return;
  p.draining = true;
  p.exposer.reset();  // its scrapes read the services
  // Every accepted request gets its answer: those hosted here and those
  // forwarded to remote instances, whose replies come back through the I/O
  // thread (still running), until the drain timeout.
  auto in_flight = [&p] { return p.host->in_flight() + p.io->forwarded_in_flight(); };
  auto until = clock_type::now() + p.cfg.drain_timeout;
  while (in_flight() > 0 && clock_type::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (auto left = in_flight(); left > 0) {
    log::get("node")->warn("drain timeout: {} request(s) still in flight are answered 'unavailable'", left);
    // Answered now, not when their handlers end (a blocking one may run on).
    const error_info why{errc::unavailable, "node is shutting down: its drain timeout of " +
                                                std::to_string(p.cfg.drain_timeout.count()) +
                                                " ms passed before this request was answered"};
    p.host->fail_in_flight(why);
    p.io->fail_forwarded(why);
  }
  // Leaving the cluster: the lease goes (its shards are unavailable until it
  // returns: a planned leave drains first), held requests are answered.
  if (p.cluster) {
    p.cluster->stop();
    std::lock_guard<std::mutex> guard(p.held_mutex);
    for (auto& [req, since] : p.held) req->fail({errc::unavailable, "node '" + p.cfg.name + "' is shutting down"});
    p.held.clear();
  }
  // Operator verbs still queued run first (they use the services).
  p.admin_worker.reset();
  // Child processes drain on SIGTERM; their replies still pass our I/O thread.
  if (p.processes) p.processes->stop();
  p.host->shutdown();
  p.actors->await_all_actors_done();
  p.io->stop();  // sends the replies the actors produced while stopping
  // The services' published handles (workers, roots) go before the actor
  // system, and their blocking pools' threads end (the system waits for
  // them, as for detached actors' threads). This also closes the stores.
  p.host->close();
  p.actors.reset();
  // Last: replies to HTTP requests still post to the front's thread until here.
  if (p.http) p.http->stop();
  p.http.reset();
  if (!p.runtime_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(p.runtime_dir, ec);
  }
}

}  // namespace cohort
