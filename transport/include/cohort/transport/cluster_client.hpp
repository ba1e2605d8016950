// cluster_client: calls a cluster's services, sending each call for a
// sharded entity service straight to the node that owns its key's shard.
//
// It starts knowing one node (the seed). A call with an entity key goes with
// `shard` set (client.hpp: call_options::shard), so a node that does not own
// the key's shard answers `wrong_shard` naming the owner (node, endpoint,
// CURVE key, shard, shard count) instead of forwarding it; the client then
// sends the call there, once (a second `wrong_shard`, the map moving again
// meanwhile, is returned to the caller, who may call again). It remembers
// the owner of each shard it has seen and the shard count, so later calls for
// those shards go straight to their owner: no forwarding hop. A failed call
// to a remembered owner forgets it (the next call asks the seed again).
// Calls without a key, and services that are not sharded, go to the seed.
//
// A redirect is trusted as far as the node that sent it: it came over a
// connection pinned to that node's key (CURVE) and names the key the owner's
// connection is pinned to.
//
// Not thread-safe, like client: one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <zmq.hpp>

#include "cohort/transport/client.hpp"

namespace cohort {

class cluster_client {
 public:
  /// `seed`: any node of the cluster. `curve`: this client's key pair and the
  /// seed's server key; connections to owners use the same key pair and the
  /// server key their redirect named. Without `curve`, every connection is plain.
  cluster_client(zmq::context_t& ctx, std::string seed, wire_limits limits = {}, liveness l = {},
                 std::optional<curve_client_keys> curve = std::nullopt);
  ~cluster_client();
  cluster_client(const cluster_client&) = delete;
  cluster_client& operator=(const cluster_client&) = delete;

  /// Sends a call where its key's shard lives and waits for its reply; the
  /// whole call, a followed redirect included, keeps within `opts.timeout`.
  [[nodiscard]] reply call(std::string_view service, std::string_view method, std::string payload,
                           const call_options& opts = {});

  struct counters {
    std::uint64_t calls = 0;
    std::uint64_t direct = 0;     ///< sent straight to a remembered owner
    std::uint64_t redirects = 0;  ///< `wrong_shard` answers followed
    std::uint64_t forgotten = 0;  ///< remembered owners dropped after a failed call
  };
  [[nodiscard]] const counters& stats() const noexcept { return stats_; }
  /// The endpoint that answered the last call.
  [[nodiscard]] const std::string& last_endpoint() const noexcept { return last_endpoint_; }
  /// The owner this client remembers for `key` of `service` (empty: none).
  [[nodiscard]] std::string owner_endpoint(const std::string& service, std::string_view key) const;

 private:
  struct shard_routes {
    std::uint32_t count = 0;                                  ///< 0 until a redirect said it
    std::unordered_map<std::uint32_t, std::string> owners;    ///< shard -> endpoint
  };
  client& connection(const std::string& endpoint);
  /// One attempt at `endpoint`, within `timeout`.
  reply attempt(const std::string& endpoint, std::string_view service, std::string_view method,
                const std::string& payload, call_options opts);

  zmq::context_t& ctx_;
  std::string seed_;
  wire_limits limits_;
  liveness liveness_;
  std::optional<curve_client_keys> curve_;
  std::map<std::string, std::string> server_keys_;  ///< endpoint -> the key its redirect named
  std::map<std::string, std::unique_ptr<client>> connections_;
  std::unordered_map<std::string, shard_routes> routes_;
  counters stats_;
  std::string last_endpoint_;
};

}  // namespace cohort
