#include "cohort/runtime/node.hpp"

#include <filesystem>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "io_loop.hpp"
#include "service_runtime.hpp"

namespace cohort {

namespace {
using clock_type = std::chrono::steady_clock;
}

struct node::impl final : detail::call_router {
  struct hosted {
    std::shared_ptr<detail::service_runtime> svc;
    caf::actor root;
    std::string down_reason;  ///< non-empty: the service could not start
  };

  node_config cfg;
  zmq::context_t ctx{1};
  std::unique_ptr<detail::io_loop> io;
  std::unique_ptr<caf::actor_system_config> actor_cfg;
  std::unique_ptr<caf::actor_system> actors;
  std::unordered_map<std::string, hosted> services;
  std::unordered_map<std::string, std::string> remotes;  // service -> endpoint
  std::vector<std::string> endpoints;
  std::atomic<bool> draining{false};
  bool stopped = false;

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
      auto& s = it->second;
      if (!s.down_reason.empty()) {
        req->fail({errc::unavailable, "service '" + h.service + "' is down: " + s.down_reason});
        return;
      }
      if (s.svc->in_flight.load(std::memory_order_relaxed) >= static_cast<std::int64_t>(s.svc->cfg.max_in_flight)) {
        req->fail({errc::overloaded, "service '" + h.service + "' has " + std::to_string(s.svc->cfg.max_in_flight) +
                                         " requests in flight; retry later"});
        return;
      }
      req->hold(&s.svc->in_flight);
      detail::deliver(s.root, std::move(req));
      return;
    }
    if (auto it = remotes.find(h.service); it != remotes.end()) {
      io->post([this, endpoint = it->second, req = std::move(req)]() mutable {
        io->forward_remote(endpoint, std::move(req));
      });
      return;
    }
    req->fail({errc::unknown_service, "no service named '" + h.service + "' is reachable from node '" + cfg.name + "'"});
  }

  std::int64_t total_in_flight() const {
    std::int64_t n = 0;
    for (const auto& [name, s] : services)
      if (s.svc) n += s.svc->in_flight.load();
    return n;
  }
};

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() { stop(); }

result<std::unique_ptr<node>> node::start(node_config cfg, std::vector<service_definition> catalog) {
  auto p = std::make_unique<impl>();
  p->cfg = cfg;
  impl* self = p.get();
  p->io = std::make_unique<detail::io_loop>(p->ctx, cfg.limits, cfg.default_deadline, [self](detail::request_ptr r) { self->admit(std::move(r)); });

  // Validate the whole service list before anything starts.
  std::unordered_map<std::string, service_definition*> defs;
  for (auto& d : catalog) defs[d.name] = &d;
  for (const auto& s : cfg.services)
    if (!defs.count(s.name)) return error_info{errc::bad_request, "unknown service '" + s.name + "' in config"};

  // Bind first: a taken port fails the start before any service runs.
  for (const auto& ep : cfg.listen) {
    try {
      p->endpoints.push_back(p->io->bind(ep));
    } catch (const zmq::error_t& e) {
      return error_info{errc::unavailable, "cannot listen on " + ep + ": " + e.what()};
    }
  }

  p->actor_cfg = std::make_unique<caf::actor_system_config>();
  if (cfg.scheduler_threads > 0) p->actor_cfg->set("scheduler.max-threads", cfg.scheduler_threads);
  p->actor_cfg->set("logger.verbosity", caf::atom("quiet"));
  p->actor_cfg->set("scheduler.policy", cfg.scheduler_policy == "stealing" ? caf::atom("stealing") : caf::atom("sharing"));
  p->actors = std::make_unique<caf::actor_system>(*p->actor_cfg);

  for (const auto& sc : cfg.services) {
    impl::hosted h;
    h.svc = std::make_shared<detail::service_runtime>();
    h.svc->def = *defs[sc.name];
    h.svc->cfg = sc;
    h.svc->limits = cfg.limits;
    h.svc->calls = p.get();
    if (h.svc->def.kind == service_kind::entities) {
      auto dir = (std::filesystem::path(cfg.data_dir) / sc.name).string();
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      auto db = store::open(dir, store_options{sc.store_durability, true});
      if (!db) {
        // This service stays down; the others start and serve.
        h.down_reason = db.error().message;
        spdlog::error("service {} is down: {}", sc.name, h.down_reason);
        p->services.emplace(sc.name, std::move(h));
        continue;
      }
      h.svc->db = std::move(*db);
    }
    h.root = detail::spawn_service(*p->actors, h.svc);
    p->services.emplace(sc.name, std::move(h));
  }
  for (const auto& r : cfg.remotes) p->remotes[r.name] = r.endpoint;
  // CAF 0.17 keeps a reference to the system's logger in a thread-local of every
  // thread that made or used the system, and its destructor waits for the
  // logger to die: drop this thread's reference so stop() works from any thread.
  caf::logger::set_current_actor_system(nullptr);
  p->io->start();
  return std::unique_ptr<node>(new node(std::move(p)));
}

const std::vector<std::string>& node::endpoints() const noexcept { return impl_->endpoints; }

zmq::context_t& node::context() noexcept { return impl_->ctx; }

std::vector<service_status> node::services() const {
  std::vector<service_status> out;
  for (const auto& [name, h] : impl_->services) {
    service_status s;
    s.name = name;
    s.kind = h.svc->def.kind == service_kind::entities ? "entities" : "workers";
    s.state = h.down_reason.empty() ? "up" : "down";
    s.down_reason = h.down_reason;
    s.in_flight = h.svc->in_flight.load();
    s.restarts = h.svc->restarts.load();
    s.activations = h.svc->activations.load();
    s.passivations = h.svc->passivations.load();
    s.live_entities = h.svc->live_entities.load();
    s.last_failure = h.svc->last_failure();
    out.push_back(std::move(s));
  }
  return out;
}

node_metrics node::metrics() const {
  const auto& c = impl_->io->counters();
  return {c.requests.load(), c.rejected.load(), c.malformed_frames.load(), c.replies.load()};
}

void node::stop() {
  auto& p = *impl_;
  if (p.stopped) return;
  p.stopped = true;
  p.draining = true;
  auto until = clock_type::now() + p.cfg.drain_timeout;
  while (p.total_in_flight() > 0 && clock_type::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (auto left = p.total_in_flight(); left > 0)
    spdlog::warn("drain timeout: {} request(s) still in flight are answered 'unavailable'", left);
  for (auto& [name, h] : p.services)
    if (h.root) caf::anon_send_exit(h.root, caf::exit_reason::user_shutdown);
  p.actors->await_all_actors_done();
  p.io->stop();  // sends the replies the actors produced while stopping
  p.actors.reset();
  p.services.clear();  // closes the stores
}

}  // namespace cohort
