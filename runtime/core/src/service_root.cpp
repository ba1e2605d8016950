// The root actor of a service: supervises its workers (strategy, intensity and
// backoff from the service's config; see supervision.hpp) or its entity actors
// (simple_one_for_one: a crashed entity is re-activated from its store by its
// next message), routes requests to them, and carries out operator commands.
#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "cohort/log/log.hpp"
#include <spdlog/spdlog.h>

#include "cohort/core/actor_messages.hpp"
#include "cohort/runtime/supervision.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "cohort/core/outbox.hpp"
#include "cohort/core/event_hub.hpp"
#include "cohort/core/reminders.hpp"

namespace cohort::detail {

namespace {

using clock_type = std::chrono::steady_clock;
/// The root tells the next few entities to stop or passivate (see `to_stop`).
using tell_some_atom = caf::atom_constant<caf::atom("tellsome")>;
/// The root to itself: ask the entities idle for entity_hibernate_after to hibernate.
using hibernate_sweep_atom = caf::atom_constant<caf::atom("hibsweep")>;

/// Entity failures kept for the operator (most recent keys).
constexpr std::size_t kept_entity_failures = 20;
// Live entities listed in the tree: a sample, so a million of them cost nothing.
constexpr std::size_t shown_live_entities = 20;

struct worker_child {
  std::string id;
  caf::actor actor;  ///< empty when not running
  std::shared_ptr<handler_activity> activity;
  bool running = false;
  bool restarting = false;        ///< waiting out a backoff delay
  bool operator_stopped = false;  ///< stopped by the operator: not restarted
  std::uint64_t restarts = 0;
  std::string last_failure;
  /// When the last incarnation failed (steady ns), until its replacement starts: restart latency.
  std::int64_t failed_at_ns = 0;
};

struct service_root_state {
  struct entity_entry {
    caf::actor actor;         ///< empty while hibernated
    hibernated_ptr parked;    ///< the state of a hibernated entity
    std::uint64_t sent = 0;   ///< requests sent to `actor`
    clock_type::time_point last_used;
  };
  std::unique_ptr<supervision_plan> plan;
  std::vector<worker_child> workers;
  std::unordered_map<caf::actor_addr, std::size_t> worker_at;
  std::size_t next_worker = 0;
  std::unordered_map<std::string, entity_entry> entities;
  /// Entity actor -> its key in `entities` (nodes of an unordered_map do not move).
  std::unordered_map<caf::actor_id, const std::string*> entity_keys;
  std::vector<child_status> entity_failures;
  caf::actor relay;  ///< the outbox relay, when the service publishes events someone consumes
  caf::actor reminders;  ///< the reminder scheduler, when the service has an on_reminder handler
  caf::actor hub;  ///< the event hub, when the service keeps an event log for client subscriptions
  std::uint64_t relay_restarts = 0;
  std::string relay_failure;
  /// Pending entities with a resume call in flight (not resumed twice at once).
  std::unordered_set<std::string> resuming;
  /// Recent crashes per entity key, and the keys in quarantine.
  struct key_crashes {
    std::vector<clock_type::time_point> times;  ///< within the quarantine window, at most quarantine_after
    std::optional<clock_type::time_point> quarantined_until;
    std::string last_failure;
  };
  std::unordered_map<std::string, key_crashes> crashes;
  bool resume_scanning = false;  ///< a scan of pending entities is out on the store's reader thread
  /// Entity actors let go (their shard left) still to be told to stop, and
  /// idle ones still to be asked to passivate: told a few at a time, so that
  /// the service's requests are routed in between (telling 15 000 at once
  /// held every request of the service for 100-200 ms).
  std::vector<caf::actor> to_stop, to_passivate, to_hibernate;
  std::int64_t hibernated = 0;  ///< entries in `entities` that are hibernated
  bool telling = false;  ///< a tell_some message is on its way
  bool view_pending = false;  ///< a publish_view message is on its way
  static inline const char* name = "cohort.service";
};

using root_actor = caf::stateful_actor<service_root_state>;
using resume_found_atom = caf::atom_constant<caf::atom("resfound")>;

std::string reason_text(const caf::error& reason, const service_runtime& svc) {
  // The actor's own words first: a crash quits with its text in the exit
  // reason. The service's last recorded failure is one slot for all its
  // actors: another entity may have crashed since (seen: poison-0's
  // quarantine quoting poison-1's crash).
  const auto& context = reason.context();
  if (context.match_elements<std::string>() && !context.get_as<std::string>(0).empty())
    return context.get_as<std::string>(0);
  auto recorded = svc.last_failure();
  return recorded.empty() ? caf::to_string(reason) : recorded;
}

/// The running workers, as the router reads them.
void publish_routing(root_actor* self, service_runtime& svc) {
  std::vector<caf::actor> running;
  running.reserve(self->state.workers.size());
  for (const auto& w : self->state.workers)
    if (w.running) running.push_back(w.actor);
  svc.publish_workers(std::move(running));
}

/// The operator's view (children, the watchdog's activities) and the routing table.
void publish(root_actor* self, service_runtime& svc) {
  auto& st = self->state;
  std::vector<child_status> out;
  std::vector<std::pair<std::string, std::shared_ptr<handler_activity>>> activities;
  for (const auto& w : st.workers) {
    out.push_back({w.id, "worker", std::string(to_string(svc.cfg.worker_restart)),
                   w.running ? "running" : (w.restarting ? "restarting" : "stopped"), w.restarts, w.last_failure});
    if (w.running) activities.emplace_back(w.id, w.activity);
  }
  std::vector<std::pair<const std::string*, bool>> live;  // key, hibernated
  for (const auto& [key, e] : st.entities) {
    if (live.size() == shown_live_entities) break;
    live.emplace_back(&key, !e.actor);
  }
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  for (const auto& [key, hibernated] : live)
    out.push_back({"entity/" + *key, "entity", std::string(to_string(restart_type::transient)),
                   hibernated ? "hibernated" : "running", 0, ""});
  if (st.entities.size() > live.size())
    out.push_back({"entity/...", "entity", std::string(to_string(restart_type::transient)), "running", 0,
                   std::to_string(st.entities.size() - live.size()) + " more not listed"});
  for (const auto& [key, c] : st.crashes)
    if (c.quarantined_until && clock_type::now() < *c.quarantined_until)
      out.push_back({"entity/" + key, "entity", std::string(to_string(restart_type::transient)), "quarantined",
                     svc.cfg.quarantine_after, c.last_failure});
  for (const auto& f : st.entity_failures) out.push_back(f);
  if (!svc.subscribers.empty())
    out.push_back({"outbox", "relay", std::string(to_string(restart_type::permanent)), st.relay ? "running" : "stopped",
                   st.relay_restarts, st.relay_failure});
  svc.publish_children(std::move(out));
  svc.publish_activities(std::move(activities));
  publish_routing(self, svc);
}

/// After a restart: the routing table at once, the operator's view a moment
/// later, coalesced. Building the view copies every child's row; done inline
/// it held the replacement back on this thread (restart p50 58 -> 192 us
/// from 1 to 1024 workers) and cost a crash loop a view per crash.
void publish_after_restart(root_actor* self, service_runtime& svc) {
  publish_routing(self, svc);
  auto& st = self->state;
  if (st.view_pending) return;
  st.view_pending = true;
  self->delayed_send(self, std::chrono::milliseconds(1), publish_view_atom::value);
}

/// Starts worker `i`. True when it replaces a failed one: the caller then
/// sends it `restarted` (its first message, which times the restart) once
/// the routing table has it, so that a timed restart is a routable one.
bool start_worker(root_actor* self, const std::shared_ptr<service_runtime>& svc, std::size_t i) {
  auto& w = self->state.workers[i];
  w.activity = std::make_shared<handler_activity>();
  // A replacement times itself: failure -> its first message, sent here before
  // any request can reach it (restart latency, as OTP's supervisor benchmarks time it).
  const auto failed_at = std::exchange(w.failed_at_ns, 0);
  w.activity->replaces_failure_at_ns.store(failed_at, std::memory_order_relaxed);
  w.actor = spawn_worker(self, svc, w.activity);
  w.running = true;
  w.restarting = false;
  self->state.worker_at[w.actor.address()] = i;
  self->state.plan->started(i, clock_type::now());
  return failed_at != 0;
}

/// A replacement's first message: the restart is done (restart latency, failure to here).
void announce_restart(root_actor* self, std::size_t i) {
  self->send(self->state.workers[i].actor, restarted_atom::value);
}

/// Stops a worker now; its later down message is ignored (it is no longer indexed).
void stop_worker(root_actor* self, std::size_t i) {
  auto& w = self->state.workers[i];
  if (!w.running) return;
  self->state.worker_at.erase(w.actor.address());
  self->send_exit(w.actor, caf::exit_reason::user_shutdown);
  w.actor = nullptr;
  w.running = false;
}

/// Hibernated entities gained (+1) or dropped or woken (-1): the operator's gauge.
void count_hibernated(root_actor* self, service_runtime& svc, std::int64_t delta) {
  self->state.hibernated += delta;
  svc.hibernated_entities.store(self->state.hibernated, std::memory_order_relaxed);
}

/// Ends every entity: actors told to exit, hibernated states dropped (and uncounted).
void end_entities(root_actor* self, service_runtime& svc, const caf::error& reason) {
  auto& st = self->state;
  for (auto& [key, e] : st.entities)
    if (e.actor) self->send_exit(e.actor, reason);
  st.entities.clear();
  st.entity_keys.clear();
  count_hibernated(self, svc, -st.hibernated);
}

void give_up(root_actor* self, service_runtime& svc, const std::string& why) {
  auto& st = self->state;
  for (std::size_t i = st.workers.size(); i-- > 0;) stop_worker(self, i);
  end_entities(self, svc, caf::exit_reason::user_shutdown);
  if (st.relay) self->send_exit(st.relay, caf::exit_reason::user_shutdown);
  st.relay = nullptr;
  if (st.reminders) self->send_exit(st.reminders, caf::exit_reason::user_shutdown);
  st.reminders = nullptr;
  auto reason = svc.store_damaged ? "store_corrupt: " + why + " (the service stays down: docs/storage.md, Faults)" :
                "restart intensity exceeded (more than " + std::to_string(svc.cfg.supervision.intensity.max_restarts) +
                " restarts in " + std::to_string(svc.cfg.supervision.intensity.period.count()) +
                " ms); last failure: " + why;
  svc.mark_down(reason);
  publish(self, svc);
  self->quit(caf::make_error(caf::sec::runtime_error, reason));
}

void on_worker_down(root_actor* self, const std::shared_ptr<service_runtime>& svc, std::size_t i,
                    const caf::error& reason) {
  auto& st = self->state;
  auto& w = st.workers[i];
  st.worker_at.erase(w.actor.address());
  w.actor = nullptr;
  w.running = false;
  const bool abnormal = static_cast<bool>(reason);
  if (abnormal) {
    w.last_failure = reason_text(reason, *svc);
    // The worker stamps its own failure; one killed from outside is stamped now.
    auto failed = w.activity ? w.activity->failed_at_ns.load(std::memory_order_relaxed) : 0;
    w.failed_at_ns = failed != 0 ? failed : clock_type::now().time_since_epoch().count();
  }
  std::vector<bool> running;
  for (const auto& c : st.workers) running.push_back(c.running);
  auto decision = st.plan->on_exit(i, abnormal, running, clock_type::now());
  if (decision.give_up) return give_up(self, *svc, w.last_failure);
  for (auto j : decision.stop) stop_worker(self, j);
  std::vector<std::size_t> replaced;
  for (auto j : decision.start) {
    st.workers[j].restarts++;
    if (decision.delay.count() > 0) {
      st.workers[j].restarting = true;
      self->delayed_send(self, decision.delay, start_child_atom::value, static_cast<std::uint64_t>(j));
    } else if (start_worker(self, svc, j)) {
      replaced.push_back(j);
    }
  }
  publish_after_restart(self, *svc);
  for (auto j : replaced) announce_restart(self, j);
  // Counted once the replacements are routed: whoever sees the count go up
  // (an operator, a test) reaches the new worker, not the one that failed.
  if (!decision.start.empty()) svc->restarts++;
}

/// Keys with crash records kept at most (the oldest records go first).
constexpr std::size_t max_tracked_keys = 4096;

void note_crash(root_actor* self, service_runtime& svc, const std::string& key, const std::string& why) {
  auto& st = self->state;
  const auto& cfg = svc.cfg;
  if (cfg.quarantine_after == 0) return;
  auto now = clock_type::now();
  if (st.crashes.size() >= max_tracked_keys && !st.crashes.count(key)) {
    // Forget keys whose crashes are out of the window, then any one not in quarantine.
    for (auto it = st.crashes.begin(); it != st.crashes.end();)
      if (!it->second.quarantined_until && (it->second.times.empty() || now - it->second.times.back() > cfg.quarantine_window))
        it = st.crashes.erase(it);
      else
        ++it;
    if (st.crashes.size() >= max_tracked_keys)
      for (auto it = st.crashes.begin(); it != st.crashes.end(); ++it)
        if (!it->second.quarantined_until) {
          st.crashes.erase(it);
          break;
        }
    if (st.crashes.size() >= max_tracked_keys) return;  // every tracked key is in quarantine
  }
  auto& c = st.crashes[key];
  c.times.erase(std::remove_if(c.times.begin(), c.times.end(),
                               [&](auto t) { return now - t > cfg.quarantine_window; }),
                c.times.end());
  c.times.push_back(now);
  c.last_failure = why;
  if (c.times.size() < cfg.quarantine_after) return;
  c.times.clear();
  c.quarantined_until = now + cfg.quarantine_for;
  svc.quarantines++;
  auto what = "entity " + svc.def.name + "/" + key + " crashed " + std::to_string(cfg.quarantine_after) +
              " times within " + std::to_string(cfg.quarantine_window.count()) + " ms: quarantined for " +
              std::to_string(cfg.quarantine_for.count()) + " ms (release: cohortctl restart " + svc.def.name +
              "/entity/" + key + "); last failure: " + why;
  log::get("supervision")->warn("{}", what);
  svc.record_failure(what);
}

/// The quarantine of `key`, if it is in force (an expired one is lifted here).
const service_root_state::key_crashes* quarantine_of(root_actor* self, const std::string& key) {
  auto& st = self->state;
  auto it = st.crashes.find(key);
  if (it == st.crashes.end() || !it->second.quarantined_until) return nullptr;
  if (clock_type::now() >= *it->second.quarantined_until) {
    st.crashes.erase(it);
    return nullptr;
  }
  return &it->second;
}

void on_entity_down(root_actor* self, const std::shared_ptr<service_runtime>& svc, const caf::actor_addr& who,
                    const caf::error& reason) {
  auto& st = self->state;
  auto k = st.entity_keys.find(who.id());
  if (k == st.entity_keys.end()) return;
  auto key = *k->second;
  st.entity_keys.erase(k);
  auto e = st.entities.find(key);
  if (e != st.entities.end() && e->second.actor.address() == who) st.entities.erase(e);
  if (!reason) {  // passivated
    if (st.entities.size() < shown_live_entities) publish(self, *svc);
    return;
  }
  // A damaged store takes the service down now: restarting entities into it
  // would only crash them again until the intensity runs out.
  if (svc->store_damaged) return give_up(self, *svc, reason_text(reason, *svc));
  // A crashed entity comes back from its store on its next message; the
  // crash still counts against the service's restart intensity. A key that
  // keeps crashing is quarantined instead of taking the service down.
  svc->restarts++;
  if (reason != caf::exit_reason::kill) note_crash(self, *svc, key, reason_text(reason, *svc));
  child_status failed{"entity/" + key, "entity", std::string(to_string(restart_type::transient)), "crashed", 1,
                      reason_text(reason, *svc)};
  st.entity_failures.insert(st.entity_failures.begin(), failed);
  if (st.entity_failures.size() > kept_entity_failures) st.entity_failures.pop_back();
  auto decision = st.plan->on_exit(0, true, {}, clock_type::now());
  if (decision.give_up) return give_up(self, *svc, failed.last_failure);
  publish(self, *svc);
}

/// Schedules the next few of `to_stop`, `to_passivate` and `to_hibernate`, if any are left.
void tell_soon(root_actor* self) {
  auto& s = self->state;
  if (s.telling || (s.to_stop.empty() && s.to_passivate.empty() && s.to_hibernate.empty())) return;
  s.telling = true;
  self->send(self, tell_some_atom::value);
}

caf::actor activate(root_actor* self, const std::shared_ptr<service_runtime>& svc, const std::string& key) {
  auto& st = self->state;
  auto it = st.entities.find(key);
  if (it != st.entities.end()) {
    auto& e = it->second;
    if (e.actor) return e.actor;
    // Hibernated: woken on a fresh actor with the state it kept; no store read.
    e.actor = spawn_entity(self, svc, key, std::move(e.parked));
    e.parked = nullptr;
    e.sent = 0;
    st.entity_keys.emplace(e.actor.id(), &it->first);
    count_hibernated(self, *svc, -1);
    return e.actor;
  }
  auto a = spawn_entity(self, svc, key);
  auto it2 = st.entities.emplace(key, service_root_state::entity_entry{a, nullptr, 0, clock_type::now()}).first;
  st.entity_keys.emplace(a.id(), &it2->first);
  if (st.entities.size() <= shown_live_entities) publish(self, *svc);  // beyond the sample, the sweep refreshes it
  return a;
}

void route_request(root_actor* self, const std::shared_ptr<service_runtime>& svc, request_ptr& req) {
  auto& st = self->state;
  if (svc->def.kind == service_kind::workers) {
    for (std::size_t tries = 0; tries < st.workers.size(); ++tries) {
      auto& w = st.workers[st.next_worker++ % st.workers.size()];
      if (w.running) {
        self->send(w.actor, std::move(req));
        return;
      }
    }
    req->fail({errc::unavailable, "no worker of '" + svc->def.name + "' is running (restarting or stopped)"});
    return;
  }
  if (req->header.key.empty() && !svc->def.default_key.empty()) req->header.key = svc->def.default_key;
  if (req->header.key.empty()) {
    req->fail({errc::bad_request, "service '" + svc->def.name + "' is an entity service: set 'key'"});
    return;
  }
  if (!svc->admits_key(req->header.key, req->header.epoch)) {  // a cluster's shard not served here: never activated
    req->fail({errc::unavailable, "entity " + svc->def.name + "/" + req->header.key +
                                      " is not served by this node now (its shard is moving, owned elsewhere, or this "
                                      "node's cluster lease could not be renewed)"});
    return;
  }
  if (const auto* q = quarantine_of(self, req->header.key)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*q->quarantined_until - clock_type::now());
    req->fail({errc::entity_quarantined, "entity " + svc->def.name + "/" + req->header.key +
                                             " is quarantined for " + std::to_string(left.count()) +
                                             " ms more after repeated crashes; last failure: " + q->last_failure});
    return;
  }
  if (st.entities.size() >= svc->cfg.max_live_entities && !st.entities.count(req->header.key)) {
    req->fail({errc::overloaded, "service '" + svc->def.name + "' has " + std::to_string(st.entities.size()) +
                                     " live entities (max_live_entities); retry once idle ones are passivated"});
    return;
  }
  activate(self, svc, req->header.key);
  auto& entry = st.entities[req->header.key];
  entry.sent++;
  entry.last_used = clock_type::now();
  self->send(entry.actor, std::move(req));
}

/// Asks the store's reader thread for the entities marked pending that have
/// no resume call in flight yet (at most 1024 a round); resume_found() calls them.
void resume_pending(root_actor* self, const std::shared_ptr<service_runtime>& svc) {
  auto& st = self->state;
  if (st.resume_scanning) return;
  st.resume_scanning = true;
  auto skip = std::make_shared<const std::unordered_set<std::string>>(st.resuming);
  svc->db->read_after_writes([me = caf::actor_cast<caf::actor>(self), skip, svc](const store& db) {
    auto found = std::make_shared<scanned_records>();
    std::int64_t seen = 0;
    auto scanned = db.scan(keyspace::pending, "", "", [&](std::string_view k, std::string_view traceparent) {
      seen++;
      if (!skip->count(std::string(k))) found->records.emplace_back(std::string(k), std::string(traceparent));
      return found->records.size() < 1024;  // the rest next round
    });
    if (!scanned) found->error = scanned.error();
    else svc->pending_entities.store(seen, std::memory_order_relaxed);
    caf::anon_send(me, resume_found_atom::value, scanned_ptr(std::move(found)));
  });
}

void resume_found(root_actor* self, const std::shared_ptr<service_runtime>& svc, const scanned_records& found) {
  auto& st = self->state;
  st.resume_scanning = false;
  if (found.error) return svc->record_failure("scan of pending entities failed: " + found.error->message);
  std::vector<std::pair<std::string, std::string>> keys;  // key, traceparent of the work it resumes
  for (const auto& [k, traceparent] : found.records)
    if (!st.resuming.count(k)) keys.emplace_back(k, traceparent);
  // Long enough for a saga's remaining steps; the caller is the runtime itself.
  const auto deadline = std::chrono::milliseconds(30000);
  for (const auto& entry : keys) {
    const std::string& key = entry.first;
    const std::string& traceparent = entry.second;
    st.resuming.insert(key);
    svc->resumes++;
    envelope h;
    h.kind = message_kind::request;
    h.service = svc->def.name;
    h.method = svc->def.resume_method;
    h.key = key;
    h.traceparent = traceparent;  // the trace of the request that began the work, when it was traced
    h.deadline_ms = static_cast<std::uint32_t>(deadline.count());
    auto me = caf::actor_cast<caf::actor>(self);
    auto req = std::make_shared<request>(std::move(h), pack(msgpack::type::nil_t()), std::chrono::steady_clock::now() + deadline,
                                         [me, key](const envelope&, payload_bytes&&) {
                                           caf::anon_send(me, resume_done_atom::value, key);
                                         });
    begin_span(*req, svc->tracer, observability::span_kind::server);  // the resume's own span in that trace
    if (req->header.trace.empty()) req->header.trace = "resume/" + key;
    route_request(self, svc, req);
  }
}

void run_command(root_actor* self, const std::shared_ptr<service_runtime>& svc, child_command cmd,
                 const std::string& id) {
  auto& st = self->state;
  if (id.rfind("entity/", 0) == 0) {
    auto key = id.substr(7);
    auto it = st.entities.find(key);
    // An operator who starts or restarts an entity releases its quarantine.
    if (cmd == child_command::start || cmd == child_command::restart) {
      if (st.crashes.erase(key)) publish(self, *svc);
    }
    switch (cmd) {
      case child_command::start: activate(self, svc, key); break;
      case child_command::crash:
        self->send(activate(self, svc, key), crash_atom::value);
        break;
      default:  // stop, restart, replace: the entity is re-activated (from its store) by its next message
        if (it != st.entities.end()) {
          if (it->second.actor) {
            st.entity_keys.erase(it->second.actor.id());
            self->send_exit(it->second.actor, caf::exit_reason::user_shutdown);
          } else {
            count_hibernated(self, *svc, -1);
          }
          st.entities.erase(it);
        }
        if (cmd == child_command::restart) activate(self, svc, key);
    }
    return;
  }
  for (std::size_t i = 0; i < st.workers.size(); ++i) {
    auto& w = st.workers[i];
    if (w.id != id) continue;
    bool replaced = false;  // it replaces a failed one (waiting out a backoff): timed once routed
    switch (cmd) {
      case child_command::restart:
      case child_command::replace_stuck:
        stop_worker(self, i);
        w.operator_stopped = false;
        w.restarts++;
        replaced = start_worker(self, svc, i);
        break;
      case child_command::stop:
        stop_worker(self, i);
        w.operator_stopped = true;
        break;
      case child_command::start:
        if (!w.running) replaced = start_worker(self, svc, i);
        w.operator_stopped = false;
        break;
      case child_command::crash:
        if (w.running) self->send(w.actor, crash_atom::value);
        break;
    }
    publish(self, *svc);
    if (replaced) announce_restart(self, i);
    return;
  }
}

caf::behavior service_root(root_actor* self, std::shared_ptr<service_runtime> svc) {
  auto& st = self->state;
  const bool entities = svc->def.kind == service_kind::entities;
  auto policy = svc->cfg.supervision;
  std::vector<child_spec> specs;
  if (entities) {
    policy.strategy = restart_strategy::simple_one_for_one;
    specs.push_back({"entity", restart_type::transient});
  } else {
    for (std::size_t i = 0; i < svc->cfg.workers; ++i)
      specs.push_back({"worker-" + std::to_string(i + 1), svc->cfg.worker_restart});
  }
  st.plan = std::make_unique<supervision_plan>(policy, specs);
  if (!entities) {
    for (const auto& s : specs) {
      worker_child child;
      child.id = s.id;
      st.workers.push_back(std::move(child));
    }
    for (std::size_t i = 0; i < st.workers.size(); ++i) (void)start_worker(self, svc, i);
  }
  if (entities && svc->cfg.events.enabled) st.hub = spawn_event_hub(self, svc);
  if (entities && (!svc->subscribers.empty() || svc->cfg.events.enabled)) st.relay = spawn_outbox_relay(self, svc);
  if (entities && svc->def.reminders) st.reminders = spawn_reminder_scheduler(self, svc);
  if (entities && svc->def.pending) self->send(self, resume_atom::value);
  publish(self, *svc);
  // Passivation: one sweep over the table instead of a timer per entity.
  const auto sweep_every = std::max<std::chrono::milliseconds>(svc->cfg.entity_idle / 4, std::chrono::milliseconds(5));
  if (entities) self->delayed_send(self, sweep_every, sweep_atom::value);
  // Hibernation: a sweep over the entities that have an actor.
  const auto hibernate_every =
      std::max<std::chrono::milliseconds>(svc->cfg.entity_hibernate_after / 2, std::chrono::milliseconds(5));
  if (entities && svc->cfg.entity_hibernate_after.count() > 0)
    self->delayed_send(self, hibernate_every, hibernate_sweep_atom::value);

  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state;
    if (s.relay && dm.source == s.relay.address()) {
      // The relay keeps nothing that is not in the store: a fresh one carries on.
      s.relay_failure = reason_text(dm.reason, *svc);
      s.relay_restarts++;
      svc->restarts++;
      s.relay = spawn_outbox_relay(self, svc);
      return publish(self, *svc);
    }
    if (s.hub && dm.source == s.hub.address()) {
      // Its subscribers were told (or lost their connection); the log and
      // the durable cursors are in the store: a fresh hub carries on.
      svc->record_failure("event hub: " + reason_text(dm.reason, *svc));
      svc->restarts++;
      svc->set_event_hub(nullptr);
      s.hub = spawn_event_hub(self, svc);
      return;
    }
    if (s.reminders && dm.source == s.reminders.address()) {
      // Like the relay: everything it needs is in the store.
      svc->record_failure("reminder scheduler: " + reason_text(dm.reason, *svc));
      svc->restarts++;
      s.reminders = spawn_reminder_scheduler(self, svc);
      return;
    }
    if (entities) return on_entity_down(self, svc, dm.source, dm.reason);
    auto it = self->state.worker_at.find(dm.source);
    if (it != self->state.worker_at.end()) on_worker_down(self, svc, it->second, dm.reason);
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    auto& s = self->state;
    for (std::size_t i = s.workers.size(); i-- > 0;) stop_worker(self, i);
    end_entities(self, *svc, em.reason);
    if (s.relay) self->send_exit(s.relay, em.reason);
    s.relay = nullptr;
    if (s.reminders) self->send_exit(s.reminders, em.reason);
    s.reminders = nullptr;
    if (s.hub) self->send_exit(s.hub, em.reason);
    s.hub = nullptr;
    svc->set_event_hub(nullptr);
    self->quit(em.reason);
  });

  return {
      [=](request_ptr& req) { route_request(self, svc, req); },
      [=](passivate_atom, const std::string& key, std::uint64_t processed) {
        auto& s = self->state;
        auto it = s.entities.find(key);
        // Only when the entity has seen everything we sent may it go quietly.
        if (it == s.entities.end() || it->second.sent != processed ||
            it->second.actor != caf::actor_cast<caf::actor>(self->current_sender()))
          return;
        self->send(it->second.actor, passivate_ok_atom::value);
        s.entity_keys.erase(it->second.actor.id());
        s.entities.erase(it);
        if (s.entities.size() < shown_live_entities) publish(self, *svc);
      },
      [=](release_atom) {
        auto& s = self->state;
        for (auto it = s.entities.begin(); it != s.entities.end();) {
          // Kept while requests admitted before a handoff may still run on them.
          if (svc->admits ? svc->admits(it->first, 0) : svc->serves_key(it->first)) {
            ++it;
            continue;
          }
          // Its shard left (or is leaving): its cached state must not outlive
          // the move. Out of the map now (no request reaches it again; a later
          // one activates a fresh copy from the store), told to stop soon; a
          // hibernated one's state is dropped now.
          if (it->second.actor) {
            s.entity_keys.erase(it->second.actor.id());
            s.to_stop.push_back(std::move(it->second.actor));
          } else {
            count_hibernated(self, *svc, -1);
          }
          it = s.entities.erase(it);
        }
        tell_soon(self);
        publish(self, *svc);
      },
      [=](hibernate_sweep_atom) {
        // Only entities with an actor are looked at (entity_keys), so a
        // million hibernated ones cost this sweep nothing.
        auto& s = self->state;
        const auto idle_since = clock_type::now() - svc->cfg.entity_hibernate_after;
        if (s.to_hibernate.empty())
          for (const auto& [id, key] : s.entity_keys) {
            auto it = s.entities.find(*key);
            if (it != s.entities.end() && it->second.actor && it->second.actor.id() == id &&
                it->second.last_used <= idle_since)
              s.to_hibernate.push_back(it->second.actor);
          }
        tell_soon(self);
        self->delayed_send(self, hibernate_every, hibernate_sweep_atom::value);
      },
      [=](hibernate_atom, const std::string& key, std::uint64_t processed, const hibernated_ptr& state) {
        // An idle entity offers its state. Taken only if everything sent to
        // it was processed (then nothing is in its mailbox and the next
        // request wakes the state on a fresh actor), and if it is still idle:
        // one asked just before new traffic keeps its actor.
        auto& s = self->state;
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        auto it = s.entities.find(key);
        if (!sender) return;
        if (it == s.entities.end() || it->second.actor != sender || it->second.sent != processed ||
            it->second.last_used > clock_type::now() - svc->cfg.entity_hibernate_after)
          return self->send(sender, hibernate_no_atom::value);
        s.entity_keys.erase(sender.id());
        it->second.actor = nullptr;
        it->second.parked = state;
        count_hibernated(self, *svc, +1);
        self->send(sender, hibernate_ok_atom::value);
        if (s.entities.size() <= shown_live_entities) publish(self, *svc);
      },
      [=](tell_some_atom) {
        auto& s = self->state;
        for (int i = 0; i < 128 && !(s.to_stop.empty() && s.to_passivate.empty() && s.to_hibernate.empty()); ++i) {
          if (!s.to_stop.empty()) {
            self->send_exit(s.to_stop.back(), caf::exit_reason::user_shutdown);
            s.to_stop.pop_back();
          } else if (!s.to_passivate.empty()) {
            self->send(s.to_passivate.back(), passivate_atom::value);
            s.to_passivate.pop_back();
          } else {
            self->send(s.to_hibernate.back(), hibernate_atom::value);
            s.to_hibernate.pop_back();
          }
        }
        s.telling = false;
        tell_soon(self);  // after the requests queued meanwhile
      },
      [=](publish_view_atom) {
        self->state.view_pending = false;
        publish(self, *svc);
      },
      [=](sweep_atom) {
        auto idle_since = clock_type::now() - svc->cfg.entity_idle;
        // Asked a few at a time (tell_some); a sweep while the last one's are
        // still being asked adds none (they would be asked twice).
        auto& s = self->state;
        const bool ask = s.to_passivate.empty();
        for (auto it = s.entities.begin(); it != s.entities.end();) {
          auto& e = it->second;
          if (e.last_used > idle_since) {
            ++it;
          } else if (e.actor) {
            if (ask) s.to_passivate.push_back(e.actor);
            ++it;
          } else {
            // Hibernated: settled when it hibernated (nothing pending, every
            // write durable), so its state just goes.
            svc->passivations++;
            count_hibernated(self, *svc, -1);
            it = s.entities.erase(it);
          }
        }
        tell_soon(self);
        publish(self, *svc);
        self->delayed_send(self, sweep_every, sweep_atom::value);
      },
      [=](resume_atom) {
        resume_pending(self, svc);
        self->delayed_send(self, svc->cfg.resume_every, resume_atom::value);
      },
      [=](resume_done_atom, const std::string& key) { self->state.resuming.erase(key); },
      [=](resume_found_atom, const scanned_ptr& found) { resume_found(self, svc, *found); },
      [=](start_child_atom, std::uint64_t i) {
        auto& w = self->state.workers.at(i);
        const bool replaced = !w.running && !w.operator_stopped && start_worker(self, svc, i);
        w.restarting = false;
        publish(self, *svc);
        if (replaced) announce_restart(self, i);
      },
      [=](command_atom, std::int32_t cmd, const std::string& id) {
        run_command(self, svc, static_cast<child_command>(cmd), id);
      },
  };
}

}  // namespace

