// cluster_agent: a node's part in a cluster (docs/cluster.md). On threads of
// its own (never a CAF scheduler thread or the I/O thread) it
//   - holds the node's membership lease in etcd and knows its own deadline:
//     past it the node serves none of its shards (fencing);
//   - reads the cluster's state (members, shard maps, drains) from etcd and
//     publishes it for routing as one immutable view;
//   - campaigns for the coordinator's key and, while it holds it, plans
//     placement (placement.hpp) and writes it by compare-and-swap;
//   - carries out handoffs: as the old owner it stops serving the moving
//     shards, lets their entities go, exports their records (checksummed);
//     as the new owner it fetches them from the old owner's node, ingests
//     them and takes the shard with its epoch bumped; the old owner then
//     deletes its copy.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cohort/cluster/shard_map.hpp"
#include "cohort/core/request.hpp"
#include "cohort/runtime/node_config.hpp"
#include "cohort/storage/store.hpp"

namespace cohort::cluster {

/// A live node of the cluster (its key exists: its lease is alive).
struct member {
  std::string name;
  std::string endpoint;
  std::vector<std::string> services;  ///< the sharded services it hosts (it may own their shards)
  std::vector<std::string> hosts;     ///< every service it hosts (others discover worker services here)
  std::string key;  ///< its CURVE public key (empty: keyless, loopback development)
  std::int64_t lease = 0;
};

/// The cluster as the node last read it from etcd. Immutable once published.
struct cluster_view {
  std::map<std::string, member> members;
  std::map<std::string, shard_map> maps;  ///< per sharded service
  std::set<std::string> draining;
  std::string coordinator;
  std::int64_t revision = 0;
};

/// Where a request for a sharded service goes.
struct route_decision {
  enum kind_t { local, forward, hold, unavailable, wrong_shard } kind = unavailable;
  std::uint32_t shard = 0;
  std::uint64_t epoch = 0;
  std::uint32_t shards = 0;  ///< how many shards the service has
  std::string owner;     ///< forward, wrong_shard
  std::string endpoint;  ///< forward, wrong_shard: the owner's
  std::string key;       ///< forward, wrong_shard: the owner's public key (empty: keyless)
  std::string why;       ///< unavailable, wrong_shard
  /// local: served while its handoff's pre-copy runs (track() may still say no).
  bool precopy = false;
};

/// What the agent needs of its node.
class cluster_host {
 public:
  virtual ~cluster_host() = default;
  /// The store of sharded service `service` (hosted in this process).
  virtual store* store_of(const std::string& service) = 0;
  /// Ownership may have changed: route held requests again, and let go of
  /// the live entities of shards this node no longer serves when the map
  /// moved on or `let_go` says so (a seal, an import: not in the map). Called
  /// on the agent's threads.
  virtual void ownership_changed(bool let_go) = 0;
  /// Records of `service` arrived by ingest (a shard taken over): its outbox
  /// relay and reminder scheduler look at the store again.
  virtual void data_arrived(const std::string& service) = 0;
  /// Calls `_cluster.<method>` on member `to` and waits for the answer.
  virtual result<std::string> call_peer(const member& to, const std::string& method, std::string payload,
                                        std::chrono::milliseconds timeout) = 0;
  /// Opens the link to member `to` ahead of a transfer (its connection and
  /// CURVE handshake are done before the first call needs them).
  virtual void connect_peer(const member& to) = 0;
  /// Sends `_cluster.<method>` to member `to` and does not wait (a hint: its
  /// answer and its loss are ignored).
  virtual void tell_peer(const member& to, const std::string& method, std::string payload,
                         std::chrono::milliseconds timeout) = 0;
};

class cluster_agent {
 public:
  /// `endpoint`, `public_key`: how other nodes reach and authenticate this
  /// one. `sharded`: the services routed by shard; `hosted`: those of them
  /// this node hosts (it may own their shards); `all_hosted`: every service
  /// it hosts (published, so that other members find its worker services).
  cluster_agent(cluster_config cfg, std::string node, std::string endpoint, std::string public_key,
                std::vector<std::string> sharded, std::vector<std::string> hosted,
                std::vector<std::string> all_hosted, std::string data_dir, cluster_host& host);
  ~cluster_agent();
  cluster_agent(const cluster_agent&) = delete;
  cluster_agent& operator=(const cluster_agent&) = delete;

  /// Registers the node and starts the threads; waits (at most one lease
  /// TTL) for the first view, so that the node routes by shard from its
  /// first request.
  void start();
  /// Stops serving, gives the lease up (the node leaves at once), joins the threads.
  void stop();

  /// True for a service routed by shard: configured so here, or one the
  /// cluster keeps a shard map for (a gateway needs no list).
  [[nodiscard]] bool sharded(const std::string& service) const;
  /// Where a request for `key` of sharded `service` goes; `forwarded`: it
  /// came from a node that believed this one owns it (it is not forwarded again).
  [[nodiscard]] route_decision route(const std::string& service, std::string_view key, bool forwarded) const;
  /// True when this node serves `key` of `service` now (owner, no handoff,
  /// lease not past its deadline): activations and writes ask.
  [[nodiscard]] bool serves(const std::string& service, std::string_view key) const;
  /// True when a request for `key` admitted under `epoch` may still run and
  /// write here: the shard is served, or it is being handed over and its
  /// records are not sealed for export yet (admitted requests complete).
  /// Epoch 0: whether this node still holds the shard's entities at all.
  [[nodiscard]] bool admits(const std::string& service, std::string_view key, std::uint64_t epoch) const;
  /// Counts `req` against its shard until it is answered (a handoff waits for
  /// them). For a `precopy` decision: false when the pre-copy ended meanwhile
  /// (the request is held instead; it was not counted).
  bool track(detail::request& req, const std::string& service, std::uint32_t shard, bool precopy = false);
  /// Answers a `_cluster.*` request from another node (handoff transfers) off the caller's thread.
  void handle(detail::request_ptr req);

  /// Operator verbs (admin `cluster`): "status", "shards", "drain", "undrain",
  /// "rebalance", "reassign". `args`: JSON object. Blocking (etcd): run it off the I/O thread.
  [[nodiscard]] result<nlohmann::json> command(const std::string& verb, const nlohmann::json& args);
  [[nodiscard]] nlohmann::json status_json() const;
  [[nodiscard]] std::shared_ptr<const cluster_view> view() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace cohort::cluster
