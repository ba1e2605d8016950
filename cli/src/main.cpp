// cohort: the node (`cohort run`), a one-shot client (`cohort call`) and the demo.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include "cohort/log/log.hpp"

#include "cohort/examples/example_services.hpp"
#include "cohort/plugins/plugin_loader.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/security/client_keys.hpp"
#include "cohort/security/keys.hpp"
#include "cohort/shop/demo.hpp"
#include "cohort/shop/seed.hpp"
#include "cohort/shop/shop.hpp"
#include "cohort/shop/shop_config.hpp"
#include "cohort/storage/restore.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"

namespace {

/// Every service this build can host: the shop and the small examples.
std::vector<cohort::service_definition> catalog(const cohort::shop::shop_options& opts) {
  auto all = cohort::shop::shop_services(opts);
  for (auto& d : cohort::example_services()) all.push_back(std::move(d));
  return all;
}

std::vector<std::string> known_service_names() {
  std::vector<std::string> names;
  for (const auto& d : catalog({})) names.push_back(d.name);
  return names;
}

/// A child of a node in process isolation: host only `service`, on an ipc
/// endpoint in `runtime_dir`, and reach its siblings at theirs.
void become_isolated_child(cohort::node_config& cfg, const std::string& service, const std::string& runtime_dir) {
  std::vector<cohort::service_config> mine;
  for (const auto& s : cfg.services) {
    if (s.name == service)
      mine.push_back(s);
    else
      cfg.remotes.push_back([&] {
        cohort::remote_service_config r;
        r.name = s.name;
        r.endpoints = {"ipc://" + runtime_dir + "/" + s.name + ".sock"};
        return r;
      }());
  }
  cfg.services = mine;
  cfg.listen = {"ipc://" + runtime_dir + "/" + service + ".sock"};
  cfg.admin = "ipc://" + runtime_dir + "/" + service + ".admin.sock";  // the parent forwards storage verbs here
  cfg.http = {};  // the parent serves HTTP and routes to the children
  cfg.isolation = "none";
  cfg.name += "/" + service;
}

int run_node(const std::string& config_path, const std::string& isolated_child, const std::string& runtime_dir,
             const cohort::shop::shop_options& shop) {
  // Block the stop signals in every thread the node will start; main waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // SIGCHLD too: with process isolation only the supervising thread takes it
  // (it unblocks it); any other thread it lands on sees its call interrupted.
  sigset_t blocked = stop_signals;
  sigaddset(&blocked, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);

  // Without a config: the shop, embedded, on the default loopback ports.
  auto cfg = config_path.empty()
                 ? cohort::result<cohort::node_config>(cohort::shop::shop_node_config(shop))
                 : cohort::load_node_config(config_path, known_service_names());
  if (!cfg) {
    std::cerr << "cohort: bad config: " << cfg.error().message << "\n";
    return 2;
  }
  // Services from plugins join the built-in ones (each child of process
  // isolation loads them again from the same config).
  auto hosted = catalog(shop);
  auto from_plugins = cohort::plugins::load_configured(*cfg);
  if (!from_plugins) {
    std::cerr << "cohort: bad config: " << from_plugins.error().message << "\n";
    return 2;
  }
  for (auto& d : *from_plugins) hosted.push_back(std::move(d));
  if (!isolated_child.empty()) become_isolated_child(*cfg, isolated_child, runtime_dir);
  // --log-format wins over the config; service processes inherit it through the environment.
  if (const char* f = std::getenv("COHORT_LOG_FORMAT")) {
    if (std::string(f) == "json") cfg->log.output = cohort::log::format::json;
    if (std::string(f) == "text") cfg->log.output = cohort::log::format::text;
  }
  auto n = cohort::node::start(*cfg, std::move(hosted));
  if (!n) {
    std::cerr << "cohort: cannot start: " << n.error().message << "\n";
    return 2;
  }
  // Process isolation starts services in children: wait (bounded) until none is still starting.
  const auto settle_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto settling = [&] {
    for (const auto& s : (*n)->services())
      if (s.state == "starting" || s.state == "restarting") return true;
    return false;
  };
  while (settling() && std::chrono::steady_clock::now() < settle_by)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (const auto& ep : (*n)->endpoints()) std::cout << "cohort: listening on " << ep << std::endl;
  if (!(*n)->http_endpoint().empty()) std::cout << "cohort: http listening on " << (*n)->http_endpoint() << std::endl;
  if (!(*n)->admin_endpoint().empty()) std::cout << "cohort: admin endpoint " << (*n)->admin_endpoint() << std::endl;
  for (const auto& s : (*n)->services())
    std::cout << "cohort: service " << s.name << " (" << s.kind << ") " << s.state
              << (s.down_reason.empty() ? "" : ": " + s.down_reason) << std::endl;
  for (const auto& r : cfg->remotes) {
    std::cout << "cohort: remote service " << r.name << " at";
    for (const auto& ep : r.endpoints) std::cout << " " << ep;
    std::cout << std::endl;
  }
  if (config_path.empty()) {
    cohort::client c((*n)->context(), (*n)->endpoints().front());
    if (auto seeded = cohort::shop::seed_shop(c); !seeded)
      std::cerr << "cohort: seeding the shop failed: " << seeded.error().message << std::endl;
    else
      std::cout << "cohort: shop seeded with " << cohort::shop::sample_products().size() << " products" << std::endl;
  }
  // "ready" promises that every configured service answers; otherwise say which does not and why.
  std::vector<std::string> not_up;
  for (const auto& s : (*n)->services())
    if (s.state != "up")
      not_up.push_back(s.name + " is " + s.state + (s.down_reason.empty() ? "" : " (" + s.down_reason + ")"));
  if (not_up.empty()) {
    std::cout << "cohort: ready" << std::endl;
  } else {
    std::cout << "cohort: not ready:";
    for (const auto& why : not_up) std::cout << " " << why << ";";
    std::cout << std::endl;
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cout << "cohort: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", draining" << std::endl;
  (*n)->stop();
  std::cout << "cohort: stopped" << std::endl;
  return 0;
}

int run_call(const std::string& target, const std::string& json_args, const std::string& endpoint,
             int timeout_ms, const std::string& key, const std::string& idem, const cohort::security::key_choice& keys,
             bool plain) {
  auto dot = target.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == target.size()) {
    std::cerr << "cohort call: target must be SERVICE.METHOD, got '" << target << "'\n";
    return 2;
  }
  auto payload = cohort::json_to_msgpack(json_args);
  if (!payload) {
    std::cerr << "cohort call: " << payload.error().message << "\n";
    return 2;
  }
  auto curve = plain ? cohort::result<std::optional<cohort::curve_client_keys>>(std::nullopt)
                     : cohort::security::find_client_keys(endpoint, keys);
  if (!curve) {
    std::cerr << "cohort call: " << curve.error().code << ": " << curve.error().message << "\n";
    return 2;
  }
  cohort::client c(endpoint, cohort::wire_limits{}, cohort::liveness{}, *curve);
  cohort::call_options opts;
  opts.timeout = std::chrono::milliseconds(timeout_ms);
  opts.key = key;
  opts.idempotency_key = idem;
  auto r = c.call(target.substr(0, dot), target.substr(dot + 1), *payload, opts);
  if (!r.ok()) {
    std::cerr << "error: " << r.error->code << ": " << r.error->message << "\n";
    return 1;
  }
  auto json = cohort::msgpack_to_json(r.payload, 2);
  if (!json) {
    std::cerr << "cohort call: " << json.error().message << "\n";
    return 1;
  }
  std::cout << *json << "\n";
  return 0;
}

}  // namespace

