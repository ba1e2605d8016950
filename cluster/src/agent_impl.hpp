// The cluster agent's state, shared by its loop (cluster_agent.cpp) and its
// handoffs (handoff.cpp). Private to the cluster room.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "cohort/storage/store.hpp"

#include "cohort/cluster/cluster_agent.hpp"
#include "cohort/cluster/etcd_client.hpp"

namespace cohort::cluster {

using clock_type = std::chrono::steady_clock;

/// The `_cluster.etcd_probe` request and its answer (handoff.cpp).
std::string probe_request();
bool probe_says_reachable(const std::string& answer);

struct cluster_agent::impl {
  impl(cluster_config c, std::string n, std::string ep, std::string k, std::vector<std::string> s,
       std::vector<std::string> hosted_here, std::vector<std::string> all, std::string dir, cluster_host& h);

  cluster_config cfg;
  std::string node, endpoint, public_key, data_dir;
  std::string member_json() const;
  std::vector<std::string> sharded;  ///< routed by shard
  std::vector<std::string> hosted;   ///< of those, hosted here (this node may own their shards)
  std::vector<std::string> all_hosted;  ///< every service hosted here
  cluster_host& host;
  etcd_client etcd;
  std::string prefix;  ///< "/cohort/<cluster>/"

  // The view routing reads: replaced whole under a short lock.
  mutable std::mutex view_mutex;
  std::shared_ptr<const cluster_view> current = std::make_shared<cluster_view>();
  std::atomic<std::uint64_t> read_tickets{0};  ///< numbers refresh_view's reads in the order they start
  std::uint64_t installed_ticket = 0;          ///< the read `current` came from (under view_mutex)
  std::shared_ptr<const cluster_view> load() const {
    std::lock_guard<std::mutex> guard(view_mutex);
    return current;
  }

  // The lease and what the node may do with it.
  std::atomic<std::int64_t> lease{0};
  /// Steady-clock time (ns) until which this node may serve its shards: the
  /// last renewal's send time plus the TTL etcd granted, less a margin.
  std::atomic<std::int64_t> serving_until_ns{0};
  /// After a new lease the node bumps the epochs of the shards it owns (a
  /// new term) before it serves them again.
  std::atomic<bool> term_confirmed{false};
  std::atomic<bool> etcd_reachable{false};
  /// When etcd last answered this node (steady ns): what peers are told.
  std::atomic<std::int64_t> etcd_answered_ns{0};
  /// etcd is unreachable from a majority of the members too (an etcd outage,
  /// not this node cut off): the node serves on past its lease deadline.
  std::atomic<bool> outage_confirmed{false};
  clock_type::time_point next_renewal{};
  std::chrono::milliseconds margin() const { return std::max(cfg.lease_ttl / 5, std::chrono::milliseconds(500)); }
  bool lease_valid() const {
    return clock_type::now().time_since_epoch().count() < serving_until_ns.load(std::memory_order_relaxed);
  }

  // Requests served here per shard, for the handoff's wait.
  static constexpr std::uint32_t max_shards = 4096;
  std::map<std::string, std::unique_ptr<std::atomic<std::int64_t>[]>> in_flight;
  /// Shards whose records are being exported: no write of them is let in any more.
  std::map<std::string, std::unique_ptr<std::atomic<bool>[]>> sealed;
  /// Shards moving away that this node still serves while a snapshot of them
  /// is copied to the new owner (the pre-copy); only the records written
  /// meanwhile are exported once they are sealed. Set by this process only:
  /// after a restart a moving shard is held until a new pre-copy starts.
  std::map<std::string, std::unique_ptr<std::atomic<bool>[]>> precopying;
  /// True while this process pre-copies `shard` of hosted `service` and has
  /// not sealed it: it serves the shard though the map says it is moving.
  bool served_in_precopy(const std::string& service, std::uint32_t shard) const {
    auto served = precopying.find(service);
    return shard < max_shards && served != precopying.end() && served->second[shard].load() &&
           !sealed.at(service)[shard].load();
  }

  // Threads: the loop (lease, view, coordination), handoffs, answers to peers.
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool handoff_due = false;
  bool view_stale = false;  ///< the watch saw a change: read the view now, not at the next poll
  std::deque<detail::request_ptr> peer_requests;
  std::thread loop_thread, handoff_thread, peer_thread, watch_thread;
  void run_watch();

  // What operators see.
  mutable std::mutex status_mutex;
  std::string etcd_error;
  std::deque<std::string> handoff_log;  ///< the last handoffs and their figures
  std::string handoff_now;              ///< the one running now, if any
  std::set<std::string> swept;          ///< services whose leftovers were deleted since the last term
  void note(const std::string& line);

  // cluster_agent.cpp
  void run_loop();
  void maintain_lease();
  void refresh_view();
  void confirm_term();
  void ride_out_etcd_outage();
  void mark_etcd(bool ok, const std::string& error = {});
  void coordinate(const cluster_view& v);
  std::set<std::string> live_for(const cluster_view& v, const std::string& service) const;
  std::string key_nodes() const { return prefix + "nodes/"; }
  std::string key_shards(const std::string& service) const { return prefix + "shards/" + service; }
  std::string key_drain(const std::string& name) const { return prefix + "drain/" + name; }
  std::string key_coordinator() const { return prefix + "coordinator"; }
  /// Changes one service's map with `edit` by compare-and-swap, reading it
  /// again when someone else changed it first (a few times at most).
  result<bool> change_map(const std::string& service, const std::function<bool(shard_map&)>& edit);

