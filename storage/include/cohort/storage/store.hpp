// store: a service instance's own RocksDB (database per service), with one
// column family per keyspace and a group committer that turns concurrent
// writes into one write batch and one fsync.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cohort/storage/histogram.hpp"
#include "cohort/storage/memory_budget.hpp"
#include "cohort/transport/result.hpp"

namespace cohort {

/// How a write is made durable before it is acknowledged.
enum class durability {
  sync,   ///< the WAL is fsynced before the write is acknowledged: survives power loss
  async,  ///< written to the WAL (in the OS page cache) without fsync: survives a process crash, not a power loss
};

/// The column families of a service's store.
enum class keyspace : std::uint8_t {
  state,        ///< entity state, one value per entity key
  journal,      ///< event-sourced entities: events by entity and sequence number
  snapshot,     ///< event-sourced entities: the latest snapshot per entity
  idempotency,  ///< stored results of requests that carried an idempotency key
  outbox,       ///< events written with the change that caused them, until their subscriber acknowledges
  pending,      ///< entities with unfinished work (e.g. a saga) to resume after a crash or restart
  reminders,    ///< entities' durable timers: a schedule in time order, and an index by entity (reminder_keys.hpp)
  events,       ///< the service's event log for client subscriptions: events by 8-byte big-endian sequence number
  cursors,      ///< durable client subscriptions: name -> last acknowledged sequence number; the log's head
};
inline constexpr std::size_t keyspace_count = 9;

/// The key of an entity in the state and snapshot keyspaces, and the prefix
/// of its journal: a 4-byte big-endian length, then the entity key, so that no
/// entity's range contains another's. Journal keys append an 8-byte big-endian
/// sequence number.
[[nodiscard]] std::string entity_key(std::string_view key);
[[nodiscard]] std::string journal_key(std::string_view key, std::uint64_t seq);

/// Options for one store. Default member values are the defaults.
struct store_options {
  /// Durability of every write. Default: sync.
  durability mode = durability::sync;
  /// Create the directory and database when missing. Default: true.
  bool create_if_missing = true;
  /// Most writes the group committer folds into one batch. Default: 1024.
  std::size_t max_group = 1024;
  /// Times the committer yields, looking for more work, before it sleeps: a
  /// client waiting for its reply sends the next write soon after. Default: 200.
  int committer_spin = 200;
  /// Batches queued for the committer at most; commit() beyond it answers
  /// `overloaded` at once instead of growing the queue without bound (a disk
  /// that cannot keep up must push back). Default: 100000.
  std::size_t max_queued = 100000;
  /// Shared with other stores: once their memtables together pass it, the
  /// store being written flushes (memory_budget.hpp). Null: RocksDB's bound
  /// per column family alone.
  std::shared_ptr<memory_budget> memory;
};

/// An atomic group of puts and deletes across keyspaces.
struct write_batch {
  struct op {
    keyspace space;
    std::string key;
    std::optional<std::string> value;  ///< nullopt = delete
  };
  std::vector<op> ops;
  /// The entity whose change this is (checked by a write guard); empty: none.
  std::string entity;
  /// Clusters: the epoch of the entity's shard the request that made this
  /// change was admitted under (0: not a request's, or no cluster).
  std::uint64_t epoch = 0;
  void put(keyspace s, std::string key, std::string value) { ops.push_back({s, std::move(key), std::move(value)}); }
  void erase(keyspace s, std::string key) { ops.push_back({s, std::move(key), std::nullopt}); }
  [[nodiscard]] bool empty() const noexcept { return ops.empty(); }
};

/// What an operator sees of a store.
struct store_stats {
  std::uint64_t estimated_keys = 0;
  std::uint64_t size_on_disk_bytes = 0;
  std::uint64_t pending_compaction_bytes = 0;
  std::uint64_t memtable_bytes = 0;  ///< writes held in memory, not yet flushed to table files
  std::uint64_t running_compactions = 0;
  std::uint64_t commits = 0;         ///< write batches written (one fsync each in sync mode)
  std::uint64_t committed_writes = 0;  ///< writes folded into them
  std::uint64_t free_bytes = 0;      ///< space left on the store's file system
  std::uint64_t failed_commits = 0;  ///< batches that could not be written (disk full, I/O error)
  std::uint64_t recoveries = 0;      ///< times the store resumed writing after such a failure
  std::uint64_t bytes_written = 0;   ///< bytes of the batches written (RocksDB's batch data size)
  histogram_snapshot commit_seconds; ///< time of each group commit's write (and fsync), in seconds
  histogram_snapshot batch_writes;   ///< writes folded into each group commit
  std::string write_error;           ///< why writes are refused now; empty when the store writes
};

/// Table files holding some entities' records (store::export_entities), one
/// per keyspace that had any, ready to be ingested by another store.
struct entity_export {
  struct file {
    keyspace space;
    std::string path;
    std::uint64_t records = 0;
    /// Not a table file: a list of puts and deletes across keyspaces
    /// (export_changes), written as ordinary durable writes by ingest().
    bool ops = false;
  };
  std::vector<file> files;
  std::uint64_t records = 0;
};

/// Picks entities by key (a shard's, in a cluster).
using entity_filter = std::function<bool(std::string_view entity_key)>;

/// One open RocksDB. Safe to call from any thread.
class store {
 public:
  using commit_callback = std::function<void(const result<bool>&)>;

