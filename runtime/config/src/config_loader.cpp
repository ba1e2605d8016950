// Strict TOML -> node_config: every key is known, every type checked, every
// error names the key and its line.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "cohort/runtime/supervision.hpp"

#include "cohort/runtime/node_config.hpp"
#include "cohort/security/peer_reader.hpp"

namespace cohort {

namespace {

struct config_error {
  std::string message;
};

std::string where(const std::string& source, const toml::node& n) {
  return source + ":" + std::to_string(n.source().begin.line);
}

/// Reads the keys of one table, remembering which were consumed, so that any
/// key left over is reported as unknown.
class table_reader {
 public:
  table_reader(const toml::table& t, std::string path, const std::string& source)
      : t_(t), path_(std::move(path)), source_(source) {}

  template <class T>
  void read(const char* key, T& out) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    if constexpr (std::is_same_v<T, std::string>) {
      auto v = n->value<std::string>();
      if (!v || !n->is_string()) fail(*n, key, "a string");
      out = *v;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean()) fail(*n, key, "true or false");
      out = *n->value<bool>();
    } else {
      if (!n->is_integer()) fail(*n, key, "an integer");
      auto v = *n->value<std::int64_t>();
      if (v < 0) fail(*n, key, "a non-negative integer");
      out = static_cast<T>(v);
    }
  }

  void mark_seen(const char* key) { seen_.insert(key); }

  void read_ms(const char* key, std::chrono::milliseconds& out) {
    std::int64_t ms = out.count();
    read(key, ms);
    out = std::chrono::milliseconds(ms);
  }

  void read_strings(const char* key, std::vector<std::string>& out) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return;
    const toml::array* arr = n->as_array();
    if (!arr) fail(*n, key, "an array of strings");
    out.clear();
    for (const auto& e : *arr) {
      if (!e.is_string()) fail(e, key, "an array of strings");
      out.push_back(*e.value<std::string>());
    }
  }

  const toml::table* sub_table(const char* key) {
    seen_.insert(key);
    const toml::node* n = t_.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) fail(*n, key, "a table");
    return n->as_table();
  }

  void reject_unknown() const {
    for (const auto& [k, v] : t_)
      if (!seen_.count(std::string(k.str())))
        throw config_error{where(source_, v) + ": unknown key '" + qualified(std::string(k.str())) + "'"};
  }

  [[noreturn]] void fail(const toml::node& n, const std::string& key, const char* expected) const {
    throw config_error{where(source_, n) + ": '" + qualified(key) + "' must be " + expected};
  }

  [[nodiscard]] std::string qualified(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }

 private:
  const toml::table& t_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> seen_;
};

void read_limits(const toml::table& t, const std::string& source, wire_limits& l) {
  table_reader r(t, "limits", source);
  r.read("max_payload_bytes", l.max_payload_bytes);
  r.read("max_header_bytes", l.max_header_bytes);
  r.read("hard_frame_bytes", l.hard_frame_bytes);
  r.read("max_depth", l.max_depth);
  r.read("max_container", l.max_container);
  r.read("max_string", l.max_string);
  r.reject_unknown();
}

void beside_config(const std::string& source, std::string& path);

