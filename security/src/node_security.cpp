#include "cohort/security/node_security.hpp"

#include "cohort/log/log.hpp"
#include <spdlog/spdlog.h>

namespace cohort::security {

namespace fs = std::filesystem;

namespace {

std::string host_of(const std::string& endpoint) {
  auto scheme = endpoint.find("://");
  if (scheme == std::string::npos) return {};
  auto rest = endpoint.substr(scheme + 3);
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    return close == std::string::npos ? rest : rest.substr(1, close - 1);
  }
  auto colon = rest.rfind(':');
  return colon == std::string::npos ? rest : rest.substr(0, colon);
}

bool is_loopback_address(const std::string& host) {
  return host == "localhost" || host == "lo" || host == "::1" || host.rfind("127.", 0) == 0 ||
         host.rfind("::ffff:127.", 0) == 0;
}

// Admin verbs that change nothing; every other verb (restart, stop, start,
// crash, backup, restore, flush, salvage, and any added later) needs control.
bool is_read_verb(const std::string& verb) {
  return verb == "status" || verb == "tree" || verb == "health" || verb == "registry" || verb == "storage" ||
         verb == "verify" || verb == "logs" || verb == "trace" || verb == "cluster";
}

}  // namespace

bool is_local_endpoint(const std::string& endpoint) {
  return endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0;
}

bool is_loopback_endpoint(const std::string& endpoint) {
  return is_local_endpoint(endpoint) || is_loopback_address(host_of(endpoint));
}

node_security::node_security(zmq::context_t& ctx, security_config cfg) : ctx_(ctx), cfg_(std::move(cfg)) {}

result<std::unique_ptr<node_security>> node_security::start(zmq::context_t& ctx, const security_config& cfg,
                                                            const std::string& data_dir) {
  std::unique_ptr<node_security> s(new node_security(ctx, cfg));
  if (cfg.insecure) {
    log::get("security")->warn("security: insecure = true: no key is checked on any endpoint; anyone who reaches a port is trusted");
    s->trust_ = std::make_shared<trust_list>();
    return s;
  }
  const bool default_keys = cfg.key_file.empty();
  s->key_file_ = default_keys ? (fs::path(data_dir) / "keys" / "node.key").string() : cfg.key_file;
  auto keys = default_keys ? load_or_create_key_pair(s->key_file_, "node") : read_key_pair(s->key_file_);
  if (!keys) return error_info{keys.error().code, "security: " + keys.error().message};
  s->keys_ = *keys;
  if (cfg.local_operator) {
    // Like Erlang's cookie: whoever can read this file (the node's own user,
    // who can read its stores anyway) operates the node, with no setup.
    const auto dir = fs::path(data_dir) / "keys";
    auto op = load_or_create_key_pair((dir / "operator.key").string(), "operator");
    if (!op) return error_info{op.error().code, "security: " + op.error().message};
    trusted_peer local;
    local.name = "local-operator";
    local.kind = role::operator_;
    local.public_key = op->public_key;
    local.access = admin_access::control;
    s->local_operator_ = local;
    // Local tools find the node's public key beside it, wherever the node's key lives.
    if (!default_keys) {
      std::error_code ec;
      const auto pub = (dir / "node.key.pub").string();
      auto known = read_public_key(pub);
      if (!known || *known != s->keys_.public_key) {
        fs::remove(pub, ec);
        fs::copy_file(s->key_file_ + ".pub", pub, ec);
        if (ec) log::get("security")->warn("security: cannot copy {}.pub to {}: {}", s->key_file_, pub, ec.message());
      }
    }
  }
  if (auto err = s->reload()) return *err;
  s->zap_ = std::make_unique<zap_handler>(ctx, [raw = s.get()](const zap_request& r) { return raw->decide(r); });
  if (!cfg.trust_file.empty()) s->watcher_ = std::thread([raw = s.get()] { raw->watch(); });
  return s;
}

