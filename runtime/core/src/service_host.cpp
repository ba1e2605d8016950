#include "cohort/core/service_host.hpp"
#include "cohort/core/blocking_pool.hpp"
#include "cohort/core/event_hub.hpp"
#include "cohort/core/actor_messages.hpp"

#include <algorithm>
#include <filesystem>
#include <random>
#include <unordered_set>

#include <caf/all.hpp>
#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"
#include <spdlog/spdlog.h>

#include "cohort/storage/restore.hpp"

namespace cohort::detail {

result<std::unique_ptr<service_host>> service_host::create(const node_config& cfg,
                                                           const std::vector<service_definition>& catalog,
                                                           bool host_here, call_router* calls,
                                                           observability::tracer* tracer) {
  std::unordered_map<std::string, const service_definition*> defs;
  for (const auto& d : catalog) defs[d.name] = &d;
  for (const auto& s : cfg.services) {
    if (!defs.count(s.name)) return error_info{errc::bad_request, "unknown service '" + s.name + "' in config"};
    if (auto valid = validate(s.supervision, {}); !valid)
      return error_info{errc::bad_request, "service '" + s.name + "': " + valid.error().message};
  }
  // Who consumes whose events: from every definition in the catalog, hosted
  // here or not (a publisher delivers to its subscribers wherever they run).
  std::unordered_map<std::string, std::map<std::string, std::vector<subscriber_target>, std::less<>>> subscribers;
  for (const auto& d : catalog)
    for (const auto& sub : d.subscriptions) {
      if (!d.methods.count(sub.method))
        return error_info{errc::bad_request, "service '" + d.name + "' subscribes to " + sub.publisher + "/" +
                                                 sub.topic + " with unknown method '" + sub.method + "'"};
      subscribers[sub.publisher][sub.topic].push_back({d.name, sub.method});
    }
  const auto event_epoch =
      (static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count())
       << 12) |
      (std::random_device{}() & 0xfff);

  for (const auto& s : cfg.services)
    if (s.events.enabled && defs[s.name]->kind != service_kind::entities)
      return error_info{errc::bad_request, "service '" + s.name + "': an event log ([services." + s.name +
                                               ".events]) needs an entity service (workers publish no events)"};
  auto host = std::unique_ptr<service_host>(new service_host(cfg));
  if (!host_here) return host;
  for (const auto& sc : cfg.services) {
    hosted h;
    h.svc = std::make_shared<service_runtime>();
    h.svc->def = *defs[sc.name];
    h.svc->cfg = sc;
    if (h.svc->def.kind == service_kind::entities && !sc.intensity_set)
      h.svc->cfg.supervision.intensity = {30, std::chrono::milliseconds(5000)};
    h.svc->limits = cfg.limits;
    h.svc->calls = calls;
    h.svc->tracer = tracer;
    h.svc->clock_ms = cfg.reminder_clock;
    h.svc->allow_fault_injection = cfg.allow_fault_injection;
    if (auto subs = subscribers.find(sc.name); subs != subscribers.end()) h.svc->subscribers = subs->second;
    h.svc->event_epoch = event_epoch;
    host->services_.emplace(sc.name, std::move(h));
  }
  return host;
}

service_host::~service_host() { stop_watchdog(); }

void service_host::start(caf::actor_system& actors) {
  actors_ = &actors;
  // Only now that every table the router reads is complete may actors run:
  // a service starts working at once (resuming sagas, delivering its outbox).
  for (auto& [name, h] : services_)
    if (auto started = start(h); !started) log::get("service")->error("service {} is down: {}", name, started.error().message);
  watchdog_ = std::thread([this] {
    log::name_this_thread("cohort-watchdog");
    watch();
  });
}

