#include "cohort/transport/cluster_client.hpp"

#include <algorithm>

#include "cohort/transport/shard_key.hpp"

namespace cohort {

namespace {
/// Connections to owners a client keeps at most (a cluster has few nodes; a
/// flood of distinct redirects must not open sockets without bound).
constexpr std::size_t max_connections = 64;
/// Shards remembered per service at most (a node allows up to 4096).
constexpr std::size_t max_shards = 4096;
}  // namespace

cluster_client::cluster_client(zmq::context_t& ctx, std::string seed, wire_limits limits, liveness l,
                               std::optional<curve_client_keys> curve)
    : ctx_(ctx), seed_(std::move(seed)), limits_(limits), liveness_(l), curve_(std::move(curve)) {}

cluster_client::~cluster_client() = default;

client& cluster_client::connection(const std::string& endpoint) {
  if (auto it = connections_.find(endpoint); it != connections_.end()) return *it->second;
  if (connections_.size() >= max_connections)  // drop one that is not the seed
    for (auto it = connections_.begin(); it != connections_.end(); ++it)
      if (it->first != seed_) {
        connections_.erase(it);
        break;
      }
  std::optional<curve_client_keys> keys = curve_;
  if (keys && endpoint != seed_) {
    auto named = server_keys_.find(endpoint);
    keys->server_key = named == server_keys_.end() ? std::string() : named->second;
  }
  if (keys && keys->server_key.empty()) keys.reset();  // a keyless owner (loopback development)
  auto made = std::make_unique<client>(ctx_, endpoint, limits_, liveness_, keys);
  return *connections_.emplace(endpoint, std::move(made)).first->second;
}

reply cluster_client::attempt(const std::string& endpoint, std::string_view service, std::string_view method,
                              const std::string& payload, call_options opts) {
  last_endpoint_ = endpoint;
  return connection(endpoint).call(service, method, payload, opts);
}

std::string cluster_client::owner_endpoint(const std::string& service, std::string_view key) const {
  auto r = routes_.find(service);
  if (r == routes_.end() || r->second.count == 0) return {};
  auto o = r->second.owners.find(shard_of_key(key, r->second.count));
  return o == r->second.owners.end() ? std::string() : o->second;
}

reply cluster_client::call(std::string_view service, std::string_view method, std::string payload,
                           const call_options& opts) {
  stats_.calls++;
  if (opts.key.empty()) return attempt(seed_, service, method, payload, opts);
  const std::string svc(service);
  auto& routes = routes_[svc];
  call_options o = opts;
  std::string endpoint = seed_;
  o.shard = 0;  // "serve it only if you own it": the node computes the key's shard itself
  if (routes.count != 0) {
    o.shard = shard_of_key(opts.key, routes.count);
    if (auto it = routes.owners.find(o.shard); it != routes.owners.end()) endpoint = it->second, stats_.direct++;
  }
  const auto started = std::chrono::steady_clock::now();
  auto r = attempt(endpoint, service, method, payload, o);
  for (int followed = 0;; ++followed) {
    if (r.ok()) {
      // The reply names the key's shard: remembered even before the count is
      // known (the first redirect tells it), so it is never asked again.
      if (r.header.shard != envelope::no_shard && (routes.count == 0 || r.header.shard < routes.count) &&
          routes.owners.size() < max_shards)
        routes.owners[r.header.shard] = endpoint;
      return r;
    }
    const auto& err = *r.error;
    if (!err.is(errc::wrong_shard) || !err.owner) {
      // The remembered owner failed us (gone, fenced, partitioned): ask the seed next time.
      if (endpoint != seed_ && (r.local || err.is(errc::unavailable))) {
        for (auto it = routes.owners.begin(); it != routes.owners.end();)
          it = it->second == endpoint ? routes.owners.erase(it) : std::next(it);
        stats_.forgotten++;
      }
      return r;
    }
    const auto& owner = *err.owner;
    if (owner.shards != 0 && owner.shards != routes.count) {
      // First told (keep what replies taught), or the service was re-sharded (forget it all).
      if (routes.count != 0) routes.owners.clear();
      routes.count = owner.shards;
      for (auto it = routes.owners.begin(); it != routes.owners.end();)
        it = it->first >= routes.count ? routes.owners.erase(it) : std::next(it);
    }
    // Bounded like the reply path: a node we trust still cannot grow our tables without end.
    if (routes.count != 0 && owner.shard < routes.count &&
        (routes.owners.count(owner.shard) != 0 || routes.owners.size() < max_shards))
      routes.owners[owner.shard] = owner.endpoint;
    if (!owner.server_key.empty() &&
        (server_keys_.count(owner.endpoint) != 0 || server_keys_.size() < max_shards))
      server_keys_[owner.endpoint] = owner.server_key;
    const auto left = opts.timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - started);
    if (followed >= 1 || owner.endpoint == endpoint || left <= std::chrono::milliseconds(0)) return r;
    stats_.redirects++;
    endpoint = owner.endpoint;
    o.shard = owner.shard;
    o.timeout = left;
    r = attempt(endpoint, service, method, payload, o);
  }
}

}  // namespace cohort