  /// Opens (or creates) the database in `dir`. A locked, unwritable or corrupt
  /// directory is an `unavailable` error whose message names the directory.
  [[nodiscard]] static result<std::unique_ptr<store>> open(const std::string& dir, store_options opts = {});
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Reads one key; nullopt when absent.
  [[nodiscard]] result<std::optional<std::string>> get(keyspace space, std::string_view key) const;

  /// Applies `batch` atomically with the configured durability and waits for it.
  [[nodiscard]] result<bool> write(const write_batch& batch);

  /// Decides, as each entity's batch is queued, whether it may be written:
  /// an error refuses it (`done` gets it, nothing is written). Checked under
  /// the queue's lock, so that once the guard refuses an entity, a barrier()
  /// that follows has every batch of it that was let in before. Clusters
  /// fence writes of shards the node no longer serves with it. Set before
  /// writes begin.
  using write_guard = std::function<std::optional<error_info>(const write_batch&)>;
  void set_write_guard(write_guard guard);

  /// Queues `batch` for the group committer; `done` runs on the committer's
  /// thread once the batch is durable (or failed). Batches queued together are
  /// written as one RocksDB batch with one fsync, in queue order; each stays atomic.
  void commit(write_batch batch, commit_callback done);

  /// Calls `fn(key, value)` for every key starting with `prefix`, in key order,
  /// from `start` (inclusive; empty = the prefix itself) to `end` (exclusive;
  /// empty = the end of the prefix); stops when fn returns false. Both bounds
  /// go to RocksDB, so the deleted keys beyond them are never stepped over.
  [[nodiscard]] result<bool> scan(keyspace space, std::string_view prefix, std::string_view start,
                                  const std::function<bool(std::string_view, std::string_view)>& fn,
                                  std::string_view end = {}) const;

  /// A read that never touches the disk: the value (or its absence) when the
  /// memtables and the block cache can tell, an empty optional when only the
  /// table files could. For actors: the answer now, or read() it off-thread.
  [[nodiscard]] result<std::optional<std::optional<std::string>>> get_if_in_memory(keyspace space,
                                                                                 std::string_view key) const;
  /// Runs `job` on the store's reader thread (jobs run one at a time, in order).
  void read(std::function<void(const store&)> job);
  /// Runs `job` on the store's reader thread once every batch queued before
  /// this call has been written (or refused). For actors, which must not wait
  /// for the disk on a scheduler thread: the job reads and sends the result
  /// back as a message. Jobs run one at a time, in order; all queued jobs run
  /// before the store closes.
  void read_after_writes(std::function<void(const store&)> job);
  /// Waits until every batch queued before this call is written (a barrier
  /// for readers that must see them). Returns at once when nothing is queued.
  void barrier();

