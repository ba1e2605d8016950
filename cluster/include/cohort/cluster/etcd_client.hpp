// etcd_client: the few etcd v3 calls a cluster needs (ranges, puts, compare-
// and-swap transactions, leases), over etcd's HTTP/JSON gateway with libcurl.
// Blocking: used only from the cluster agent's own threads, never from a CAF
// scheduler thread or the I/O thread. Tries the endpoints in turn and sticks
// to the last one that answered.
#pragma once

#include <chrono>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cohort/transport/result.hpp"

namespace cohort::cluster {

/// One key as etcd returns it.
struct etcd_kv {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;
};

/// A prefix's keys and the store's revision when they were read.
struct etcd_range {
  std::vector<etcd_kv> kvs;
  std::int64_t revision = 0;
};

class etcd_client {
 public:
  /// `endpoints`: "http://host:port" of etcd's client URLs. `timeout`: per call.
  etcd_client(std::vector<std::string> endpoints, std::chrono::milliseconds timeout);
  ~etcd_client();
  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  /// Every key under `prefix`, with the revision of the read.
  [[nodiscard]] result<etcd_range> range_prefix(const std::string& prefix);
  /// Puts `key` (bound to `lease` when not 0).
  [[nodiscard]] result<bool> put(const std::string& key, const std::string& value, std::int64_t lease = 0);
  /// Puts `key` only if its mod revision is still `expected` (0: the key does
  /// not exist). False when someone changed it first.
  [[nodiscard]] result<bool> put_if(const std::string& key, const std::string& value, std::int64_t expected,
                                    std::int64_t lease = 0);
  /// Deletes `key`.
  [[nodiscard]] result<bool> erase(const std::string& key);
  /// Grants a lease of `ttl`; returns its id.
  [[nodiscard]] result<std::int64_t> lease_grant(std::chrono::seconds ttl);
  /// Renews a lease; returns the seconds it has left (0: it is gone).
  [[nodiscard]] result<std::int64_t> lease_keepalive(std::int64_t id);
  /// Gives a lease up (its keys go at once).
  [[nodiscard]] result<bool> lease_revoke(std::int64_t id);

  /// Watches every key under `prefix` from `start_revision` on a connection
  /// of its own: calls `changed(revision)` for each batch of changes, until
  /// stop_watching() or the stream breaks (compaction, etcd gone). Blocking.
  [[nodiscard]] result<bool> watch_prefix(const std::string& prefix, std::int64_t start_revision,
                                          const std::function<void(std::int64_t)>& changed);
  /// Ends watch_prefix() at once (from any thread), and every later one.
  void stop_watching();

  /// The endpoint that answered last.
  [[nodiscard]] std::string endpoint() const;

 private:
  /// POSTs `body` to `path` at each endpoint in turn; the parsed JSON text answer.
  result<std::string> call(const std::string& path, const std::string& body);
  std::vector<std::string> endpoints_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mutex_;
  std::size_t current_ = 0;
  void* curl_ = nullptr;  ///< one handle: keeps the connection
  std::atomic<int> watch_fd_{-1};
  std::atomic<bool> watching_stopped_{false};
};

}  // namespace cohort::cluster
