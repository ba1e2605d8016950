#include "cohort/runtime/node.hpp"

#include "cohort/storage/restore.hpp"

#include <condition_variable>
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
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "admin_service.hpp"
#include "http_front.hpp"
#include "io_loop.hpp"
#include "process_host.hpp"
#include "service_runtime.hpp"

namespace cohort {

namespace {
using clock_type = std::chrono::steady_clock;
}

struct node::impl final : detail::call_router {
  struct hosted {
    std::shared_ptr<detail::service_runtime> svc;
    clock_type::time_point started;
  };

  node_config cfg;
  zmq::context_t ctx{1};
  std::unique_ptr<detail::io_loop> io;
  std::unique_ptr<caf::actor_system_config> actor_cfg;
  std::unique_ptr<caf::actor_system> actors;
  std::unordered_map<std::string, hosted> services;      // fixed after start
  std::unordered_set<std::string> remotes;  ///< services reached over the wire (pools on the I/O thread)
  std::vector<std::string> endpoints;
  std::string admin_endpoint;
  std::unique_ptr<detail::http_front> http;  ///< the HTTP/JSON front, when [http] listen is set
  std::string http_endpoint;
  std::unique_ptr<detail::process_host> processes;  ///< isolation = "process"
  std::string runtime_dir;
  std::atomic<bool> draining{false};
  std::atomic<bool> stopped{false};  ///< stop() may be called from several threads: it runs once
  node* owner = nullptr;
  clock_type::time_point started = clock_type::now();

  std::thread watchdog;
  std::mutex watchdog_mutex;
  std::condition_variable watchdog_wake;
  bool watchdog_stop = false;

  /// Ingress from the sockets: refuse new work while draining.
  void admit(detail::request_ptr req) {
    if (draining.load(std::memory_order_relaxed)) {
      req->fail({errc::unavailable, "node '" + cfg.name + "' is shutting down"});
      return;
    }
    route(std::move(req));
  }