  [[nodiscard]] store_stats stats() const;

  /// Compacts one keyspace now (expired idempotency records are dropped by
  /// every compaction of their keyspace; this forces one).
  [[nodiscard]] result<bool> compact(keyspace space);

  /// Writes a consistent checkpoint (hard links where possible) into `dir`,
  /// which must not exist, while the store keeps serving.
  [[nodiscard]] result<bool> checkpoint(const std::string& dir) const;

  /// Reads every table file and checks every block's checksum (a scrub).
  /// `store_corrupt` names the damaged file. Reads the whole store: not for a
  /// scheduler thread.
  [[nodiscard]] result<bool> verify() const;
  /// Writes the memory tables to table files (the log then holds nothing).
  [[nodiscard]] result<bool> flush();

  /// Checks a store that is not open: opens it read-only (which replays and
  /// checks the log) and verifies every table. For a service that is down.
  [[nodiscard]] static result<bool> verify_closed(const std::string& dir);
  /// Opens a damaged store accepting the loss of everything in the log after
  /// the first damaged record (RocksDB's point-in-time recovery), persists
  /// what was recovered, and closes it. Returns what RocksDB reported dropping.
  [[nodiscard]] static result<std::string> salvage(const std::string& dir);

  /// Writes every record of the entities `belongs` picks (entity keyspaces
  /// only: see entity_owner.hpp) into one table file per keyspace under `dir`
  /// (created), from one consistent snapshot. Reads the whole store: not for a
  /// scheduler thread.
  [[nodiscard]] result<entity_export> export_entities(const entity_filter& belongs, const std::string& dir) const;
  /// Deletes every record of the entities `belongs` picks (durably, in
  /// batches). Returns how many were deleted. Not for a scheduler thread.
  [[nodiscard]] result<std::uint64_t> erase_entities(const entity_filter& belongs);
  /// Adds the records of table files written by export_entities (moved into
  /// the store, newer than anything in it), and applies files of changes
  /// (export_changes), in the order given. Not for a scheduler thread.
  [[nodiscard]] result<bool> ingest(const std::vector<entity_export::file>& files);

  /// Starts recording the keys of every write let in from now on to the
  /// records of the entities `belongs` picks. A handoff's pre-copy: the shard
  /// serves on while a snapshot of it is copied, and then only the records
  /// written meanwhile move (export_changes). Past `limit` keys the tracking
  /// gives up (export_changes fails: export everything instead). Writes
  /// queued before this call are not recorded: barrier() before the snapshot.
  [[nodiscard]] std::uint64_t track_changes(entity_filter belongs, std::size_t limit = std::size_t{1} << 20);
  /// Ends a tracking and writes, from one snapshot, the current record of
  /// every key it recorded (or its deletion) into `dir`/changes.msgpack, to be
  /// ingested after the snapshot's files. A few records: written by the
  /// receiver as one durable batch, which costs less than ingesting a table
  /// file (that flushes memory tables and syncs files and folders).
  /// Call once no more writes of those entities are let in, after barrier().
  [[nodiscard]] result<entity_export> export_changes(std::uint64_t tracking, const std::string& dir);
  /// Writes the changes export_changes listed (durably, as one batch).
  [[nodiscard]] result<bool> apply_changes(const std::string& path);
  /// Ends a tracking without exporting (a handoff called off).
  void stop_tracking(std::uint64_t tracking);

  [[nodiscard]] const std::string& directory() const noexcept { return dir_; }
  [[nodiscard]] durability mode() const noexcept { return opts_.mode; }

 private:
  void enqueue(write_batch batch, commit_callback done);
  struct impl;
  store(std::string dir, store_options opts, std::unique_ptr<impl> p);
  std::string dir_;
  store_options opts_;
  std::unique_ptr<impl> impl_;
};

}  // namespace cohort