void service_host::deliver(request_ptr req) {
  const auto& h = req->header;
  auto it = services_.find(h.service);
  if (it == services_.end()) {
    req->fail({errc::unknown_service, "no service named '" + h.service + "' on this node"});
    return;
  }
  auto& svc = *it->second.svc;
  if (svc.in_flight.load(std::memory_order_relaxed) >= static_cast<std::int64_t>(svc.cfg.max_in_flight)) {
    req->fail({errc::overloaded, "service '" + h.service + "' has " + std::to_string(svc.cfg.max_in_flight) +
                                     " requests in flight; retry later"});
    return;
  }
  // Worker services: straight to a worker, round-robin, when one runs (a
  // service marked down has none published: it is not up, and the root,
  // asked below, says why).
  if (svc.def.kind == service_kind::workers && !is_event_method(h.method))
    if (auto worker = svc.next_worker()) {
      req->hold(&svc.in_flight);
      return detail::deliver(worker, std::move(req));
    }
  auto root = svc.root();
  if (!root) {
    std::string why;
    (void)svc.down(&why);
    req->fail({errc::unavailable, "service '" + h.service + "' is down: " + why});
    return;
  }
  if (is_event_method(h.method)) {
    // Client subscriptions: to the service's event hub, not to its entities.
    auto hub = svc.event_hub();
    if (!hub) {
      if (req->header.kind == message_kind::request)
        req->fail({svc.cfg.events.enabled ? errc::unavailable : errc::unknown_method,
                   svc.cfg.events.enabled ? "the event log of '" + h.service + "' is restarting; subscribe again"
                                          : "service '" + h.service + "' keeps no event log to subscribe to "
                                                                      "([services." + h.service + ".events] log = true)"});
      return;
    }
    return detail::deliver(hub, std::move(req));
  }
  req->hold(&svc.in_flight);
  detail::deliver(root, std::move(req));  // an entity service's root, or a worker service with none running
}

std::int64_t service_host::in_flight() const {
  std::int64_t n = 0;
  for (const auto& [name, s] : services_) n += s.svc->in_flight.load();
  return n;
}

std::size_t service_host::fail_in_flight(const error_info& err) {
  std::size_t n = 0;
  for (auto& [name, s] : services_) n += s.svc->in_flight.fail_all(err);
  return n;
}

result<bool> service_host::start(hosted& h) {
  auto& svc = *h.svc;
  if (svc.def.kind == service_kind::entities && !svc.db) {
    auto dir = store_dir(cfg_, svc.def.name);
    std::error_code ec;
    // A restore that crashed left its other half here (the old store after
    // the swap, or an unfinished copy before it): the store in place wins.
    clean_interrupted_restore(dir);
    std::filesystem::create_directories(dir, ec);
    store_options o;
    o.mode = svc.cfg.store_durability;
    o.memory = memory_;
    auto db = store::open(dir, o);
    if (!db) {
      svc.mark_down(db.error().code + ": " + db.error().message);
      return db.error();
    }
    svc.db = std::move(*db);
    if (svc.serves) {
      // Fencing at the store (clusters): an entity's batch is refused as it is
      // queued once its shard is no longer served here, so the export of a
      // shard that follows a barrier() has every write that was let in.
      svc.db->set_write_guard([s = &svc](const write_batch& b) -> std::optional<error_info> {
        if (s->admits_key(b.entity, b.epoch)) return std::nullopt;
        return error_info{errc::unavailable, "entity " + s->def.name + "/" + b.entity +
                                                 " is no longer served by this node (its shard moved or its lease "
                                                 "lapsed): not stored"};
      });
    }
  }
  svc.record_failure("");
  svc.store_damaged = false;
  if (svc.dedicated_threads() && !svc.blocking)
    svc.blocking = std::make_shared<blocking_pool>(*actors_, svc.def.name, std::max<std::size_t>(svc.cfg.workers, 1));
  svc.set_root(spawn_service(*actors_, h.svc));
  h.started = clock_type::now();
  return true;
}

void service_host::stop(hosted& h, const std::string& why) {
  auto root = h.svc->root();
  h.svc->mark_down(why);
  if (root) caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
}