/// `cohort restore`: the same atomic swap as `cohortctl restore`, for a stopped node.
int run_offline_restore(const std::string& config, const std::string& service, const std::string& name) {
  auto cfg = cohort::load_node_config(config, known_service_names());
  if (!cfg) {
    std::cerr << "cohort: bad config: " << cfg.error().message << "\n";
    return 2;
  }
  if (auto ok = cohort::check_backup_name(name); !ok) {
    std::cerr << "error: usage: " << ok.error().message << "\n";
    return 2;
  }
  auto dir = cohort::store_dir(*cfg, service);
  if (cohort::store_in_use(dir)) {
    std::cerr << "error: the store " << dir << " is open: the node is running; use cohortctl restore\n";
    return 1;
  }
  cohort::clean_interrupted_restore(dir);
  auto done = cohort::restore_store((std::filesystem::path(cohort::backup_root(*cfg)) / service / name).string(), dir);
  if (!done) {
    std::cerr << "error: " << done.error().code << ": " << done.error().message << "\n";
    return 1;
  }
  std::cout << service << " restored from backup " << name << " into " << dir << "\n";
  return 0;
}

/// False (with a usage message) for an endpoint ZeroMQ cannot connect to.
bool valid_endpoint(const std::string& endpoint) {
  try {
    zmq::context_t ctx(1);
    zmq::socket_t probe(ctx, zmq::socket_type::dealer);
    probe.set(zmq::sockopt::linger, 0);
    probe.connect(endpoint);
    return true;
  } catch (const zmq::error_t& e) {
    std::cerr << "error: usage: '" << endpoint
              << "' is not an endpoint ZeroMQ can connect to (tcp://HOST:PORT or ipc://PATH): " << e.what() << "\n";
    return false;
  }
}