  // handoff.cpp
  void run_handoffs();
  void handoff_step();
  /// The old owner's pre-copy of shards moving to one target: the snapshot
  /// exported while they serve ("base"), and the tracking of what changes.
  struct precopy {
    std::string id;
    std::uint64_t tracking = 0;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> shards;  ///< shard, epoch
    nlohmann::json files;  ///< the base's files as the manifest lists them
    clock_type::time_point started;
    bool taken = false;  ///< the target said it ingested the base
  };
  /// Per "service/target" (handoff thread only).
  std::map<std::string, precopy> precopies;
  /// "service/target/id": targets that have ingested that base (under `mutex`).
  std::set<std::string> base_taken;
  /// New owner: the base it ingested, per "service/old owner" (under `mutex`).
  std::map<std::string, std::pair<std::string, std::vector<std::pair<std::uint32_t, std::uint64_t>>>> have_base;
  /// "service/old owner" pairs whose old owner said a base is ready (under `mutex`).
  std::set<std::string> told_base;
  /// New owner: manifests an old owner pushed with the changes inline
  /// (`_cluster.export`), per "service/old owner"; used instead of asking (under `mutex`).
  std::map<std::string, std::string> pushed;
  void begin_precopy(const std::string& service, const std::string& to, const std::vector<std::uint32_t>& shards,
                     const shard_map& map);
  /// Ends a pre-copy that will not be exported (called off, or changed): its
  /// shards are no longer served here unless the map gives them back.
  void end_precopy(const std::string& service, const std::string& key);
  /// Seals `shards` and exports them: what changed since the pre-copy's base
  /// (listed with the base's files), or everything when there is none.
  void export_shards(const std::string& service, const std::string& to, const std::vector<std::uint32_t>& shards,
                     const shard_map& map, const precopy* base);
  /// New owner: fetches and ingests a pre-copy's base while the old owner serves on.
  void import_base(const std::string& service, const std::string& from, const std::vector<std::uint32_t>& candidates,
                   const shard_map& map, const cluster_view& v);
  /// Fetches the manifest's `files` (those `wanted`) into `dir`, from the
  /// inline answer or in chunks; checks each SHA-256. nullopt on any failure.
  std::optional<std::vector<entity_export::file>> fetch_files(const member& from, const std::string& service,
                                                              const nlohmann::json& files,
                                                              const std::map<std::string, std::string>& inline_files,
                                                              const std::string& dir,
                                                              const std::function<bool(const nlohmann::json&)>& wanted,
                                                              int& answers, std::uint64_t& bytes);
  /// Imports running, per "service/old owner" (handoff thread only; waited for at stop).
  struct running_import {
    std::future<void> done;
    bool base = false;  ///< a pre-copy's base, not the export itself
  };
  std::map<std::string, running_import> importing;
  /// Marks `shards` exported to `to` in the map (their files are on disk); true when it did.
  bool mark_exported(const std::string& service, const std::string& to, const std::vector<std::uint32_t>& shards,
                     const shard_map& map);
  /// Imports the export `from` made for this node, of shards among
  /// `candidates` (moving or exported to this node in `map`).
  void import_shards(const std::string& service, const std::string& from, const std::vector<std::uint32_t>& candidates,
                     const shard_map& map, const cluster_view& v);
  /// Waits until the view marks `shards` exported from `from` to this node at
  /// `map`'s epochs; false when they are called off or moved on meanwhile.
  bool await_exported(const std::string& service, const std::string& from, const std::vector<std::uint32_t>& shards,
                      const shard_map& map);
  /// "service/old owner" pairs whose old owner said its export for this node
  /// is on disk (under `mutex`; read by handoff_step).
  std::set<std::string> told_exported;
  bool stopping_now() {
    std::lock_guard<std::mutex> guard(mutex);
    return stopping;
  }
  void clean_up(const std::string& service, const shard_map& map);
  /// When each service last had a handoff to or from this node under way
  /// (handoff thread): the sweep of departed records waits for a quiet second,
  /// so that it does not compete with the writes of a rebalance still going on.
  std::map<std::string, clock_type::time_point> handoff_seen;
  bool sweep_waiting = false;  ///< a sweep waits for quiet (handoff thread)
  /// Imports of exports that ended without taking the shards (the old owner
  /// did not answer, a checksum failed...): tried again after a backoff that
  /// doubles, 50 ms to 2 s, not at once in a loop (handoff thread).
  std::map<std::string, std::pair<clock_type::time_point, std::chrono::milliseconds>> import_retry;
  bool retry_waiting = false;
  void run_peer_answers();
  void answer_peer(detail::request& req);
  std::string export_dir(const std::string& service, const std::string& to) const;
  std::string import_dir(const std::string& service, const std::string& from) const;
};

}  // namespace cohort::cluster