void service_runtime::record_failure(std::string reason) {
  std::lock_guard<std::mutex> guard(mutex_);
  last_failure_ = std::move(reason);
}

std::string service_runtime::last_failure() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return last_failure_;
}

caf::actor service_runtime::root() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return root_;
}

void service_runtime::set_root(caf::actor root) {
  std::lock_guard<std::mutex> guard(mutex_);
  root_ = std::move(root);
  down_ = false;
  down_reason_.clear();
}

void service_runtime::mark_down(std::string reason) {
  publish_workers({});
  std::lock_guard<std::mutex> guard(mutex_);
  down_ = true;
  down_reason_ = std::move(reason);
  root_ = nullptr;
}

bool service_runtime::down(std::string* reason) const {
  std::lock_guard<std::mutex> guard(mutex_);
  if (reason) *reason = down_reason_;
  return down_;
}

void service_runtime::publish_children(std::vector<child_status> children) {
  std::lock_guard<std::mutex> guard(mutex_);
  children_ = std::move(children);
}

std::vector<child_status> service_runtime::children() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return children_;
}

void service_runtime::publish_activities(std::vector<std::pair<std::string, std::shared_ptr<handler_activity>>> a) {
  std::lock_guard<std::mutex> guard(mutex_);
  activities_ = std::move(a);
}