bool service_host::stop_and_wait(hosted& h, const std::string& why, std::chrono::milliseconds limit) {
  // Bounded wait until the root and every entity actor are gone, so nothing
  // of the old tree still uses its store when a new one starts (two live
  // copies of an entity must never write).
  auto root = h.svc->root();
  if (root) {
    caf::scoped_actor waiter{*actors_};
    waiter->monitor(root);
    stop(h, why);
    bool gone = false;
    waiter->receive([&](const caf::down_msg&) { gone = true; }, caf::after(limit) >> [] {});
    if (!gone) return false;
  } else {
    h.svc->mark_down(why);
  }
  auto until = clock_type::now() + limit;
  while (h.svc->live_entities.load() > 0 && clock_type::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return h.svc->live_entities.load() == 0;
}

void service_host::watch() {
  // Reports (and per policy replaces) workers whose handler runs too long.
  std::unique_lock<std::mutex> lock(watchdog_mutex_);
  while (!watchdog_wake_.wait_for(lock, std::chrono::milliseconds(20), [this] { return watchdog_stop_; })) {
    auto now = clock_type::now().time_since_epoch().count();
    for (auto& [name, h] : services_) {
      auto& svc = *h.svc;
      const auto timeout = svc.handler_timeout();
      if (timeout.count() <= 0) continue;
      auto limit = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
      for (auto& [child, activity] : svc.activities()) {
        auto since = activity->busy_since_ns.load(std::memory_order_acquire);
        if (since == 0) {
          activity->reported.store(false);
          continue;
        }
        if (now - since < limit || activity->reported.exchange(true)) continue;
        const std::string* method = activity->method.load();
        auto what = "watchdog: " + name + "/" + child + " has been running " + name + "." +
                    (method ? *method : std::string("?")) + " for more than " +
                    std::to_string(timeout.count()) + " ms";
        log::get("service")->warn("{}{}", what, svc.cfg.replace_stuck ? "; replacing it" : "");
        svc.stuck_handlers++;
        svc.record_failure(what);
        if (svc.cfg.replace_stuck)
          if (auto root = svc.root()) detail::command_child(root, child_command::replace_stuck, child);
      }
      // Entity handlers: reported only. An entity cannot be replaced beside
      // its running handler (two copies of one key would write).
      for (auto& slot : svc.entity_activity) {
        auto since = slot.busy_since_ns.load(std::memory_order_acquire);
        if (since == 0 || now - since < limit || slot.reported.load()) continue;
        std::string child;
        const std::string* method = nullptr;
        {
          std::lock_guard<std::mutex> guard(slot.m);
          if (slot.busy_since_ns.load() != since || !slot.child || slot.reported.exchange(true)) continue;
          child = *slot.child;
          method = slot.method.load();
        }
        auto what = "watchdog: " + name + "/" + child + " has been running " + name + "." +
                    (method ? *method : std::string("?")) + " for more than " + std::to_string(timeout.count()) +
                    " ms (an entity handler holds a shared scheduler thread)";
        log::get("service")->warn("{}", what);
        svc.stuck_handlers++;
        svc.record_failure(what);
      }
    }
  }
}

service_status service_host::status_of(const std::string& name, const hosted& h) const {
  const auto& svc = *h.svc;
  service_status s;
  s.name = name;
  s.kind = svc.def.kind == service_kind::entities ? "entities" : "workers";
  s.state = svc.down(&s.down_reason) ? "down" : "up";
  s.strategy = svc.def.kind == service_kind::entities ? "simple_one_for_one"
                                                       : std::string(to_string(svc.cfg.supervision.strategy));
  s.uptime_s = s.state == "up" ? std::chrono::duration<double>(clock_type::now() - h.started).count() : 0;
  s.in_flight = svc.in_flight.load();
  s.restarts = svc.restarts.load();
  const auto restart = svc.restart_latency.read();
  s.restarts_timed = restart.count;
  s.restart_latency_p50_us = restart.p50_us;
  s.restart_latency_p99_us = restart.p99_us;
  s.restart_latency_max_us = restart.max_us;
  if (svc.blocking) {
    s.blocking_threads = static_cast<std::int64_t>(svc.blocking->threads());
    s.blocking_threads_started = static_cast<std::int64_t>(svc.blocking->threads_started());
  }
  s.activations = svc.activations.load();
  s.passivations = svc.passivations.load();
  s.live_entities = svc.live_entities.load();
  s.hibernated_entities = svc.hibernated_entities.load();
  s.hibernations = svc.hibernations.load();
  s.wakes = svc.wakes.load();
  s.resumes = svc.resumes.load();
  s.quarantines = svc.quarantines.load();
  s.events_published = svc.events_published.load();
  s.events_delivered = svc.events_delivered.load();
  s.event_redeliveries = svc.event_redeliveries.load();
  s.events_logged = svc.events_logged.load();
  s.subscriptions = svc.cfg.events.enabled ? svc.subscriptions.load() : -1;
  if (auto oldest = svc.outbox_oldest_ms.load(); oldest != 0) {
    auto now = wall_clock_ms();
    s.outbox_oldest_age_s = now > oldest ? static_cast<double>(now - oldest) / 1000.0 : 0.0;
  }
  s.pending_entities = svc.pending_entities.load();
  s.stuck_handlers = svc.stuck_handlers.load();
  s.last_failure = svc.last_failure();
  s.children = svc.children();
  return s;
}

std::vector<service_status> service_host::status() const {
  std::vector<service_status> out;
  for (const auto& [name, h] : services_) out.push_back(status_of(name, h));
  return out;
}

namespace {
error_info no_such_service(const std::string& name) {
  return {errc::unknown_service, "no service named '" + name + "' on this node"};
}
}  // namespace

result<bool> service_host::stop_service(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return no_such_service(name);
  stop(it->second, "stopped by operator");
  return true;
}

result<bool> service_host::start_service(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return no_such_service(name);
  if (it->second.svc->root()) return true;  // already up
  return start(it->second);
}

result<bool> service_host::restart_service(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return no_such_service(name);
  if (!stop_and_wait(it->second, "restarting"))
    return error_info{errc::unavailable, "service '" + name + "' did not stop within 10 s; not restarted"};
  return start(it->second);
}

result<bool> service_host::command_child(const std::string& service, const std::string& child,
                                         const std::string& command) {
  auto it = services_.find(service);
  if (it == services_.end()) return no_such_service(service);
  auto& svc = *it->second.svc;
  child_command cmd;
  if (command == "restart") cmd = child_command::restart;
  else if (command == "stop") cmd = child_command::stop;
  else if (command == "start") cmd = child_command::start;
  else if (command == "crash") {
    if (!svc.allow_fault_injection)
      return error_info{errc::bad_request, "fault injection is off: set node.allow_fault_injection = true"};
    cmd = child_command::crash;
  } else {
    return error_info{errc::bad_request, "unknown command '" + command + "' (restart, stop, start, crash)"};
  }
  bool known = child.rfind("entity/", 0) == 0 && child.size() > 7 && svc.def.kind == service_kind::entities;
  for (const auto& c : svc.children()) known = known || c.id == child;
  if (!known) return error_info{errc::bad_request, "service '" + service + "' has no child '" + child + "'"};
  auto root = svc.root();
  if (!root) return error_info{errc::unavailable, "service '" + service + "' is down"};
  detail::command_child(root, cmd, child);
  return true;
}

result<service_host::hosted*> service_host::entity_service(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return no_such_service(name);
  if (it->second.svc->def.kind != service_kind::entities)
    return error_info{errc::bad_request, "service '" + name + "' is stateless and has no store"};
  return &it->second;
}

result<store*> service_host::open_store(const std::string& name) const {
  auto h = const_cast<service_host*>(this)->entity_service(name);
  if (!h) return h.error();
  if (!(*h)->svc->db) return error_info{errc::unavailable, "the store of '" + name + "' is not open"};
  return (*h)->svc->db.get();
}

result<store_stats> service_host::storage_stats(const std::string& service) const {
  auto s = open_store(service);
  if (!s) return s.error();
  return (*s)->stats();
}

result<std::string> service_host::backup(const std::string& service, const std::string& name) {
  if (auto ok = check_backup_name(name); !ok) return ok.error();
  auto s = open_store(service);
  if (!s) return s.error();
  auto dir = (std::filesystem::path(backup_root(cfg_)) / service / name).string();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
  if (auto done = (*s)->checkpoint(dir); !done) return done.error();
  return dir;
}

result<bool> service_host::restore(const std::string& service, const std::string& name) {
  if (auto ok = check_backup_name(name); !ok) return ok.error();
  auto found = entity_service(service);
  if (!found) return found.error();
  auto& h = **found;
  namespace fs = std::filesystem;
  auto from = fs::path(backup_root(cfg_)) / service / name;
  std::error_code ec;
  if (!fs::exists(from / "CURRENT", ec))
    return error_info{errc::bad_request, "no backup '" + name + "' of '" + service + "' under " + backup_root(cfg_)};
  log::get("service")->warn("restoring {} from backup {} ({})", service, name, from.string());
  if (!stop_and_wait(h, "restoring from backup " + name))
    return error_info{errc::unavailable, "service '" + service + "' did not stop within 10 s; nothing restored"};
  h.svc->db.reset();  // closes the store: nothing uses it any more
  if (auto restored = restore_store(from.string(), store_dir(cfg_, service)); !restored) {
    // On the old store, which is untouched; a failure to start again is the
    // operator's to see beside the restore's own error.
    if (auto restarted = start(h); !restarted)
      log::get("service")->error("{} did not start again on its old store after the failed restore: {}", service,
                                 restarted.error().message);
    return restored.error();
  }
  return start(h);
}

result<bool> service_host::verify_store(const std::string& service) {
  auto h = entity_service(service);
  if (!h) return h.error();
  if ((*h)->svc->db) return (*h)->svc->db->verify();
  return store::verify_closed(store_dir(cfg_, service));
}

result<bool> service_host::flush_store(const std::string& service) {
  auto s = open_store(service);
  if (!s) return s.error();
  return (*s)->flush();
}

result<std::string> service_host::salvage_store(const std::string& service) {
  auto found = entity_service(service);
  if (!found) return found.error();
  auto& h = **found;
  if (!h.svc->down() || h.svc->db)
    return error_info{errc::bad_request, "salvage is for a service that is down because its store does not open; '" +
                                             service + "' is not (stop it, or use verify / restore)"};
  auto report = store::salvage(store_dir(cfg_, service));
  if (!report) return report.error();
  log::get("service")->warn("salvaged the store of {}, accepting the loss: {}", service, *report);
  if (auto started = start(h); !started) return started.error();
  return *report;
}

void service_host::stop_watchdog() {
  {
    std::lock_guard<std::mutex> guard(watchdog_mutex_);
    watchdog_stop_ = true;
  }
  watchdog_wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
}

void service_host::set_serves(const std::string& service, std::function<bool(std::string_view)> serves,
                              std::function<bool(std::string_view, std::uint64_t)> admits) {
  if (auto it = services_.find(service); it != services_.end()) {
    it->second.svc->serves = std::move(serves);
    it->second.svc->admits = std::move(admits);
  }
}

store* service_host::store_of(const std::string& service) const {
  auto it = services_.find(service);
  return it == services_.end() ? nullptr : it->second.svc->db.get();
}

void service_host::release_unserved(const std::string& service) {
  auto it = services_.find(service);
  if (it == services_.end()) return;
  if (auto root = it->second.svc->root()) caf::anon_send(root, release_atom::value);
}

void service_host::data_arrived(const std::string& service) {
  auto it = services_.find(service);
  if (it == services_.end()) return;
  it->second.svc->poke_outbox({std::string()});  // an empty key: every scan from the start
  it->second.svc->poke_reminders();
}

void service_host::shutdown() {
  stop_watchdog();
  for (auto& [name, h] : services_)
    if (auto root = h.svc->root()) caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
}

void service_host::close() {
  // The services' actors are done (the node waited for them): their pools'
  // threads end now, before the actor system does.
  for (auto& [name, h] : services_)
    if (h.svc->blocking) h.svc->blocking->stop();
  services_.clear();
}

}  // namespace cohort::detail