int main(int argc, char** argv) {
  cohort::log::configure({}, "cohort");
  CLI::App app{"Cohort: an actor-based service runtime"};
  app.require_subcommand(1);

  std::string config_path;
  auto* run = app.add_subcommand("run", "run a node hosting the services of a config (default: the whole shop)");
  run->add_option("--config", config_path, "TOML config file")->check(CLI::ExistingFile);
  cohort::shop::shop_options shop;
  run->add_option("--decline-over-cents", shop.decline_over_cents, "payments: decline authorizations above this")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  run->add_option("--declined-card", shop.declined_card, "payments: decline this card")->capture_default_str();
  std::string log_format;
  run->add_option("--log-format", log_format, "text (for a terminal) or json (one object a line); default: [log] format")
      ->check(CLI::IsMember({"text", "json"}));
  std::string isolated_child, runtime_dir;
  run->add_option("--isolated-child", isolated_child, "internal: run one service for a parent node")->group("");
  run->add_option("--runtime-dir", runtime_dir, "internal: the parent's runtime directory")->group("");

  std::string target, json_args = "null", endpoint = "tcp://127.0.0.1:7400", key, idem;
  int timeout_ms = 5000;
  auto* call = app.add_subcommand("call", "call SERVICE.METHOD with JSON arguments and print the JSON reply");
  call->add_option("target", target, "SERVICE.METHOD")->required();
  call->add_option("args", json_args, "arguments as JSON (default: null)");
  call->add_option("--endpoint", endpoint, "node or gateway endpoint")->capture_default_str();
  call->add_option("--timeout", timeout_ms, "deadline in milliseconds")->capture_default_str()->check(CLI::Range(1, 3600000));
  call->add_option("--key", key, "entity key");
  call->add_option("--idempotency-key", idem, "idempotency key");
  cohort::security::key_choice call_keys;
  call_keys.own_name = "client";
  call_keys.keyless_loopback_ok = true;
  call->add_option("--keys", call_keys.keys_dir, "folder with client.key and node.key.pub (default: $COHORT_KEYS, else cohort-data/keys)");
  call->add_option("--client-key", call_keys.key_file, "this client's key file (default: KEYS/client.key; none on loopback: keyless)");
  call->add_option("--server-key", call_keys.server_key, "the node's public key, Z85 or a file (default: KEYS/node.key.pub)");
  bool call_plain = false;
  call->add_flag("--insecure", call_plain, "connect without keys to a node that runs with insecure = true");

  std::string key_name, key_dir;
  auto* keys_cmd = app.add_subcommand("keys", "CURVE key pairs for nodes, operators and clients (docs/security.md)");
  keys_cmd->require_subcommand(1);
  auto* keys_new = keys_cmd->add_subcommand("new", "write a new key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.key.pub");
  keys_new->add_option("name", key_name, "the key's name, e.g. node-b, ops, billing-client")->required();
  keys_new->add_option("--dir", key_dir, "where to write it (default: $COHORT_KEYS, else cohort-data/keys)");
  std::string show_path;
  auto* keys_show = keys_cmd->add_subcommand("show", "print the public key (Z85) of a key file or .pub file");
  keys_show->add_option("file", show_path, "a key file or its .pub")->required();

  std::string check_path;
  auto* check = app.add_subcommand("check-config", "validate a config file (keys, types, services) without starting");
  check->add_option("file", check_path, "TOML config file")->required()->check(CLI::ExistingFile);

  std::string restore_config, restore_service, restore_name;
  auto* offline_restore = app.add_subcommand(
      "restore", "with the node stopped: replace SERVICE's store with backup NAME (cohortctl restore for a running node)");
  offline_restore->add_option("--config", restore_config, "the node's config file")->required()->check(CLI::ExistingFile);
  offline_restore->add_option("service", restore_service, "entity service")->required();
  offline_restore->add_option("name", restore_name, "the backup's name, under the node's backup root")->required();

  auto* demo = app.add_subcommand("demo", "run the shop embedded, with a scripted client session and a failure drill");

  std::string seed_endpoint = "tcp://127.0.0.1:7400";
  auto* seed = app.add_subcommand("seed-shop", "add the sample products and stock to a running shop (idempotent)");
  seed->add_option("--endpoint", seed_endpoint, "a node hosting or routing catalog and inventory")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (*run) {
    if (!log_format.empty()) ::setenv("COHORT_LOG_FORMAT", log_format.c_str(), 1);
    return run_node(config_path, isolated_child, runtime_dir, shop);
  }
  if (*call && !valid_endpoint(endpoint)) return 2;
  if (*call) return run_call(target, json_args, endpoint, timeout_ms, key, idem, call_keys, call_plain);
  if (*keys_new) {
    auto dir = key_dir.empty() ? cohort::security::default_keys_dir() : key_dir;
    auto path = (std::filesystem::path(dir) / (key_name + ".key")).string();
    if (key_name.empty() || key_name.find('/') != std::string::npos) {
      std::cerr << "cohort keys new: the name must be a plain file name\n";
      return 2;
    }
    auto written = cohort::security::write_key_pair(path, cohort::security::generate_key_pair(), key_name);
    if (!written) {
      std::cerr << "cohort keys new: " << written.error().message << "\n";
      return 1;
    }
    auto pub = cohort::security::read_public_key(path);
    std::cout << "wrote " << path << " (secret, mode 0600) and " << path << ".pub\npublic key: " << *pub << "\n";
    return 0;
  }
  if (*keys_show) {
    auto pub = cohort::security::read_public_key(show_path);
    if (!pub) {
      std::cerr << "cohort keys show: " << pub.error().message << "\n";
      return 1;
    }
    std::cout << *pub << "\n";
    return 0;
  }
  if (*check) {
    auto cfg = cohort::load_node_config(check_path, known_service_names());
    if (!cfg) {
      std::cerr << "cohort: bad config: " << cfg.error().message << "\n";
      return 2;
    }
    auto plugins = cohort::plugins::load_configured(*cfg);
    if (!plugins) {
      std::cerr << "cohort: bad config: " << plugins.error().message << "\n";
      return 2;
    }
    // What the node checks as it starts, checked here too: an event log needs an entity service.
    auto defs = catalog({});
    defs.insert(defs.end(), plugins->begin(), plugins->end());
    for (const auto& s : cfg->services)
      for (const auto& d : defs)
        if (d.name == s.name && s.events.enabled && d.kind != cohort::service_kind::entities) {
          std::cerr << "cohort: bad config: service '" << s.name << "': an event log ([services." << s.name
                    << ".events]) needs an entity service (workers publish no events)\n";
          return 2;
        }
    std::cout << "config ok: " << cfg->services.size() << " service(s), " << cfg->remotes.size()
              << " remote service(s)\n";
    return 0;
  }
  if (*offline_restore) return run_offline_restore(restore_config, restore_service, restore_name);
  if (*demo) return cohort::run_demo();
  if (*seed) {
    if (!valid_endpoint(seed_endpoint)) return 2;
    cohort::client c(seed_endpoint);
    auto seeded = cohort::shop::seed_shop(c);
    if (!seeded) {
      std::cerr << "error: " << seeded.error().code << ": " << seeded.error().message << "\n";
      return 1;
    }
    std::cout << "seeded " << cohort::shop::sample_products().size() << " products and their stock\n";
    return 0;
  }
  return 2;
}