service_config read_service(const std::string& name, const toml::table& t, const std::string& source) {
  service_config s;
  s.name = name;
  table_reader r(t, "services." + name, source);
  r.read("plugin", s.plugin);
  beside_config(source, s.plugin);
  r.read("workers", s.workers);
  r.read("max_in_flight", s.max_in_flight);
  r.read_ms("entity_idle_ms", s.entity_idle);
  r.read_ms("entity_hibernate_after_ms", s.entity_hibernate_after);
  if (s.entity_hibernate_after.count() < 0)
    r.fail(*t.get("entity_hibernate_after_ms"), "entity_hibernate_after_ms", "a number of ms (0: never)");
  r.read("max_live_entities", s.max_live_entities);
  r.read_ms("handler_timeout_ms", s.handler_timeout);
  r.read("snapshot_every", s.snapshot_every);
  r.read_ms("idempotency_ttl_ms", s.idempotency_ttl);
  r.read_ms("resume_every_ms", s.resume_every);
  if (s.resume_every.count() <= 0) r.fail(*t.get("resume_every_ms"), "resume_every_ms", "a positive number");
  std::string strategy(to_string(s.supervision.strategy));
  r.read("strategy", strategy);
  if (auto parsed = parse_restart_strategy(strategy); parsed && *parsed != restart_strategy::simple_one_for_one)
    s.supervision.strategy = *parsed;
  else
    r.fail(*t.get("strategy"), "strategy", "one of one_for_one, one_for_all, rest_for_one");
  r.read("max_restarts", s.supervision.intensity.max_restarts);
  r.read_ms("restart_period_ms", s.supervision.intensity.period);
  s.intensity_set = t.contains("max_restarts") || t.contains("restart_period_ms");
  r.read("quarantine_after", s.quarantine_after);
  r.read_ms("quarantine_window_ms", s.quarantine_window);
  r.read_ms("quarantine_ms", s.quarantine_for);
  r.read_ms("backoff_min_ms", s.supervision.backoff.min);
  r.read_ms("backoff_max_ms", s.supervision.backoff.max);
  r.read_ms("backoff_reset_ms", s.supervision.backoff.reset_after);
  if (const auto* f = t.get("backoff_random_factor")) {
    if (!f->is_number()) r.fail(*f, "backoff_random_factor", "a number");
    s.supervision.backoff.random_factor = f->value<double>().value_or(0.2);
  }
  r.mark_seen("backoff_random_factor");
  std::string restart(to_string(s.worker_restart));
  r.read("restart", restart);
  if (auto parsed = parse_restart_type(restart))
    s.worker_restart = *parsed;
  else
    r.fail(*t.get("restart"), "restart", "one of permanent, transient, temporary");
  std::string on_stuck = "report";
  r.read("on_stuck", on_stuck);
  if (on_stuck != "report" && on_stuck != "replace") r.fail(*t.get("on_stuck"), "on_stuck", "\"report\" or \"replace\"");
  s.replace_stuck = on_stuck == "replace";
  if (auto valid = validate(s.supervision, {}); !valid)
    throw config_error{source + ": services." + name + ": " + valid.error().code + ": " + valid.error().message};
  std::string mode = "sync";
  r.read("durability", mode);
  if (mode == "sync")
    s.store_durability = durability::sync;
  else if (mode == "async")
    s.store_durability = durability::async;
  else
    r.fail(*t.get("durability"), "durability", "\"sync\" or \"async\"");
  if (const auto* ev = r.sub_table("events")) {
    table_reader e(*ev, "services." + name + ".events", source);
    e.read("log", s.events.enabled);
    e.read("retain_events", s.events.retain_events);
    e.read_ms("retain_ms", s.events.retain);
    e.read("max_subscribers", s.events.max_subscribers);
    e.read_ms("idle_timeout_ms", s.events.idle_timeout);
    if (s.events.retain_events == 0) e.fail(*ev->get("retain_events"), "retain_events", "at least 1");
    if (s.events.retain.count() <= 0) e.fail(*ev->get("retain_ms"), "retain_ms", "a positive number");
    if (s.events.idle_timeout.count() < 1000) e.fail(*ev->get("idle_timeout_ms"), "idle_timeout_ms", "at least 1000");
    e.reject_unknown();
  }
  if (s.workers == 0) r.fail(*t.get("workers"), "workers", "at least 1");
  if (s.max_in_flight == 0) r.fail(*t.get("max_in_flight"), "max_in_flight", "at least 1");
  r.reject_unknown();
  return s;
}

/// A relative file name in a config (keys, certificates) is taken from the config file's folder.
void beside_config(const std::string& source, std::string& path) {
  const auto base = std::filesystem::path(source).parent_path();
  if (!path.empty() && std::filesystem::path(path).is_relative() && !base.empty()) path = (base / path).string();
}

/// Array of tables at `key` ([[http.token]]): each table to `each`.
template <class F>
void read_tables(const toml::table& t, table_reader& r, const char* key, F each) {
  r.mark_seen(key);
  const toml::node* n = t.get(key);
  if (!n) return;
  const auto* arr = n->as_array();
  if (!arr) r.fail(*n, key, "an array of tables");
  for (const auto& e : *arr) {
    if (!e.is_table()) r.fail(e, key, "an array of tables");
    each(*e.as_table());
  }
}

