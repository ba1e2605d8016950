#include "cohort/admin/admin_service.hpp"

#include <set>

#include <nlohmann/json.hpp>
#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"
#include <spdlog/spdlog.h>

#include "cohort/allocator/allocator.hpp"
#include "cohort/log/log_ring.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/envelope_codec.hpp"

namespace cohort::detail {

namespace {

using json = nlohmann::json;

json to_json(const child_status& c) {
  return {{"id", c.id}, {"kind", c.kind}, {"restart", c.restart}, {"state", c.state},
          {"restarts", c.restarts}, {"last_failure", c.last_failure}};
}

json to_json(const service_status& s, bool with_children) {
  json j = {{"name", s.name}, {"kind", s.kind}, {"state", s.state}, {"down_reason", s.down_reason},
            {"strategy", s.strategy}, {"uptime_s", s.uptime_s}, {"in_flight", s.in_flight},
            {"restarts", s.restarts}, {"activations", s.activations}, {"live_entities", s.live_entities},
            {"hibernated_entities", s.hibernated_entities}, {"hibernations", s.hibernations}, {"wakes", s.wakes},
            {"stuck_handlers", s.stuck_handlers}, {"last_failure", s.last_failure}, {"pid", s.pid > 0 ? json(s.pid) : json(nullptr)},
            {"resumes", s.resumes}, {"quarantines", s.quarantines}, {"events_published", s.events_published},
            {"events_delivered", s.events_delivered}, {"event_redeliveries", s.event_redeliveries},
            {"outbox_oldest_age_s", s.outbox_oldest_age_s}, {"pending_entities", s.pending_entities},
            {"events_logged", s.events_logged}, {"subscriptions", s.subscriptions}};
  // Worker restarts timed inside the node (failure -> the replacement's first message).
  auto us = [](double v) { return v < 0 ? json(nullptr) : json(v); };
  j["restart_latency"] = {{"timed", s.restarts_timed}, {"p50_us", us(s.restart_latency_p50_us)},
                          {"p99_us", us(s.restart_latency_p99_us)}, {"max_us", us(s.restart_latency_max_us)}};
  // Blocking services: the threads their workers run on (null for the others).
  j["blocking_threads"] = s.blocking_threads < 0 ? json(nullptr)
                                                 : json{{"now", s.blocking_threads}, {"started", s.blocking_threads_started}};
  if (with_children) {
    j["children"] = json::array();
    for (const auto& c : s.children) j["children"].push_back(to_json(c));
  }
  return j;
}

void reply_json(const request_ptr& req, const json& j) {
  auto bytes = json::to_msgpack(j);
  req->respond(std::string(bytes.begin(), bytes.end()));
}

result<bool> act(admin_operations& n, const std::string& method, const std::string& target) {
  auto slash = target.find('/');
  if (slash == std::string::npos) {
    if (method == "restart") return n.restart_service(target);
    if (method == "stop") return n.stop_service(target);
    if (method == "start") return n.start_service(target);
    return error_info{errc::bad_request, "crash needs SERVICE/CHILD"};
  }
  return n.command_child(target.substr(0, slash), target.substr(slash + 1), method);
}

const std::set<std::string> slow_verbs = {"restart", "stop", "start", "crash", "storage", "backup",
                                          "restore", "verify", "flush", "salvage", "logs", "trace",
                                          "cluster", "cluster_control"};

json to_json(const observability::span& s) {
  json attributes = json::object();
  for (const auto& [k, v] : s.attributes) attributes[k] = v;
  return {{"trace_id", s.trace_id}, {"span_id", s.span_id}, {"parent_span_id", s.parent_span_id},
          {"name", s.name}, {"service", s.service}, {"kind", observability::to_string(s.kind)},
          {"start_ns", s.start_ns}, {"end_ns", s.end_ns}, {"code", s.code}, {"attributes", std::move(attributes)}};
}

/// The same verb asked of each service process (process isolation): their
/// logs and spans are kept there. A process that does not answer is named in
/// `unreachable`, and the rest is returned.
void gather_from_processes(admin_operations& n, const std::string& verb, const json& args, const char* list,
                           json& out) {
  auto bytes = json::to_msgpack(args);
  for (const auto& ep : n.service_process_admins()) {
    try {
      client c(ep);
      call_options o;
      o.timeout = std::chrono::milliseconds(1000);
      auto r = c.call("admin", verb, std::string(bytes.begin(), bytes.end()), o);
      auto reply = r.ok() ? json::from_msgpack(r.payload.begin(), r.payload.end(), true, false) : json();
      if (!reply.is_object() || !reply.contains(list) || !reply[list].is_array()) {
        out["unreachable"].push_back(ep);
        continue;
      }
      for (auto& e : reply[list]) out[list].push_back(std::move(e));
    } catch (const std::exception&) {
      out["unreachable"].push_back(ep);
    }
  }
}

/// The verbs that wait for actors or the disk. Runs on the admin thread.
void run_slow_verb(admin_operations& n, const std::string& method, const json& args, request_ptr req) {
  const auto& h = req->header;
  auto arg = [&](const char* key) -> std::string {
    if (!args.is_object() || !args.contains(key) || !args[key].is_string()) return {};
    return args[key].get<std::string>();
  };
  (void)method;
  if (h.method == "restart" || h.method == "stop" || h.method == "start" || h.method == "crash") {
    auto target = arg("target");
    if (target.empty()) {
      req->fail({errc::bad_request, "'target' (SERVICE or SERVICE/CHILD) is required"});
      return;
    }
    auto done = act(n, h.method, target);
    if (!done) {
      req->fail(done.error());
      return;
    }
    reply_json(req, {{"ok", true}, {"target", target}, {"command", h.method}});
    return;
  }
  if (h.method == "storage") {
    auto st = n.storage_stats(arg("service"));
    if (!st) return (void)req->fail(st.error());
    reply_json(req, {{"service", arg("service")},
                     {"estimated_keys", st->estimated_keys},
                     {"size_on_disk_bytes", st->size_on_disk_bytes},
                     {"pending_compaction_bytes", st->pending_compaction_bytes},
                     {"running_compactions", st->running_compactions},
                     {"commits", st->commits},
                     {"committed_writes", st->committed_writes},
                     {"failed_commits", st->failed_commits},
                     {"recoveries", st->recoveries},
                     {"free_bytes", st->free_bytes},
                     {"write_error", st->write_error.empty() ? json(nullptr) : json(st->write_error)}});
    return;
  }
  if (h.method == "backup") {
    auto name = arg("name");
    if (name.empty()) return (void)req->fail({errc::bad_request, "'name' (the backup's name) is required"});
    auto done = n.backup(arg("service"), name);
    if (!done) return (void)req->fail(done.error());
    log::get("admin")->info("admin: backup {} of {} written to {}", name, arg("service"), *done);
    reply_json(req, {{"ok", true}, {"service", arg("service")}, {"name", name}, {"dir", *done}});
    return;
  }
  if (h.method == "restore") {
    auto done = n.restore(arg("service"), arg("name"));
    if (!done) return (void)req->fail(done.error());
    reply_json(req, {{"ok", true}, {"service", arg("service")}, {"name", arg("name")}});
    return;
  }
  if (h.method == "verify" || h.method == "flush") {
    auto done = h.method == "verify" ? n.verify_store(arg("service")) : n.flush_store(arg("service"));
    if (!done) return (void)req->fail(done.error());
    reply_json(req, {{"ok", true}, {"service", arg("service")}});
    return;
  }
  if (h.method == "logs") {
    log::query q;
    q.trace_id = arg("trace");
    q.service = arg("service");
    q.component = arg("component");
    if (args.is_object() && args.contains("since_us") && args["since_us"].is_number_integer())
      q.since_us = args["since_us"].get<std::int64_t>();
    if (args.is_object() && args.contains("limit") && args["limit"].is_number_unsigned())
      q.limit = std::min<std::size_t>(args["limit"].get<std::size_t>(), 100000);
    json out = {{"node", n.name()}, {"lines", json::array()}, {"unreachable", json::array()}};
    for (const auto& r : log::recent(q)) {
      json line = log::to_json(r);
      line["time_us"] = r.time_us;
      out["lines"].push_back(std::move(line));
    }
    gather_from_processes(n, "logs", args, "lines", out);
    return reply_json(req, out);
  }
  if (h.method == "trace") {
    auto id = arg("trace");
    if (id.empty()) return (void)req->fail({errc::bad_request, "'trace' (a trace id) is required"});
    json out = {{"node", n.name()}, {"spans", json::array()}, {"unreachable", json::array()}};
    for (const auto& s : n.spans(id)) out["spans"].push_back(to_json(s));
    gather_from_processes(n, "trace", args, "spans", out);
    return reply_json(req, out);
  }
  if (h.method == "cluster" || h.method == "cluster_control") {
    // Reads (status, shards) and changes (drain, undrain, rebalance, reassign): changes need control access.
    auto verb = arg("verb");
    const bool read = verb == "status" || verb == "shards";
    if (read != (h.method == "cluster"))
      return (void)req->fail({errc::bad_request, "cluster " + verb + " goes through admin." +
                                                     (read ? "cluster" : "cluster_control")});
    auto answer = n.cluster(verb, args.dump());
    if (!answer) return (void)req->fail(answer.error());
    return reply_json(req, json::parse(*answer));
  }
  if (h.method == "salvage") {
    auto report = n.salvage_store(arg("service"));
    if (!report) return (void)req->fail(report.error());
    reply_json(req, {{"ok", true}, {"service", arg("service")}, {"dropped", *report}});
    return;
  }
}

}  // namespace

admin_worker::admin_worker() : thread_([this] {
  log::name_this_thread("cohort-admin");
  run();
}) {}

admin_worker::~admin_worker() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool admin_worker::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    if (stopping_ || jobs_.size() >= max_queued) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void admin_worker::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything queued ran
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      log::get("admin")->error("admin: an operation threw: {}", e.what());
    } catch (...) {
      log::get("admin")->error("admin: an operation threw a non-standard exception");
    }
  }
}