  void route(detail::request_ptr req) override {
    const auto& h = req->header;
    if (clock_type::now() >= req->deadline) {
      req->fail({errc::timeout, "deadline passed before " + h.service + "." + h.method + " was routed"});
      return;
    }
    if (auto it = services.find(h.service); it != services.end()) {
      auto& svc = *it->second.svc;
      auto root = svc.root();
      if (!root) {
        std::string why;
        (void)svc.down(&why);
        req->fail({errc::unavailable, "service '" + h.service + "' is down: " + why});
        return;
      }
      if (svc.in_flight.load(std::memory_order_relaxed) >= static_cast<std::int64_t>(svc.cfg.max_in_flight)) {
        req->fail({errc::overloaded, "service '" + h.service + "' has " + std::to_string(svc.cfg.max_in_flight) +
                                         " requests in flight; retry later"});
        return;
      }
      req->hold(&svc.in_flight);
      // Worker services: straight to a worker, round-robin; the root is only
      // asked when none is running (it answers `unavailable`).
      if (svc.def.kind == service_kind::workers)
        if (auto worker = svc.next_worker()) return detail::deliver(worker, std::move(req));
      detail::deliver(root, std::move(req));
      return;
    }
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

  std::int64_t total_in_flight() const {
    std::int64_t n = 0;
    for (const auto& [name, s] : services) n += s.svc->in_flight.load();
    return n;
  }

  /// The route to a service process's admin endpoint (never a service name: '/' is not allowed in those).
  static std::string admin_route(const std::string& service) { return "_admin/" + service; }

  /// Process isolation: every service runs in a supervised child process,
  /// reached like a remote service over ipc://.
  result<bool> start_processes() {
    if (cfg.source_path.empty())
      return error_info{errc::bad_request, "isolation = \"process\" needs the node to be started from a config file"};
    std::string pattern = (std::filesystem::temp_directory_path() / ("cohort-" + cfg.name + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) return error_info{errc::unavailable, "cannot create a runtime directory in /tmp"};
    runtime_dir = pattern;
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

  /// Opens the service's store if it has none, then spawns a fresh root.
  result<bool> start_service(hosted& h) {
    auto& svc = *h.svc;
    if (svc.def.kind == service_kind::entities && !svc.db) {
      auto dir = store_dir(cfg, svc.def.name);
      std::error_code ec;
      // A restore that crashed left its other half here (the old store after
      // the swap, or an unfinished copy before it): the store in place wins.
      clean_interrupted_restore(dir);
      std::filesystem::create_directories(dir, ec);
      auto db = store::open(dir, store_options{svc.cfg.store_durability, true});
      if (!db) {
        svc.mark_down(db.error().code + ": " + db.error().message);
        return db.error();
      }
      svc.db = std::move(*db);
    }
    svc.record_failure("");
    svc.store_damaged = false;
    svc.set_root(detail::spawn_service(*actors, h.svc));
    h.started = clock_type::now();
    return true;
  }

  void stop_service(hosted& h, const std::string& why) {
    auto root = h.svc->root();
    h.svc->mark_down(why);
    if (root) caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
  }

  /// Stops a service and waits (bounded) until its root and every entity
  /// actor are gone, so nothing of the old tree still uses its store when a
  /// new one starts (two live copies of an entity must never write).
  bool stop_and_wait(hosted& h, const std::string& why, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto root = h.svc->root();
    if (root) {
      caf::scoped_actor waiter{*actors};
      waiter->monitor(root);
      stop_service(h, why);
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


  /// Reports (and per policy replaces) workers whose handler runs too long.
  void watch() {
    std::unique_lock<std::mutex> lock(watchdog_mutex);
    while (!watchdog_wake.wait_for(lock, std::chrono::milliseconds(20), [this] { return watchdog_stop; })) {
      auto now = clock_type::now().time_since_epoch().count();
      for (auto& [name, h] : services) {
        auto& svc = *h.svc;
        if (svc.cfg.handler_timeout.count() <= 0) continue;
        auto limit = std::chrono::duration_cast<std::chrono::nanoseconds>(svc.cfg.handler_timeout).count();
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
                      std::to_string(svc.cfg.handler_timeout.count()) + " ms";
          spdlog::warn("{}{}", what, svc.cfg.replace_stuck ? "; replacing it" : "");
          svc.stuck_handlers++;
          svc.record_failure(what);
          if (svc.cfg.replace_stuck)
            if (auto root = svc.root()) detail::command_child(root, detail::child_command::replace_stuck, child);
        }
      }
    }
  }

  service_status status_of(const std::string& name, const hosted& h) const {
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
    s.activations = svc.activations.load();
    s.passivations = svc.passivations.load();
    s.live_entities = svc.live_entities.load();
    s.resumes = svc.resumes.load();
    s.events_published = svc.events_published.load();
    s.events_delivered = svc.events_delivered.load();
    s.event_redeliveries = svc.event_redeliveries.load();
    s.stuck_handlers = svc.stuck_handlers.load();
    s.last_failure = svc.last_failure();
    s.children = svc.children();
    return s;
  }
};

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() { stop(); }

result<std::unique_ptr<node>> node::start(node_config cfg, std::vector<service_definition> catalog) {
  auto p = std::make_unique<impl>();
  p->cfg = cfg;
  impl* self = p.get();
  p->io = std::make_unique<detail::io_loop>(p->ctx, cfg.limits, cfg.default_deadline,
                                            // Spinning saves the wake-up of replies from local actors; a
                                            // node without services (a pure gateway) has none to wait for.
                                            cfg.services.empty() ? 0 : cfg.io_spin_polls,
                                            [self](detail::request_ptr r) { self->admit(std::move(r)); });
  p->io->set_max_clock_skew(cfg.max_clock_skew);

  // Validate the whole service list before anything starts.
  std::unordered_map<std::string, service_definition*> defs;
  for (auto& d : catalog) defs[d.name] = &d;
  for (const auto& s : cfg.services) {
    if (!defs.count(s.name)) return error_info{errc::bad_request, "unknown service '" + s.name + "' in config"};
    if (auto valid = validate(s.supervision, {}); !valid)
      return error_info{errc::bad_request, "service '" + s.name + "': " + valid.error().message};
  }

  // Who consumes whose events: from every definition in the catalog, hosted
  // here or not (a publisher delivers to its subscribers wherever they run).
  std::unordered_map<std::string, std::map<std::string, std::vector<detail::subscriber_target>, std::less<>>> subscribers;
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
          [self] { return detail::services_json(self->owner->services()); });
      p->http_endpoint = p->http->endpoint();
    } catch (const std::exception& e) {
      return error_info{errc::unavailable, "cannot listen on http " + cfg.http.listen + ": " + e.what()};
    }
  }

  p->actor_cfg = std::make_unique<caf::actor_system_config>();
  auto threads = cfg.scheduler_threads > 0
                     ? cfg.scheduler_threads
                     : std::max<std::size_t>(1, std::thread::hardware_concurrency() > 1 ? std::thread::hardware_concurrency() - 1 : 1);
  p->actor_cfg->set("scheduler.max-threads", threads);
  p->actor_cfg->set("logger.verbosity", caf::atom("quiet"));
  p->actor_cfg->set("scheduler.policy", cfg.scheduler_policy == "stealing" ? caf::atom("stealing") : caf::atom("sharing"));
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
  for (const auto& sc : cfg.services) {
    if (cfg.isolation == "process") break;  // hosted by child processes instead
    impl::hosted h;
    h.svc = std::make_shared<detail::service_runtime>();
    h.svc->def = *defs[sc.name];
    h.svc->cfg = sc;
    h.svc->limits = cfg.limits;
    h.svc->calls = p.get();
    h.svc->allow_fault_injection = cfg.allow_fault_injection;
    if (auto subs = subscribers.find(sc.name); subs != subscribers.end()) h.svc->subscribers = subs->second;
    h.svc->event_epoch = event_epoch;
    p->services.emplace(sc.name, std::move(h));
  }
  // Only now that every table the router reads is complete may actors run:
  // a service starts working at once (resuming sagas, delivering its outbox).
  for (auto& [name, h] : p->services)
    // A service whose store does not open stays down; the others start and serve.
    if (auto started = p->start_service(h); !started)
      spdlog::error("service {} is down: {}", name, started.error().message);
  if (cfg.isolation == "process") {
    if (auto started = p->start_processes(); !started) return started.error();
  }
  // CAF 0.17 keeps a reference to the system's logger in a thread-local of every
  // thread that made or used the system, and its destructor waits for the
  // logger to die: drop this thread's reference so stop() works from any thread.
  caf::logger::set_current_actor_system(nullptr);
  auto out = std::unique_ptr<node>(new node(std::move(p)));
  node* raw = out.get();
  raw->impl_->io->set_admin_handler([raw](detail::request_ptr r) { detail::handle_admin(*raw, std::move(r)); });
  raw->impl_->watchdog = std::thread([i = raw->impl_.get()] { i->watch(); });
  if (!cfg.register_with.empty()) {
    std::vector<std::string> hosted;
    for (const auto& s : cfg.services) hosted.push_back(s.name);
    raw->impl_->io->announce(cfg.register_with, cfg.advertise.empty() ? raw->impl_->endpoints.front() : cfg.advertise,
                             hosted, cfg.heartbeat);
  }
  raw->impl_->io->set_registration_timeout(cfg.heartbeat * 3);
  raw->impl_->owner = raw;
  raw->impl_->io->start();
  if (raw->impl_->http) raw->impl_->http->start();
  return out;
}

const std::vector<std::string>& node::endpoints() const noexcept { return impl_->endpoints; }

const std::string& node::http_endpoint() const noexcept { return impl_->http_endpoint; }

const std::string& node::admin_endpoint() const noexcept { return impl_->admin_endpoint; }

zmq::context_t& node::context() noexcept { return impl_->ctx; }

const std::string& node::name() const noexcept { return impl_->cfg.name; }

double node::uptime_s() const {
  return std::chrono::duration<double>(clock_type::now() - impl_->started).count();
}

std::vector<service_status> node::services() const {
  std::vector<service_status> out;
  for (const auto& [name, h] : impl_->services) out.push_back(impl_->status_of(name, h));
  if (impl_->processes)
    for (auto& s : impl_->processes->status()) out.push_back(std::move(s));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

node_metrics node::metrics() const {
  const auto& c = impl_->io->counters();
  return {c.requests.load(), c.rejected.load(), c.malformed_frames.load(), c.replies.load(),
          c.expired_in_transit.load()};
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
                       i->registered ? std::chrono::duration<double>(now - i->last_seen).count() : 0.0});
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
  auto it = impl_->services.find(name);
  if (it == impl_->services.end()) return error_info{errc::unknown_service, "no service named '" + name + "' on this node"};
  impl_->stop_service(it->second, "stopped by operator");
  return true;
}

result<bool> node::start_service(const std::string& name) {
  if (impl_->processes) return impl_->processes->command(name, "start");
  auto it = impl_->services.find(name);
  if (it == impl_->services.end()) return error_info{errc::unknown_service, "no service named '" + name + "' on this node"};
  if (it->second.svc->root()) return true;  // already up
  return impl_->start_service(it->second);
}

result<bool> node::restart_service(const std::string& name) {
  if (impl_->processes) return impl_->processes->command(name, "restart");
  auto it = impl_->services.find(name);
  if (it == impl_->services.end()) return error_info{errc::unknown_service, "no service named '" + name + "' on this node"};
  if (!impl_->stop_and_wait(it->second, "restarting"))
    return error_info{errc::unavailable, "service '" + name + "' did not stop within 10 s; not restarted"};
  return impl_->start_service(it->second);
}

result<bool> node::command_child(const std::string& service, const std::string& child, const std::string& command) {
  auto it = impl_->services.find(service);
  if (it == impl_->services.end())
    return error_info{errc::unknown_service, "no service named '" + service + "' on this node"};
  auto& svc = *it->second.svc;
  detail::child_command cmd;
  if (command == "restart") cmd = detail::child_command::restart;
  else if (command == "stop") cmd = detail::child_command::stop;
  else if (command == "start") cmd = detail::child_command::start;
  else if (command == "crash") {
    if (!svc.allow_fault_injection)
      return error_info{errc::bad_request, "fault injection is off: set node.allow_fault_injection = true"};
    cmd = detail::child_command::crash;
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

namespace {
/// The hosted entity service `name` (the ones with a store).
template <class Hosted>
auto entity_service_of(Hosted& services, const std::string& name) -> result<decltype(&services.begin()->second)> {
  auto it = services.find(name);
  if (it == services.end()) return error_info{errc::unknown_service, "no service named '" + name + "' on this node"};
  if (it->second.svc->def.kind != service_kind::entities)
    return error_info{errc::bad_request, "service '" + name + "' is stateless and has no store"};
  return &it->second;
}

/// The open store of the hosted entity service `name`.
template <class Hosted>
result<store*> store_of(Hosted& services, const std::string& name) {
  auto h = entity_service_of(services, name);
  if (!h) return h.error();
  if (!(*h)->svc->db) return error_info{errc::unavailable, "the store of '" + name + "' is not open"};
  return (*h)->svc->db.get();
}
}  // namespace

result<store_stats> node::storage_stats(const std::string& service) const {
  auto s = store_of(impl_->services, service);
  if (!s) return s.error();
  return (*s)->stats();
}

result<std::string> node::backup(const std::string& service, const std::string& name) {
  if (auto ok = check_backup_name(name); !ok) return ok.error();
  auto s = store_of(impl_->services, service);
  if (!s) return s.error();
  auto dir = (std::filesystem::path(backup_root(impl_->cfg)) / service / name).string();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
  if (auto done = (*s)->checkpoint(dir); !done) return done.error();
  return dir;
}

result<bool> node::restore(const std::string& service, const std::string& name) {
  if (auto ok = check_backup_name(name); !ok) return ok.error();
  auto hosted = entity_service_of(impl_->services, service);
  if (!hosted) return hosted.error();
  auto& h = **hosted;
  namespace fs = std::filesystem;
  auto from = fs::path(backup_root(impl_->cfg)) / service / name;
  std::error_code ec;
  if (!fs::exists(from / "CURRENT", ec))
    return error_info{errc::bad_request, "no backup '" + name + "' of '" + service + "' under " + backup_root(impl_->cfg)};
  spdlog::warn("restoring {} from backup {} ({})", service, name, from.string());
  if (!impl_->stop_and_wait(h, "restoring from backup " + name))
    return error_info{errc::unavailable, "service '" + service + "' did not stop within 10 s; nothing restored"};
  h.svc->db.reset();  // closes the store: nothing uses it any more
  if (auto restored = restore_store(from.string(), store_dir(impl_->cfg, service)); !restored) {
    impl_->start_service(h);  // on the old store, which is untouched
    return restored.error();
  }
  return impl_->start_service(h);
}

bool node::forward_admin(const std::string& service, detail::request_ptr req) {
  if (!impl_->processes || !impl_->remotes.count(service)) return false;
  envelope h = req->header;
  h.service = "admin";
  auto deadline = req->deadline;
  auto payload = req->payload;
  auto inner = std::make_shared<detail::request>(
      std::move(h), std::move(payload), deadline, [req](const envelope& reply, std::string&& p) {
        if (reply.kind == message_kind::error)
          req->fail(decode_error_payload(p, wire_limits{}));
        else
          req->respond(std::move(p));
      });
  impl_->io->forward_remote(impl::admin_route(service), std::move(inner));
  return true;
}

result<bool> node::verify_store(const std::string& service) {
  auto h = entity_service_of(impl_->services, service);
  if (!h) return h.error();
  if ((*h)->svc->db) return (*h)->svc->db->verify();
  return store::verify_closed(store_dir(impl_->cfg, service));
}

result<bool> node::flush_store(const std::string& service) {
  auto s = store_of(impl_->services, service);
  if (!s) return s.error();
  return (*s)->flush();
}

result<std::string> node::salvage_store(const std::string& service) {
  auto hosted = entity_service_of(impl_->services, service);
  if (!hosted) return hosted.error();
  auto& h = **hosted;
  if (!h.svc->down() || h.svc->db)
    return error_info{errc::bad_request, "salvage is for a service that is down because its store does not open; '" +
                                             service + "' is not (stop it, or use verify / restore)"};
  auto report = store::salvage(store_dir(impl_->cfg, service));
  if (!report) return report.error();
  spdlog::warn("salvaged the store of {}, accepting the loss: {}", service, *report);
  if (auto started = impl_->start_service(h); !started) return started.error();
  return *report;
}

void node::stop() {
  auto& p = *impl_;
  if (p.stopped.exchange(true)) return;
  p.draining = true;
  {
    std::lock_guard<std::mutex> guard(p.watchdog_mutex);
    p.watchdog_stop = true;
  }
  p.watchdog_wake.notify_all();
  if (p.watchdog.joinable()) p.watchdog.join();
  auto until = clock_type::now() + p.cfg.drain_timeout;
  while (p.total_in_flight() > 0 && clock_type::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (auto left = p.total_in_flight(); left > 0)
    spdlog::warn("drain timeout: {} request(s) still in flight are answered 'unavailable'", left);
  // Child processes drain on SIGTERM; their replies still pass our I/O thread.
  if (p.processes) p.processes->stop();
  for (auto& [name, h] : p.services)
    if (auto root = h.svc->root()) caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
  p.actors->await_all_actors_done();
  p.io->stop();  // sends the replies the actors produced while stopping
  p.actors.reset();
  // Last: replies to HTTP requests still post to the front's thread until here.
  if (p.http) p.http->stop();
  p.http.reset();
  p.services.clear();  // closes the stores
  if (!p.runtime_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(p.runtime_dir, ec);
  }
}

}  // namespace cohort