void read_http_auth(const toml::table& http, table_reader& r, const std::string& source,
                    security::http_security_config& auth) {
  if (const auto* f = http.get("rate_per_s")) {
    if (!f->is_number() || f->value<double>().value_or(-1) < 0) r.fail(*f, "rate_per_s", "a non-negative number");
    auth.rate_per_s = f->value<double>().value_or(0);
  }
  r.mark_seen("rate_per_s");
  if (const auto* f = http.get("rate_burst")) {
    if (!f->is_number() || f->value<double>().value_or(-1) < 1) r.fail(*f, "rate_burst", "a number of at least 1");
    auth.rate_burst = f->value<double>().value_or(1);
  }
  r.mark_seen("rate_burst");
  r.read_strings("cors_origins", auth.cors_origins);
  read_tables(http, r, "token", [&](const toml::table& t) {
    table_reader tr(t, "http.token", source);
    security::api_token tok;
    tr.read("name", tok.name);
    tr.read("sha256", tok.sha256);
    tr.read_strings("roles", tok.roles);
    tr.reject_unknown();
    if (tok.name.empty()) throw config_error{where(source, t) + ": 'http.token' needs a name"};
    if (tok.sha256.size() != 64 || tok.sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw config_error{where(source, t) + ": http.token '" + tok.name +
                         "': 'sha256' must be 64 lower-case hex digits (printf %s TOKEN | sha256sum)"};
    auth.tokens.push_back(std::move(tok));
  });
  read_tables(http, r, "route", [&](const toml::table& t) {
    table_reader tr(t, "http.route", source);
    security::route_rule rule;
    tr.read("path", rule.path);
    tr.read("access", rule.access);
    tr.reject_unknown();
    if (rule.path.empty() || rule.path.front() != '/') throw config_error{where(source, t) + ": 'http.route.path' must start with '/'"};
    if (rule.access != "public" && rule.access != "token" && (rule.access.rfind("role:", 0) != 0 || rule.access.size() < 6))
      throw config_error{where(source, t) + ": 'http.route.access' must be \"public\", \"token\" or \"role:NAME\""};
    auth.routes.push_back(std::move(rule));
  });
  if (const auto* jwt = r.sub_table("jwt")) {
    table_reader jr(*jwt, "http.jwt", source);
    jr.read("algorithm", auth.jwt.algorithm);
    jr.read("key_file", auth.jwt.key_file);
    jr.read("issuer", auth.jwt.issuer);
    jr.read("audience", auth.jwt.audience);
    jr.read("roles_claim", auth.jwt.roles_claim);
    std::int64_t leeway = auth.jwt.leeway.count();
    jr.read("leeway_s", leeway);
    auth.jwt.leeway = std::chrono::seconds(leeway);
    jr.reject_unknown();
    if (auth.jwt.algorithm != "HS256" && auth.jwt.algorithm != "RS256")
      jr.fail(jwt->get("algorithm") ? *jwt->get("algorithm") : *jwt, "algorithm", "\"HS256\" or \"RS256\"");
    if (auth.jwt.key_file.empty()) throw config_error{where(source, *jwt) + ": 'http.jwt' needs key_file"};
    beside_config(source, auth.jwt.key_file);
  }
}

node_config read_config(const toml::table& root, const std::string& source,
                        const std::vector<std::string>& known) {
  node_config cfg;
  table_reader top(root, "", source);
  if (auto* node = top.sub_table("node")) {
    table_reader r(*node, "node", source);
    r.read("name", cfg.name);
    r.read("admin", cfg.admin);
    r.read("instance", cfg.instance);
    r.read_strings("register_with", cfg.register_with);
    r.read("advertise", cfg.advertise);
    r.read_ms("heartbeat_ms", cfg.heartbeat);
    r.read_ms("peer_heartbeat_ms", cfg.peer_heartbeat);
    r.read_ms("peer_timeout_ms", cfg.peer_timeout);
    if (cfg.peer_heartbeat.count() > 0 && cfg.peer_timeout <= cfg.peer_heartbeat)
      r.fail(*node->get(node->contains("peer_timeout_ms") ? "peer_timeout_ms" : "peer_heartbeat_ms"), "peer_timeout_ms",
             "longer than peer_heartbeat_ms");
    if (cfg.heartbeat.count() <= 0) r.fail(*node->get("heartbeat_ms"), "heartbeat_ms", "positive");
    r.read("isolation", cfg.isolation);
    if (cfg.isolation != "none" && cfg.isolation != "process")
      r.fail(*node->get("isolation"), "isolation", "\"none\" or \"process\"");
    r.read("allow_fault_injection", cfg.allow_fault_injection);
    r.read_strings("listen", cfg.listen);
    r.read("data_dir", cfg.data_dir);
    r.read("backup_root", cfg.backup_root);
    r.read_ms("drain_timeout_ms", cfg.drain_timeout);
    r.read_ms("default_deadline_ms", cfg.default_deadline);
    r.read_ms("max_clock_skew_ms", cfg.max_clock_skew);
    r.read("scheduler_threads", cfg.scheduler_threads);
    r.read("io_spin_us", cfg.io_spin_us);
    if (cfg.io_spin_us < 0 || cfg.io_spin_us > 100000)
      r.fail(*node->get("io_spin_us"), "io_spin_us", "between 0 and 100000");
    r.read("store_memory_mb", cfg.store_memory_mb);
    if (cfg.store_memory_mb > (std::size_t{1} << 20))
      r.fail(*node->get("store_memory_mb"), "store_memory_mb", "between 0 and 1048576");
    r.read("scheduler_policy", cfg.scheduler_policy);
    if (const auto& known = scheduler_policies();
        std::find(known.begin(), known.end(), cfg.scheduler_policy) == known.end())
      r.fail(*node->get("scheduler_policy"), "scheduler_policy", "\"affinity\", \"sharing\" or \"stealing\"");
    r.reject_unknown();
  }
  if (auto* limits = top.sub_table("limits")) read_limits(*limits, source, cfg.limits);
  if (auto* http = top.sub_table("http")) {
    table_reader r(*http, "http", source);
    r.read("listen", cfg.http.listen);
    r.read("max_body_bytes", cfg.http.max_body_bytes);
    r.read_ms("read_timeout_ms", cfg.http.read_timeout);
    r.read("max_in_flight", cfg.http.max_in_flight);
    r.read("tls_cert_file", cfg.http.tls_cert_file);
    r.read("tls_key_file", cfg.http.tls_key_file);
    read_http_auth(*http, r, source, cfg.http.auth);
    beside_config(source, cfg.http.tls_cert_file);
    beside_config(source, cfg.http.tls_key_file);
    if (cfg.http.tls_cert_file.empty() != cfg.http.tls_key_file.empty())
      r.fail(*http->get(cfg.http.tls_cert_file.empty() ? "tls_key_file" : "tls_cert_file"), "tls_cert_file",
             "set together with tls_key_file");
    r.reject_unknown();
  }
  if (auto* c = top.sub_table("cluster")) {
    table_reader r(*c, "cluster", source);
    r.read_strings("etcd", cfg.cluster.etcd);
    r.read("name", cfg.cluster.name);
    r.read("advertise", cfg.cluster.advertise);
    r.read_ms("lease_ttl_ms", cfg.cluster.lease_ttl);
    r.read("shards", cfg.cluster.shards);
    r.read_strings("services", cfg.cluster.services);
    r.read_ms("poll_ms", cfg.cluster.poll);
    r.read_ms("hold_timeout_ms", cfg.cluster.hold_timeout);
    r.read("transfer_chunk_bytes", cfg.cluster.transfer_chunk_bytes);
    if (cfg.cluster.etcd.empty()) throw config_error{where(source, *c) + ": [cluster] needs etcd (its client URLs)"};
    for (const auto& e : cfg.cluster.etcd)
      if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
        r.fail(*c->get("etcd"), "etcd", "client URLs starting with http:// or https://");
    if (cfg.cluster.lease_ttl < std::chrono::milliseconds(2000))
      r.fail(*c->get("lease_ttl_ms"), "lease_ttl_ms", "at least 2000");
    if (cfg.cluster.shards < 1 || cfg.cluster.shards > 4096) r.fail(*c->get("shards"), "shards", "between 1 and 4096");
    if (cfg.cluster.poll.count() <= 0 || cfg.cluster.poll * 4 > cfg.cluster.lease_ttl)
      r.fail(*c->get("poll_ms"), "poll_ms", "positive and at most a quarter of lease_ttl_ms");
    if (cfg.cluster.transfer_chunk_bytes < 1024 || cfg.cluster.transfer_chunk_bytes > 4u << 20)
      r.fail(*c->get("transfer_chunk_bytes"), "transfer_chunk_bytes", "between 1024 and 4194304");
    if (cfg.cluster.name.empty() || cfg.cluster.name.find('/') != std::string::npos)
      r.fail(*c->get("name"), "name", "a name without '/'");
    r.reject_unknown();
  }
  if (auto* m = top.sub_table("metrics")) {
    table_reader r(*m, "metrics", source);
    r.read("listen", cfg.metrics_listen);
    r.read("requests", cfg.request_metrics);
    r.reject_unknown();
  }
  if (auto* lg = top.sub_table("log")) {
    table_reader r(*lg, "log", source);
    std::string format = cfg.log.output == log::format::json ? "json" : "text";
    r.read("format", format);
    if (format != "text" && format != "json") r.fail(*lg->get("format"), "format", "\"text\" or \"json\"");
    cfg.log.output = format == "json" ? log::format::json : log::format::text;
    r.read("level", cfg.log.level);
    if (!log::is_level(cfg.log.level)) r.fail(*lg->get("level"), "level", "trace, debug, info, warn, error, critical or off");
    r.read("access", cfg.log.access);
    r.read("ring_lines", cfg.log.ring_lines);
    if (auto* levels = r.sub_table("levels")) {
      for (const auto& [component, level] : *levels) {
        auto v = level.value<std::string>();
        if (!level.is_string() || !log::is_level(*v))
          throw config_error{where(source, level) + ": log.levels." + std::string(component.str()) +
                             " must be trace, debug, info, warn, error, critical or off"};
        cfg.log.levels[std::string(component.str())] = *v;
      }
    }
    r.reject_unknown();
  }
  if (auto* tr = top.sub_table("trace")) {
    table_reader r(*tr, "trace", source);
    r.read("enabled", cfg.trace.enabled);
    r.mark_seen("sample");
    if (const auto* n = tr->get("sample")) {
      auto v = n->value<double>();
      if (!v || !(n->is_floating_point() || n->is_integer()) || *v < 0 || *v > 1)
        r.fail(*n, "sample", "a number from 0 to 1");
      cfg.trace.sample = *v;
    }
    r.read("otlp_endpoint", cfg.trace.otlp_endpoint);
    if (!cfg.trace.otlp_endpoint.empty() && cfg.trace.otlp_endpoint.rfind("http://", 0) != 0 &&
        cfg.trace.otlp_endpoint.rfind("https://", 0) != 0)
      r.fail(*tr->get("otlp_endpoint"), "otlp_endpoint", "an http:// or https:// address");
    r.read("export_logs", cfg.trace.export_logs);
    r.read("keep_spans", cfg.trace.keep_spans);
    r.read("export_queue", cfg.trace.export_queue);
    r.read_ms("export_every_ms", cfg.trace.export_every);
    r.read_ms("export_timeout_ms", cfg.trace.export_timeout);
    if (cfg.trace.export_every.count() <= 0) r.fail(*tr->get("export_every_ms"), "export_every_ms", "positive");
    if (cfg.trace.export_timeout.count() <= 0) r.fail(*tr->get("export_timeout_ms"), "export_timeout_ms", "positive");
    r.reject_unknown();
  }
  if (auto* sec = top.sub_table("security")) {
    table_reader r(*sec, "security", source);
    r.read("key_file", cfg.security.key_file);
    r.read("trust_file", cfg.security.trust_file);
    r.read("keyless_loopback", cfg.security.keyless_loopback);
    r.read("insecure", cfg.security.insecure);
    r.read("local_operator", cfg.security.local_operator);
    r.read_ms("reload_ms", cfg.security.reload_every);
    if (cfg.security.reload_every.count() <= 0) r.fail(*sec->get("reload_ms"), "reload_ms", "positive");
    r.mark_seen("peer");
    const auto base = std::filesystem::path(source).parent_path().string();
    beside_config(source, cfg.security.key_file);
    beside_config(source, cfg.security.trust_file);
    if (const auto* peers = sec->get("peer")) {
      if (!peers->is_array()) r.fail(*peers, "peer", "an array of tables ([[security.peer]])");
      auto read = security::read_peers(*peers->as_array(), source, "security.peer", base);
      if (!read) throw config_error{read.error().message};
      cfg.security.peers = std::move(*read);
    }
    r.reject_unknown();
  }
  std::set<std::string> names;
  if (auto* services = top.sub_table("services")) {
    for (const auto& [k, v] : *services) {
      std::string name(k.str());
      // A service from a plugin is known once its library is loaded (the
      // program checks that the library provides it).
      const bool from_plugin = v.is_table() && v.as_table()->contains("plugin");
      if (!from_plugin && std::find(known.begin(), known.end(), name) == known.end())
        throw config_error{where(source, v) + ": unknown service 'services." + name + "' (this build has: " +
                           [&] {
                             std::string all;
                             for (const auto& n : known) all += (all.empty() ? "" : ", ") + n;
                             return all;
                           }() + ")"};
      if (!v.is_table()) throw config_error{where(source, v) + ": 'services." + name + "' must be a table"};
      cfg.services.push_back(read_service(name, *v.as_table(), source));
      names.insert(name);
    }
  }
  if (auto* remotes = top.sub_table("remote")) {
    for (const auto& [k, v] : *remotes) {
      std::string name(k.str());
      if (!v.is_table()) throw config_error{where(source, v) + ": 'remote." + name + "' must be a table"};
      remote_service_config rc;
      rc.name = name;
      const auto& t = *v.as_table();
      table_reader r(t, "remote." + name, source);
      std::string one;
      r.read("endpoint", one);
      r.read_strings("endpoints", rc.endpoints);
      if (!one.empty()) rc.endpoints.insert(rc.endpoints.begin(), one);
      std::string balance = "round_robin";
      r.read("balance", balance);
      if (balance == "round_robin")
        rc.balance = balance_policy::round_robin;
      else if (balance == "least_outstanding")
        rc.balance = balance_policy::least_outstanding;
      else if (balance == "consistent_hash")
        rc.balance = balance_policy::consistent_hash;
      else
        r.fail(*t.get("balance"), "balance", "one of round_robin, least_outstanding, consistent_hash");
      r.read_ms("attempt_timeout_ms", rc.attempt_timeout);
      r.read("max_retries", rc.max_retries);
      r.read("max_in_flight", rc.max_in_flight);
      r.read("required", rc.required);
      r.read("breaker_failures", rc.breaker_failures);
      r.read_ms("breaker_cooldown_ms", rc.breaker_cooldown);
      if (const auto* f = t.get("retry_budget")) {
        if (!f->is_number()) r.fail(*f, "retry_budget", "a number");
        rc.retry_budget = f->value<double>().value_or(0.1);
      }
      r.mark_seen("retry_budget");
      r.reject_unknown();
      if (rc.breaker_failures == 0) r.fail(*t.get("breaker_failures"), "breaker_failures", "at least 1");
      if (rc.endpoints.empty())
        throw config_error{where(source, v) + ": 'remote." + name + "' needs 'endpoint' or 'endpoints'"};
      if (names.count(name))
        throw config_error{where(source, v) + ": service '" + name + "' is both hosted here and remote"};
      cfg.remotes.push_back(rc);
    }
  }
  top.reject_unknown();
  if (cfg.listen.empty()) throw config_error{source + ": 'node.listen' must name at least one endpoint"};
  return cfg;
}

}  // namespace

result<node_config> parse_node_config(std::string_view text, const std::string& source,
                                      const std::vector<std::string>& known) {
  try {
    auto root = toml::parse(text, source);
    return read_config(root, source, known);
  } catch (const toml::parse_error& e) {
    return error_info{errc::bad_request, source + ":" + std::to_string(e.source().begin.line) +
                                             ": invalid TOML: " + std::string(e.description())};
  } catch (const config_error& e) {
    return error_info{errc::bad_request, e.message};
  }
}

result<node_config> load_node_config(const std::string& path, const std::vector<std::string>& known) {
  std::ifstream in(path);
  if (!in) return error_info{errc::bad_request, "cannot read config file '" + path + "'"};
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = parse_node_config(ss.str(), path, known);
  if (cfg) cfg->source_path = std::filesystem::absolute(path).string();
  return cfg;
}

}  // namespace cohort