namespace {
}  // namespace

json services_json(const std::vector<service_status>& services) {
  json out = json::array();
  for (const auto& s : services) out.push_back(to_json(s, false));
  return out;
}

void handle_admin(admin_operations& n, admin_worker& worker, request_ptr req) {
  const auto& h = req->header;
  if (h.service != "admin") {
    req->fail({errc::unknown_service, "no service named '" + h.service +
                                          "' at the admin endpoint (it serves only 'admin'; services are at the node's listen endpoints)"});
    return;
  }
  // Bounded first: nlohmann's msgpack reader recurses once per nesting level.
  if (auto bounded = decode_payload(req->payload, wire_limits{}); !bounded) {
    req->fail(bounded.error());
    return;
  }
  auto args = json::from_msgpack(req->payload.begin(), req->payload.end(), true, false);
  if (args.is_discarded() || !(args.is_null() || args.is_object())) {
    req->fail({errc::bad_request, "admin arguments must be a map or nil"});
    return;
  }
  auto arg = [&](const char* key) -> std::string {
    if (!args.is_object() || !args.contains(key) || !args[key].is_string()) return {};
    return args[key].get<std::string>();
  };
  if (h.method == "status" || h.method == "tree") {
    const bool tree = h.method == "tree";
    auto only = arg("service");
    json out = {{"node", n.name()}, {"uptime_s", n.uptime_s()}, {"allocator", allocator::name()},
                {"services", json::array()}};
    for (const auto& s : n.services())
      if (only.empty() || s.name == only) out["services"].push_back(to_json(s, tree));
    if (!only.empty() && out["services"].empty()) {
      req->fail({errc::unknown_service, "no service named '" + only + "' on this node"});
      return;
    }
    auto m = n.metrics();
    out["metrics"] = {{"requests", m.requests}, {"rejected", m.rejected}, {"malformed_frames", m.malformed_frames},
                      {"replies", m.replies}, {"expired_in_transit", m.expired_in_transit},
                      {"refused", m.refused}, {"refused_registrations", m.refused_registrations},
                      {"refused_connections", m.refused_connections}};
    reply_json(req, out);
    return;
  }
  if (h.method == "health") {
    auto why = n.not_ready();
    json out = {{"node", n.name()}, {"live", true}, {"ready", why.empty()}, {"not_ready", why}};
    reply_json(req, out);
    return;
  }
  if (h.method == "registry") {
    json out = {{"node", n.name()}, {"instances", json::array()}};
    for (const auto& i : n.registry())
      out["instances"].push_back({{"service", i.service}, {"endpoint", i.endpoint}, {"source", i.source},
                                  {"breaker", i.breaker}, {"outstanding", i.outstanding}, {"requests", i.requests},
                                  {"failures", i.failures}, {"last_seen_s", i.last_seen_s}, {"retries", i.retries},
                                  {"last_success_s", i.last_success_s < 0 ? json(nullptr) : json(i.last_success_s)}});
    reply_json(req, out);
    return;
  }
  // In process isolation a service's store lives in its process: ask it there.
  if ((h.method == "storage" || h.method == "backup" || h.method == "restore" || h.method == "verify" ||
       h.method == "flush" || h.method == "salvage") &&
      n.forward_admin(arg("service"), req))
    return;
  if (slow_verbs.count(h.method)) {
    // Who did what, for every action that changes something (the caller is
    // the operator's name from the trust list, never a name the request claims).
    if (h.method != "storage" && h.method != "verify" && h.method != "logs" && h.method != "trace" &&
        h.method != "cluster")
      log::get("admin")->info("admin: {} {} by operator '{}'", h.method, args.dump(-1, ' ', false, json::error_handler_t::replace),
                   h.caller.empty() ? "unknown" : h.caller);
    // Disk work and waits for actors: on the admin thread, never on the I/O thread.
    if (!worker.post([&n, method = h.method, args = std::move(args), req]() mutable {
          run_slow_verb(n, method, args, std::move(req));
        }))
      req->fail({errc::overloaded, "the admin endpoint has " + std::to_string(admin_worker::max_queued) +
                                       " operations queued; retry later"});
    return;
  }
  req->fail({errc::unknown_method,
             "admin has no method '" + h.method + "' (status, tree, health, logs, trace, restart, stop, start, crash, storage, backup, restore, verify, flush, salvage, registry, cluster, cluster_control)"});
}

}  // namespace cohort::detail