node_security::~node_security() {
  {
    std::lock_guard<std::mutex> guard(watch_mutex_);
    stopping_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

std::optional<error_info> node_security::reload() {
  std::vector<trusted_peer> peers = cfg_.peers;
  file_version version{};
  if (!cfg_.trust_file.empty()) {
    // Read before the file: a change after this is seen by the next look.
    version = version_of(cfg_.trust_file).value_or(file_version{});
    auto from_file = read_trust_file(cfg_.trust_file);
    if (!from_file) return error_info{from_file.error().code, "security: " + from_file.error().message};
    peers.insert(peers.end(), from_file->begin(), from_file->end());
  }
  if (local_operator_) peers.push_back(*local_operator_);
  auto list = trust_list::make(std::move(peers));
  if (!list) return error_info{list.error().code, "security: " + list.error().message};
  auto fresh = std::make_shared<const trust_list>(std::move(*list));
  std::lock_guard<std::mutex> guard(trust_mutex_);
  trust_ = std::move(fresh);
  trust_version_ = version;
  return std::nullopt;
}

void node_security::watch() {
  std::unique_lock<std::mutex> lock(watch_mutex_);
  while (!watch_cv_.wait_for(lock, cfg_.reload_every, [this] { return stopping_; })) {
    auto version = version_of(cfg_.trust_file);
    file_version known;
    {
      std::lock_guard<std::mutex> guard(trust_mutex_);
      known = trust_version_;
    }
    if (!version || *version == known) continue;
    // A half-written or broken file keeps the old list, loudly (once per change).
    if (auto err = reload()) {
      log::get("security")->error("{} (keeping the trust list read before)", err->message);
      std::lock_guard<std::mutex> guard(trust_mutex_);
      trust_version_ = *version;
    }
    else
      log::get("security")->info("security: trust list read again from {} ({} entries)", cfg_.trust_file, trust()->peers().size());
  }
}

std::shared_ptr<const trust_list> node_security::trust() const {
  std::lock_guard<std::mutex> guard(trust_mutex_);
  return trust_;
}

std::optional<error_info> node_security::check_public(const std::string& endpoint, const std::string& what) const {
  if (cfg_.insecure || is_loopback_endpoint(endpoint)) return std::nullopt;
  if (cfg_.key_file.empty() || (cfg_.peers.empty() && cfg_.trust_file.empty()))
    return error_info{errc::bad_request,
                      "refusing to listen on " + endpoint + " (" + what +
                          "), a non-loopback address, without security: give [security] a key_file and a trust list "
                          "(peer entries or trust_file; docs/security.md), or set insecure = true on purpose"};
  return std::nullopt;
}

listener_mode node_security::secure_listener(zmq::socket_t& socket, const std::string& endpoint, front f) const {
  if (is_local_endpoint(endpoint)) return listener_mode::local;
  if (cfg_.insecure) return listener_mode::open;
  if (f == front::clients && cfg_.keyless_loopback && is_loopback_endpoint(endpoint)) {
    // NULL mechanism; the ZAP handler still checks that the peer is on this host.
    socket.set(zmq::sockopt::zap_domain, "cohort.keyless");
    return listener_mode::keyless;
  }
  socket.set(zmq::sockopt::zap_domain, f == front::admin ? "cohort.admin" : "cohort.clients");
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, keys_.secret_key);
  return listener_mode::curve;
}

result<std::optional<curve_client_keys>> node_security::client_keys(const std::string& endpoint,
                                                                     const std::string& server_key) const {
  if (cfg_.insecure || is_local_endpoint(endpoint)) return std::optional<curve_client_keys>{};
  std::string server = server_key;
  if (server.empty())
    if (const auto* p = trust()->by_endpoint(endpoint)) server = p->public_key;
  if (server.empty()) {
    // A keyless loopback endpoint of a node on this host (development).
    if (is_loopback_endpoint(endpoint)) return std::optional<curve_client_keys>{};
    return error_info{errc::unauthenticated, "no key is known for " + endpoint +
                                                 ": name it in the trust list (a node entry's 'endpoints') so that "
                                                 "this node can authenticate it; it will not send requests in plain text"};
  }
  return std::optional<curve_client_keys>{curve_client_keys{server, keys_.public_key, keys_.secret_key}};
}

bool node_security::trusts_node(const std::string& public_key) const {
  const auto* p = trust()->by_key(public_key);
  return p && p->kind == role::node;
}

zap_verdict node_security::decide(const zap_request& r) const {
  if (r.domain == "cohort.keyless") {
    if (r.mechanism == "NULL" && is_loopback_address(r.address)) return {true, "", ""};
    return {false, "", "keyless connections are accepted from this host only"};
  }
  if (r.mechanism != "CURVE" || r.public_key.empty()) return {false, "", "a CURVE key is required"};
  const auto* peer = trust()->by_key(r.public_key);
  if (!peer) {
    log::get("security")->warn("security: refused a connection from {} with an unknown key {} ({})", r.address, r.public_key, r.domain);
    return {false, "", "unknown key"};
  }
  const bool admin = r.domain == "cohort.admin";
  if (admin != (peer->kind == role::operator_)) {
    log::get("security")->warn("security: refused {} '{}' from {} on the {} endpoint", to_string(peer->kind), peer->name, r.address,
                 admin ? "admin" : "client");
    return {false, "", std::string("a ") + std::string(to_string(peer->kind)) + " key is not accepted here"};
  }
  return {true, r.public_key, ""};
}

std::optional<error_info> node_security::admit(listener_mode mode, front f, std::string_view user_id, envelope& env,
                                               bool* from_node, bool internal) const {
  if (from_node) *from_node = false;
  auto refuse = [&](errc code, std::string why) {
    refused_requests_++;
    return error_info{code, std::move(why)};
  };
  switch (mode) {
    case listener_mode::local:
      // This node's own processes (ipc): they pass on the caller they admitted.
      if (from_node) *from_node = true;
      if (env.caller.empty()) env.caller = "local";
      return std::nullopt;
    case listener_mode::open:
      env.caller = anonymous_caller;
      if (from_node) *from_node = true;  // insecure: anything goes, the registry included
      return std::nullopt;
    case listener_mode::keyless:
      env.caller = anonymous_caller;
      if (!env.service.empty() && env.service.front() == '_')
        return refuse(errc::forbidden, "'" + env.service + "' takes only authenticated nodes; connect with a node key");
      // Internal methods are closed to every client; keyless ones on this host
      // may call them only on a node set up for crash drills.
      if (internal && !cfg_.keyless_internal)
        return refuse(errc::forbidden, env.service + "." + env.method +
                                           " is internal: no client may call it (a node with "
                                           "allow_fault_injection = true lets keyless local clients)");
      return std::nullopt;
    case listener_mode::curve:
      break;
  }
  auto list = trust();
  const auto* peer = list->by_key(user_id);
  if (!peer)  // removed from the trust list since it connected
    return refuse(errc::unauthenticated, "the key this connection authenticated with is no longer trusted");
  if (f == front::admin) {
    if (peer->kind != role::operator_) return refuse(errc::forbidden, "'" + peer->name + "' is not an operator");
    env.caller = peer->name;
    if (peer->access != admin_access::control && !is_read_verb(env.method))
      return refuse(errc::forbidden, "operator '" + peer->name + "' has read access; '" + env.method + "' needs control");
    return std::nullopt;
  }
  switch (peer->kind) {
    case role::node:
      if (from_node) *from_node = true;
      if (env.caller.empty()) env.caller = peer->name;  // a node vouches for the caller it admitted
      return std::nullopt;
    case role::client:
      env.caller = peer->name;
      if (!peer->may_call(env.service))
        return refuse(errc::forbidden, "client '" + peer->name + "' may not call '" + env.service + "'");
      if (internal)
        return refuse(errc::forbidden, env.service + "." + env.method + " is internal: no client may call it");
      return std::nullopt;
    case role::operator_:
      break;
  }
  return refuse(errc::forbidden, "operator keys are for the admin endpoint");
}

}  // namespace cohort::security
