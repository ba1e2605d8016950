// cohortctl: the operator's tool. Talks to a node's admin endpoint with the
// Cohort protocol; prints tables, or JSON with --json.
#include <filesystem>
#include <iomanip>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cohort/security/client_keys.hpp"
#include "cohort/transport/client.hpp"

namespace {

using json = nlohmann::json;

std::string cell(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(1) << v.get<double>();
    return os.str();
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// Prints rows as an aligned table with a header line.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size(); ++i)
      std::cout << std::left << std::setw(static_cast<int>(i + 1 == r.size() ? 0 : width[i] + 2)) << r[i];
    std::cout << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

void print_status(const json& j) {
  std::cout << "node " << cell(j["node"]) << ", up " << cell(j["uptime_s"]) << " s";
  if (j.contains("allocator")) std::cout << ", on " << cell(j["allocator"]);
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : j["services"])
    rows.push_back({cell(s["name"]), cell(s["kind"]), cell(s["state"]), cell(s["uptime_s"]), cell(s["restarts"]),
                    cell(s["in_flight"]), s["state"] == "down" ? cell(s["down_reason"]) : cell(s["last_failure"])});
  print_table({"SERVICE", "KIND", "STATE", "UPTIME_S", "RESTARTS", "IN_FLIGHT", "LAST FAILURE / DOWN REASON"}, rows);
}

void print_tree(const json& j) {
  std::cout << "node " << cell(j["node"]) << "\n";
  for (const auto& s : j["services"]) {
    std::cout << "└─ " << cell(s["name"]) << " [" << cell(s["strategy"]) << ", " << cell(s["state"])
              << ", restarts " << cell(s["restarts"]);
    if (s["kind"] == "entities") std::cout << ", live entities " << cell(s["live_entities"]);
    if (s.value("resumes", 0) > 0) std::cout << ", resumes " << cell(s["resumes"]);
    if (s.value("quarantines", 0) > 0) std::cout << ", quarantined keys " << cell(s["quarantines"]);
    if (s.value("events_published", 0) > 0)
      std::cout << ", events published " << cell(s["events_published"]) << " delivered " << cell(s["events_delivered"])
                << " redelivered " << cell(s["event_redeliveries"]);
    if (s.value("subscriptions", -1) >= 0)
      std::cout << ", event log " << cell(s["events_logged"]) << " events, " << cell(s["subscriptions"]) << " subscribers";
    std::cout << "]\n";
    const auto& children = s["children"];
    for (std::size_t i = 0; i < children.size(); ++i) {
      const auto& c = children[i];
      std::cout << "   " << (i + 1 == children.size() ? "└─ " : "├─ ") << cell(c["id"]) << "  " << cell(c["kind"])
                << ", " << cell(c["restart"]) << ", " << cell(c["state"]) << ", restarts " << cell(c["restarts"]);
      if (!c["last_failure"].get<std::string>().empty()) std::cout << ", last failure: " << cell(c["last_failure"]);
      std::cout << "\n";
    }
  }
}

/// "90s", "5m", "2h", "1d" before now, or a Unix time in ms: the time in Unix µs.
std::optional<std::int64_t> parse_since(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(s, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (n < 0) return std::nullopt;
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  auto unit = s.substr(used);
  if (unit.empty()) return n * 1000;  // Unix ms
  long long per = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
  if (per == 0) return std::nullopt;
  return now_us - n * per * 1000000;
}

std::string clock_time(std::int64_t us) {
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%06d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us % 1000000));
  return buf;
}

/// One log line for a terminal: time, node, level, component, [service actor], message, context.
void print_log_line(const json& l) {
  std::cout << clock_time(l.value("time_us", std::int64_t{0})) << " " << l.value("node", "") << " "
            << l.value("level", "") << " " << l.value("component", "");
  if (l.contains("service")) std::cout << " [" << cell(l["service"]) << (l.contains("actor") ? " " + cell(l["actor"]) : "") << "]";
  std::cout << " " << cell(l.value("msg", json(""))) ;
  for (const auto& [k, v] : l.items())
    if (k != "time" && k != "time_us" && k != "node" && k != "level" && k != "component" && k != "service" &&
        k != "actor" && k != "msg")
      std::cout << " " << k << "=" << cell(v);
  std::cout << "\n";
}