std::vector<std::pair<std::string, std::shared_ptr<handler_activity>>> service_runtime::activities() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return activities_;
}

void service_runtime::publish_workers(std::vector<caf::actor> workers) {
  std::unique_lock<std::shared_mutex> guard(workers_mutex_);
  workers_.swap(workers);  // the old handles are let go below, outside the lock
  guard.unlock();
}

caf::actor service_runtime::next_worker() {
  std::shared_lock<std::shared_mutex> guard(workers_mutex_);
  if (workers_.empty()) return {};
  return workers_[next_worker_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
}

caf::actor spawn_service(caf::actor_system& sys, std::shared_ptr<service_runtime> svc) {
  // Operators may address the workers before the new root first runs.
  if (svc->def.kind == service_kind::workers) {
    std::vector<child_status> starting;
    for (std::size_t i = 0; i < svc->cfg.workers; ++i)
      starting.push_back({"worker-" + std::to_string(i + 1), "worker", std::string(to_string(svc->cfg.worker_restart)),
                          "starting", 0, ""});
    svc->publish_children(std::move(starting));
  }
  return sys.spawn(service_root, std::move(svc));
}

void deliver(const caf::actor& service, request_ptr req) { caf::anon_send(service, std::move(req)); }

void command_child(const caf::actor& service, child_command cmd, const std::string& child_id) {
  caf::anon_send(service, command_atom::value, static_cast<std::int32_t>(cmd), child_id);
}

}  // namespace cohort::detail