/// The waterfall of one trace: each span under its parent, offset from the
/// trace's start, duration, status; spans whose parent no node kept start a branch.
void print_waterfall(const std::string& trace_id, const std::vector<json>& spans, std::size_t nodes) {
  if (spans.empty()) {
    std::cout << "trace " << trace_id << ": no node asked keeps a span of it\n";
    return;
  }
  std::map<std::string, std::vector<const json*>> children;
  std::set<std::string> ids;
  for (const auto& s : spans) ids.insert(s["span_id"].get<std::string>());
  std::vector<const json*> roots;
  std::uint64_t begin = UINT64_MAX, end = 0;
  for (const auto& s : spans) {
    begin = std::min(begin, s["start_ns"].get<std::uint64_t>());
    end = std::max(end, s["end_ns"].get<std::uint64_t>());
    auto parent = s.value("parent_span_id", "");
    if (parent.empty() || !ids.count(parent))
      roots.push_back(&s);
    else
      children[parent].push_back(&s);
  }
  auto by_start = [](const json* a, const json* b) { return (*a)["start_ns"].get<std::uint64_t>() < (*b)["start_ns"].get<std::uint64_t>(); };
  std::sort(roots.begin(), roots.end(), by_start);
  for (auto& [_, list] : children) std::sort(list.begin(), list.end(), by_start);
  std::cout << "trace " << trace_id << ": " << spans.size() << " spans from " << nodes << " node(s), "
            << std::fixed << std::setprecision(3) << (end - begin) / 1e6 << " ms\n";
  std::vector<std::vector<std::string>> rows;
  std::function<void(const json*, const std::string&, bool, bool)> walk = [&](const json* s, const std::string& indent,
                                                                          bool last, bool root) {
    std::ostringstream off, dur;
    off << std::fixed << std::setprecision(3) << ((*s)["start_ns"].get<std::uint64_t>() - begin) / 1e6;
    dur << std::fixed << std::setprecision(3)
        << ((*s)["end_ns"].get<std::uint64_t>() - (*s)["start_ns"].get<std::uint64_t>()) / 1e6;
    const auto& attrs = (*s)["attributes"];
    std::string where = cell((*s)["service"]) + " @ " + (attrs.contains("cohort.node") ? cell(attrs["cohort.node"]) : "?");
    rows.push_back({off.str(), dur.str(), cell((*s)["code"]),
                    indent + (root ? "" : (last ? "└─ " : "├─ ")) + cell((*s)["name"]) + "  (" + cell((*s)["kind"]) + ", " + where + ")"});
    auto it = children.find((*s)["span_id"].get<std::string>());
    if (it == children.end()) return;
    std::string next = indent + (root ? "" : (last ? "   " : "│  "));
    for (std::size_t i = 0; i < it->second.size(); ++i) walk(it->second[i], next, i + 1 == it->second.size(), false);
  };
  for (const auto* r : roots) walk(r, "", true, true);
  print_table({"START_MS", "DURATION_MS", "STATUS", "SPAN"}, rows);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cohortctl: inspect and steer a Cohort node's supervision tree"};
  app.require_subcommand(1);
  std::vector<std::string> endpoints{"tcp://127.0.0.1:7401"};
  bool as_json = false;
  int timeout_ms = 5000;
  app.add_option("--endpoint", endpoints,
                 "the node's admin endpoint; 'logs' and 'trace' take several (repeat the option) and merge what each "
                 "node keeps")
      ->capture_default_str();
  app.add_flag("--json", as_json, "print the reply as JSON");
  app.add_option("--timeout", timeout_ms, "deadline in milliseconds")->capture_default_str()->check(CLI::Range(1, 600000));
  cohort::security::key_choice keys;
  keys.own_name = "operator";
  keys.keyless_loopback_ok = true;  // an insecure node on this host has no keys; a secure one refuses the handshake
  app.add_option("--keys", keys.keys_dir,
                 "folder with operator.key and node.key.pub (default: $COHORT_KEYS, else cohort-data/keys: the local "
                 "node's own, made on its first start)");
  app.add_option("--key", keys.key_file, "the operator's key file (default: KEYS/operator.key)");
  app.add_option("--server-key", keys.server_key, "the node's public key, Z85 or a file (default: KEYS/node.key.pub)");

  std::string service, target, backup_dir;
  app.add_subcommand("status", "services, state, uptime, restarts, last failure");
  auto* tree = app.add_subcommand("tree", "the supervision tree with each child's state and restarts");
  tree->add_option("service", service, "only this service");
  for (const char* cmd : {"restart", "stop", "start", "crash"}) {
    auto* sub = app.add_subcommand(cmd, std::string(cmd) + " SERVICE or SERVICE/CHILD" +
                                            (std::string(cmd) == "crash" ? " (fault injection; the node must allow it)" : ""));
    sub->add_option("target", target, "SERVICE or SERVICE/CHILD")->required();
  }
  app.add_subcommand("registry", "remote services this node routes to: instances, health, in-flight load");
  app.add_subcommand("health", "ready or not, and why (exit 0 when ready, 1 when not): the same as GET /health/ready");
  std::string trace_id, log_service, log_component, since;
  std::size_t log_limit = 1000;
  auto* logs = app.add_subcommand("logs", "recent log lines of every node given (--endpoint, repeatable) and of their "
                                          "service processes, merged by time");
  logs->add_option("--trace", trace_id, "only the lines of this trace");
  logs->add_option("--service", log_service, "only the lines of this service");
  logs->add_option("--component", log_component, "only this component (store, http, security, net, access, ...)");
  logs->add_option("--since", since, "only lines since: 90s, 5m, 2h, 1d ago, or a Unix time in ms");
  logs->add_option("--limit", log_limit, "at most this many lines from each node (newest)")->capture_default_str();
  auto* trace = app.add_subcommand("trace", "the spans of one trace, gathered from every node given (--endpoint, "
                                            "repeatable) and their service processes, as a waterfall");
  trace->add_option("trace_id", trace_id, "the trace id (32 hex digits: X-Trace-Id, traceparent, a log line)")->required();
  std::vector<std::string> storage_args;
  auto* storage = app.add_subcommand(
      "storage",
      "storage SERVICE: the store's keys, size, free disk, write state; storage verify SERVICE: check every block; "
      "storage flush SERVICE: memory tables to table files; storage salvage SERVICE: open a damaged store accepting "
      "the loss of its log after the damage");
  storage->add_option("args", storage_args, "[verify|flush|salvage] SERVICE")->required()->expected(1, 2);
  auto* backup = app.add_subcommand("backup", "write a consistent checkpoint of a service's store, while it serves, "
                                              "as backup NAME under the node's backup root");
  backup->add_option("service", service, "entity service")->required();
  backup->add_option("name", backup_dir, "the backup's name (a plain file name)")->required();
  auto* restore = app.add_subcommand("restore", "replace a service's store with backup NAME (the service restarts on it)");
  restore->add_option("service", service, "entity service")->required();
  restore->add_option("name", backup_dir, "the backup's name")->required();
  std::vector<std::string> cluster_args;
  std::string reassign_to;
  bool accept_data_loss = false;
  auto* cluster = app.add_subcommand(
      "cluster", "cluster status: nodes, leases, coordinator, shards per owner, handoffs; cluster shards: every "
                 "shard's owner and epoch; cluster drain|undrain NODE: move its shards away (a planned leave) or "
                 "stop that; cluster rebalance: plan placement now; cluster reassign SERVICE SHARD --to NODE "
                 "--accept-data-loss: give a lost node's shard to another, without its data (docs/cluster.md)");
  cluster->add_option("args", cluster_args, "status | shards | drain NODE | undrain NODE | rebalance | reassign SERVICE SHARD")
      ->required()->expected(1, 3);
  cluster->add_option("--to", reassign_to, "reassign: the node that takes the shard");
  cluster->add_flag("--accept-data-loss", accept_data_loss, "reassign: say that the shard's data is lost");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::string method = app.get_subcommands().front()->get_name();
  if (method == "storage") {
    if (storage_args.size() == 2) {
      method = storage_args[0];
      if (method != "verify" && method != "flush" && method != "salvage") {
        std::cerr << "error: usage: storage [verify|flush|salvage] SERVICE (not '" << method << "')\n";
        return 2;
      }
    }
    service = storage_args.back();
  }
  json args = json::object();
  std::string cluster_verb;
  if (method == "cluster") {
    cluster_verb = cluster_args[0];
    const bool read = cluster_verb == "status" || cluster_verb == "shards";
    if (!read && cluster_verb != "drain" && cluster_verb != "undrain" && cluster_verb != "rebalance" &&
        cluster_verb != "reassign") {
      std::cerr << "error: usage: cluster status|shards|drain NODE|undrain NODE|rebalance|reassign SERVICE SHARD\n";
      return 2;
    }
    args["verb"] = cluster_verb;
    if ((cluster_verb == "drain" || cluster_verb == "undrain") && cluster_args.size() == 2) args["node"] = cluster_args[1];
    if (cluster_verb == "reassign") {
      if (cluster_args.size() != 3 || reassign_to.empty()) {
        std::cerr << "error: usage: cluster reassign SERVICE SHARD --to NODE --accept-data-loss\n";
        return 2;
      }
      args["service"] = cluster_args[1];
      try {
        args["shard"] = std::stoi(cluster_args[2]);
      } catch (...) {
        std::cerr << "error: usage: SHARD is a number\n";
        return 2;
      }
      args["node"] = reassign_to;
      args["accept_data_loss"] = accept_data_loss;
    }
    if (!read) method = "cluster_control";
  }
  if (!service.empty()) args["service"] = service;
  if (!target.empty()) args["target"] = target;
  if (!backup_dir.empty()) args["name"] = backup_dir;
  auto bytes = json::to_msgpack(args);

  if (args.is_object()) {
    if (!trace_id.empty()) args["trace"] = trace_id;
    if (method == "logs") {
      if (!log_service.empty()) args["service"] = log_service;
      if (!log_component.empty()) args["component"] = log_component;
      args["limit"] = log_limit;
      if (!since.empty()) {
        auto t = parse_since(since);
        if (!t) {
          std::cerr << "error: usage: --since '" << since << "': use 90s, 5m, 2h, 1d or a Unix time in ms\n";
          return 2;
        }
        args["since_us"] = *t;
      }
    }
  }
  bytes = json::to_msgpack(args);
  const bool gathers = method == "logs" || method == "trace";
  if (endpoints.size() > 1 && !gathers) {
    std::cerr << "error: usage: '" << method << "' talks to one node; only logs and trace take several --endpoint\n";
    return 2;
  }
  // Asks one node; prints why not and returns nullopt when it cannot (exit
  // code `failed`: 2 for a usage error, 1 for a node that did not answer).
  int failed = 1;
  auto ask = [&](const std::string& endpoint) -> std::optional<json> {
    failed = 2;
    if (endpoint.find("://") == std::string::npos) {
      std::cerr << "error: usage: --endpoint '" << endpoint
                << "' is not an endpoint ZeroMQ can connect to (tcp://HOST:PORT or ipc://PATH)\n";
      return std::nullopt;
    }
    auto curve = cohort::security::find_client_keys(endpoint, keys);
    if (!curve) {
      std::cerr << "error: " << curve.error().code << ": " << curve.error().message << "\n";
      return std::nullopt;
    }
    std::optional<cohort::client> c;
    try {
      c.emplace(endpoint, cohort::wire_limits{}, cohort::liveness{}, *curve);
    } catch (const zmq::error_t& e) {
      std::cerr << "error: usage: --endpoint '" << endpoint
                << "' is not an endpoint ZeroMQ can connect to (tcp://HOST:PORT or ipc://PATH): " << e.what() << "\n";
      return std::nullopt;
    }
    failed = 1;
    cohort::call_options opts;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto r = c->call("admin", method, std::string(bytes.begin(), bytes.end()), opts);
    if (!r.ok()) {
      if (r.error->is(cohort::errc::timeout) && r.local)
        std::cerr << "error: unreachable: nothing answered at " << endpoint << " within " << timeout_ms
                  << " ms; is the node running, is this its admin endpoint, and does it trust this operator key? "
                     "(--endpoint, --timeout, --keys; a refused key is in the node's log)\n";
      else
        std::cerr << "error: " << r.error->code << ": " << r.error->message << "\n";
      return std::nullopt;
    }
    auto reply = json::from_msgpack(r.payload.begin(), r.payload.end(), true, false);
    if (reply.is_discarded()) {
      std::cerr << "error: the node's reply at " << endpoint << " is not valid msgpack\n";
      return std::nullopt;
    }
    return reply;
  };

  if (gathers) {
    // Every node given, merged: lines by time, spans by id (a span is kept where it was recorded).
    const char* list = method == "logs" ? "lines" : "spans";
    std::vector<json> items;
    std::set<std::string> seen_spans;
    std::size_t answered = 0;
    for (const auto& ep : endpoints) {
      auto reply = ask(ep);
      if (!reply) continue;
      answered++;
      for (const auto& u : (*reply)["unreachable"])
        std::cerr << "warning: a service process of " << cell((*reply)["node"]) << " did not answer: " << cell(u) << "\n";
      for (auto& e : (*reply)[list]) {
        if (method == "trace" && !seen_spans.insert(e["span_id"].get<std::string>()).second) continue;
        items.push_back(std::move(e));
      }
    }
    if (answered == 0) return failed;
    if (method == "logs") {
      std::stable_sort(items.begin(), items.end(), [](const json& a, const json& b) {
        return a.value("time_us", std::int64_t{0}) < b.value("time_us", std::int64_t{0});
      });
      for (const auto& l : items) {
        if (as_json) {
          json line = l;
          line.erase("time_us");
          std::cout << line.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
        } else {
          print_log_line(l);
        }
      }
    } else if (as_json) {
      std::cout << json{{"trace_id", trace_id}, {"spans", items}}.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    } else {
      print_waterfall(trace_id, items, answered);
    }
    return answered == endpoints.size() ? 0 : 1;
  }

  auto answer = ask(endpoints.front());
  if (!answer) return failed;
  json reply = std::move(*answer);
  if (as_json) {
    std::cout << reply.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else if (method == "health") {
    if (reply["ready"] == true) {
      std::cout << "node " << reply["node"].get<std::string>() << ": ready\n";
    } else {
      std::cout << "node " << reply["node"].get<std::string>() << ": not ready\n";
      for (const auto& why : reply["not_ready"]) std::cout << "  " << why.get<std::string>() << "\n";
      return 1;
    }
  } else if (method == "status") {
    print_status(reply);
  } else if (method == "tree") {
    print_tree(reply);
  } else if (method == "cluster" && cluster_verb == "status") {
    std::cout << "cluster " << cell(reply["cluster"]) << " seen from " << cell(reply["node"]) << " (etcd "
              << cell(reply["etcd"]) << (reply["etcd_reachable"] == true ? ", reachable" : ", UNREACHABLE: " + cell(reply["etcd_error"]))
              << "); coordinator " << cell(reply["coordinator"]) << "; this node "
              << (reply["serving"] == true ? "serves its shards (lease valid for " + cell(reply["serving_for_ms"]) + " ms)"
                                           : "serves NO shard (no valid lease)")
              << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& n : reply["nodes"])
      rows.push_back({cell(n["name"]), cell(n["endpoint"]), n["draining"] == true ? "draining" : "member",
                      n["coordinator"] == true ? "yes" : "", cell(n["lease"])});
    print_table({"NODE", "ENDPOINT", "STATE", "COORDINATOR", "LEASE"}, rows);
    rows.clear();
    for (auto& [svc, s] : reply["services"].items()) {
      std::string owners;
      for (auto& [o, n] : s["owners"].items()) owners += (owners.empty() ? "" : " ") + o + ":" + cell(n);
      rows.push_back({svc, cell(s["shards"]), owners, cell(s["handoffs"].size()), cell(s["unavailable"])});
    }
    print_table({"SERVICE", "SHARDS", "OWNERS", "HANDOFFS", "UNAVAILABLE"}, rows);
    if (!reply["handoff_now"].get<std::string>().empty()) std::cout << "now: " << cell(reply["handoff_now"]) << "\n";
    for (const auto& l : reply["handoffs"]) std::cout << "  " << l.get<std::string>() << "\n";
  } else if (method == "cluster" && cluster_verb == "shards") {
    std::vector<std::vector<std::string>> rows;
    for (auto& [svc, list] : reply["services"].items())
      for (const auto& s : list)
        rows.push_back({svc, cell(s["shard"]), cell(s["owner"]), cell(s["epoch"]),
                        s["phase"].get<std::string>().empty() ? (s["available"] == true ? "served" : "UNAVAILABLE")
                                                              : cell(s["phase"]) + " -> " + cell(s["to"])});
    print_table({"SERVICE", "SHARD", "OWNER", "EPOCH", "STATE"}, rows);
  } else if (method == "cluster_control") {
    std::cout << "cluster " << cluster_verb << ": " << reply.dump() << "\n";
  } else if (method == "registry") {
    std::vector<std::vector<std::string>> rows;
    for (const auto& i : reply["instances"])
      rows.push_back({cell(i["service"]), cell(i["endpoint"]), cell(i["source"]), cell(i["breaker"]),
                      cell(i["outstanding"]), cell(i["requests"]), cell(i["failures"]),
                      i.value("last_success_s", json()).is_null() ? "never" : cell(i["last_success_s"]) + " s ago"});
    print_table({"SERVICE", "INSTANCE", "SOURCE", "BREAKER", "IN_FLIGHT", "REQUESTS", "FAILURES", "LAST SUCCESS"}, rows);
  } else if (method == "storage") {
    print_table({"SERVICE", "KEYS(EST)", "SIZE_ON_DISK", "FREE_DISK", "PENDING_COMPACTION", "COMMITS", "WRITES",
                 "FAILED", "WRITES NOW"},
                {{cell(reply["service"]), cell(reply["estimated_keys"]), cell(reply["size_on_disk_bytes"]),
                  cell(reply["free_bytes"]), cell(reply["pending_compaction_bytes"]), cell(reply["commits"]),
                  cell(reply["committed_writes"]), cell(reply["failed_commits"]),
                  reply["write_error"].is_null() ? "ok" : "refused: " + cell(reply["write_error"])}});
  } else if (method == "backup") {
    std::cout << "backup " << backup_dir << " of " << service << " written to " << cell(reply["dir"]) << "\n";
  } else if (method == "restore") {
    std::cout << service << " restored from backup " << backup_dir << " and started\n";
  } else if (method == "verify") {
    std::cout << "the store of " << service << ": every block checked, no damage found\n";
  } else if (method == "salvage") {
    std::cout << "the store of " << service << " salvaged and started; RocksDB dropped: " << cell(reply["dropped"]) << "\n";
  } else {
    std::cout << method << " " << target << ": ok\n";
  }
  return 0;
}
