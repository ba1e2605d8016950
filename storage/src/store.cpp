#include "cohort/storage/store.hpp"

#include "cohort/storage/changes_list.hpp"
#include "cohort/storage/entity_owner.hpp"
#include "cohort/storage/idempotency.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <cstdarg>
#include <sys/statvfs.h>

#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include "cohort/log/log.hpp"
#include "cohort/log/thread_name.hpp"
#include <spdlog/spdlog.h>

namespace cohort {

namespace {

/// Drops expired idempotency records whenever RocksDB compacts that keyspace.
class expired_results_filter final : public rocksdb::CompactionFilter {
 public:
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*, bool*) const override {
    return !decode_idempotent_result(std::string_view(value.data(), value.size()), system_now_ms()).has_value();
  }
  const char* Name() const override { return "cohort.expired_results"; }
};

const expired_results_filter expired_results;

/// RocksDB's info log, sent to the node's log instead of a LOG file beside the
/// data: a LOG file on a full disk makes the Debian build (assertions on)
/// abort in WritableFileWriter on the next line logged after a failed one.
class store_logger final : public rocksdb::Logger {
 public:
  explicit store_logger(std::string dir) : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), dir_(std::move(dir)) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL)
      log::get("store")->error("store {}: {}", dir_, line);
    else
      log::get("store")->warn("store {}: {}", dir_, line);
    std::string text(line);
    // "<file>: dropping N bytes; Corruption: ..." names the damaged file
    // (the Status alone often does not) and says what a salvage lost.
    if (text.find("dropping") != std::string::npos) {
      std::lock_guard<std::mutex> guard(mutex_);
      if (damage_.size() < 16) damage_.push_back(std::move(text));
    }
  }

  /// Every report of damage RocksDB logged (the first 16), joined; empty if none.
  std::string damage() {
    std::lock_guard<std::mutex> guard(mutex_);
    std::string out;
    for (const auto& d : damage_) out += (out.empty() ? "" : "; ") + d;
    return out;
  }

 private:
  std::string dir_;
  std::mutex mutex_;
  std::vector<std::string> damage_;
};

/// Keeps RocksDB's own recovery from a full disk out of the way: it waits for
/// free space of a whole memory table (64 MiB by default) before it clears
/// the error, and refuses Resume() meanwhile. The committer resumes instead,
/// as soon as a write fits again.
class manual_recovery final : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status bg_error, bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

/// The stable code for a failed write or open: what the caller can do about it differs.
error_info classify(const rocksdb::Status& s, const std::string& what) {
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace || s.ToString().find("No space left") != std::string::npos)
    return {errc::storage_full, what + ": the disk is full (" + s.ToString() + ")"};
  if (s.IsCorruption()) return {errc::store_corrupt, what + ": the store is damaged (" + s.ToString() + ")"};
  return {errc::storage_unavailable, what + ": " + s.ToString()};
}

std::uint64_t free_space(const std::string& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return 0;
  return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
}

/// One consistent view of the whole store, released when it goes out of scope.
class pinned_snapshot {
 public:
  explicit pinned_snapshot(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) {}
  ~pinned_snapshot() { db_->ReleaseSnapshot(snap_); }
  pinned_snapshot(const pinned_snapshot&) = delete;
  pinned_snapshot& operator=(const pinned_snapshot&) = delete;
  [[nodiscard]] rocksdb::ReadOptions read_options() const {
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_;
    return ro;
  }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
};

const char* const family_names[keyspace_count] = {rocksdb::kDefaultColumnFamilyName.c_str(), "journal", "snapshot",
                                                  "idempotency", "outbox", "pending", "reminders",
                                                  "events", "cursors"};

}  // namespace

namespace {

/// The options every store opens with (open, a read-only check, a salvage);
/// `mode` decides how the log is replayed.
rocksdb::Options store_options_for(std::shared_ptr<store_logger> logger, rocksdb::WALRecoveryMode mode) {
  rocksdb::Options o;
  o.create_missing_column_families = true;
  o.paranoid_checks = true;
  o.max_open_files = 256;
  o.keep_log_file_num = 2;
  o.info_log = std::move(logger);
  o.listeners.push_back(std::make_shared<manual_recovery>());
  o.wal_recovery_mode = mode;
  return o;
}

/// One descriptor per keyspace; expired idempotency records go at compaction.
std::vector<rocksdb::ColumnFamilyDescriptor> all_families(const rocksdb::Options& o) {
  std::vector<rocksdb::ColumnFamilyDescriptor> out;
  for (const char* name : family_names) out.emplace_back(name, rocksdb::ColumnFamilyOptions(o));
  out[static_cast<std::size_t>(keyspace::idempotency)].options.compaction_filter = &expired_results;
  // Marks set and cleared once per saga: a scan of the keyspace (the resume
  // sweep, every resume_every_ms) steps over every cleared mark still in a
  // memtable. A 1 MiB memtable is flushed after ~10k of them, and compaction
  // drops them (500k cleared marks: a scan of 159 ms with RocksDB's 64 MiB
  // default, 6 ms with this).
  out[static_cast<std::size_t>(keyspace::pending)].options.write_buffer_size = 1 << 20;
  return out;
}

/// The open error, with the damaged file when RocksDB logged one.
error_info open_error(const rocksdb::Status& s, const std::string& what, store_logger& logger) {
  auto err = classify(s, what);
  if (auto where = logger.damage(); !where.empty()) err.message += "; RocksDB: " + where;
  return err;
}

void close_all(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*>& families) {
  for (auto* f : families) db->DestroyColumnFamilyHandle(f).PermitUncheckedError();
  db->Close().PermitUncheckedError();
  delete db;
}

}  // namespace

struct store::impl {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  rocksdb::WriteOptions write_options;

  // Group commit: writers queue batches, one thread writes them together.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<write_batch, commit_callback>> queue;
  store::write_guard guard;  ///< set once before writes; read under `mutex`
  bool stopping = false;
  std::thread committer;
  std::atomic<std::uint64_t> commits{0}, committed_writes{0}, failed_commits{0}, recoveries{0}, bytes_written{0};
  // 50 us .. 10 s, as the request latencies; batches of 1 .. 1024 writes.
  histogram commit_seconds{{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}};
  histogram batch_writes{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}};
  /// Why writes are refused now (committer thread writes, anyone reads under `mutex`).
  std::optional<error_info> write_error;
  std::chrono::steady_clock::time_point last_resume{};
  std::atomic<std::int64_t> queued{0};  ///< batches queued or being written

  /// Change trackings (track_changes): keys written to some entities' records,
  /// recorded as their batches are let in (under `mutex`).
  struct tracking {
    entity_filter belongs;
    std::size_t limit = 0, recorded = 0;
    bool overflowed = false;
    std::set<std::string> keys[keyspace_count];  ///< per keyspace, each key once
  };
  std::map<std::uint64_t, tracking> trackings;
  std::uint64_t next_tracking = 1;
  void record_changes(const write_batch& batch) {
    for (auto& [id, t] : trackings) {
      if (t.overflowed) continue;
      for (const auto& op : batch.ops) {
        auto owner = owning_entity(op.space, op.key);
        if (!owner || !t.belongs(*owner)) continue;
        if (t.keys[static_cast<std::size_t>(op.space)].insert(op.key).second && ++t.recorded > t.limit) {
          t.overflowed = true;
          for (auto& k : t.keys) k.clear();
          break;
        }
      }
    }
  }

  // Reads for actors (activations, scans): on a thread of the store's own, so
  // that a slow disk holds this store's readers and never a scheduler thread.
  std::mutex read_mutex;
  std::condition_variable read_wake;
  std::deque<std::function<void()>> reads;
  bool reads_stopping = false;
  std::thread reader;

  void run_reader(const std::string& dir) {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(read_mutex);
        read_wake.wait(lock, [this] { return reads_stopping || !reads.empty(); });
        if (reads.empty()) return;
        job = std::move(reads.front());
        reads.pop_front();
      }
      try {
        job();
      } catch (const std::exception& e) {
        log::get("store")->error("store {}: a read job threw: {}", dir, e.what());
      } catch (...) {
        log::get("store")->error("store {}: a read job threw a non-standard exception", dir);
      }
    }
  }

  void post_read(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> guard(read_mutex);
      reads.push_back(std::move(job));
    }
    read_wake.notify_one();
  }
  std::size_t max_group = 1024;
  int spin = 0;

  rocksdb::ColumnFamilyHandle* family(keyspace s) const { return families[static_cast<std::size_t>(s)]; }

  rocksdb::Status add(rocksdb::WriteBatch& wb, const write_batch& batch) const {
    for (const auto& op : batch.ops) {
      auto s = op.value ? wb.Put(family(op.space), op.key, *op.value) : wb.Delete(family(op.space), op.key);
      if (!s.ok()) return s;
    }
    return rocksdb::Status::OK();
  }

  /// Calls back a writer. One that throws must not take the committer (and
  /// every later write of the store) with it.
  static void notify(const commit_callback& done, const result<bool>& outcome, const std::string& dir) {
    try {
      done(outcome);
    } catch (const std::exception& e) {
      log::get("store")->error("store {}: a commit callback threw: {}", dir, e.what());
    } catch (...) {
      log::get("store")->error("store {}: a commit callback threw a non-standard exception", dir);
    }
  }

  void run_committer(const std::string& dir) {
    std::vector<std::pair<write_batch, commit_callback>> group;
    for (;;) {
      // Briefly look for more work before sleeping: a writer that waits for
      // its fsync usually sends its next write right after the reply.
      for (int i = 0; i < spin && queued.load(std::memory_order_relaxed) == 0; ++i) std::this_thread::yield();
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [this] { return stopping || !queue.empty(); });
        if (queue.empty() && stopping) return;
        while (!queue.empty() && group.size() < max_group) {
          group.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      // After a failed write RocksDB refuses writes until Resume() succeeds
      // (the background error). Try it at most every 100 ms, before writing:
      // once space is back, writes go through again without a restart.
      std::optional<error_info> refused;
      {
        std::lock_guard<std::mutex> guard(mutex);
        refused = write_error;
      }
      if (refused) {
        auto now = std::chrono::steady_clock::now();
        if (now - last_resume >= std::chrono::milliseconds(100)) {
          last_resume = now;
          auto resumed = db->Resume();
          if (resumed.ok()) {
            recoveries++;
            log::get("store")->warn("store {}: writes resumed after: {}", dir, refused->message);
            std::lock_guard<std::mutex> guard(mutex);
            write_error.reset();
            refused.reset();
          } else {
            refused = classify(resumed, "store '" + dir + "' cannot write");
          }
        }
      }
      if (refused) {
        for (auto& [batch, done] : group) notify(done, *refused, dir);
        failed_commits += group.size();
        queued -= static_cast<std::int64_t>(group.size());
        group.clear();
        continue;
      }
      rocksdb::WriteBatch wb;
      rocksdb::Status status;
      for (auto& [batch, done] : group) {
        // Save points keep each caller's batch atomic even if another's is rejected.
        wb.SetSavePoint();
        auto s = add(wb, batch);
        if (!s.ok()) {
          wb.RollbackToSavePoint().PermitUncheckedError();
          notify(done, error_info{errc::internal, "store batch rejected: " + s.ToString()}, dir);
          done = nullptr;
        }
      }
      const auto write_began = std::chrono::steady_clock::now();
      status = wb.Count() > 0 ? db->Write(write_options, &wb) : rocksdb::Status::OK();
      if (wb.Count() > 0) {
        commits++;
        commit_seconds.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - write_began).count());
        batch_writes.observe(static_cast<double>(group.size()));
        if (status.ok()) bytes_written += wb.GetDataSize();
      }
      std::optional<error_info> failed;
      if (status.ok()) {
        committed_writes += group.size();
      } else {
        failed = classify(status, "store '" + dir + "' could not write");
        failed_commits += group.size();
        log::get("store")->error("{}; refusing writes until the store resumes", failed->message);
        std::lock_guard<std::mutex> guard(mutex);
        write_error = failed;
        last_resume = std::chrono::steady_clock::now();
      }
      for (auto& [batch, done] : group) {
        if (!done) continue;
        if (!failed)
          notify(done, true, dir);
        else
          notify(done, *failed, dir);
      }
      queued -= static_cast<std::int64_t>(group.size());
      group.clear();
    }
  }
};

store::store(std::string dir, store_options opts, std::unique_ptr<impl> p)
    : dir_(std::move(dir)), opts_(opts), impl_(std::move(p)) {
  impl_->max_group = opts_.max_group;
  impl_->spin = opts_.committer_spin;
  impl_->committer = std::thread([this] {
    log::name_this_thread("store-commit");
    impl_->run_committer(dir_);
  });
  impl_->reader = std::thread([this] {
    log::name_this_thread("store-read");
    impl_->run_reader(dir_);
  });
}

store::~store() {
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->committer.join();  // every queued batch is written and answered first
  {
    std::lock_guard<std::mutex> guard(impl_->read_mutex);
    impl_->reads_stopping = true;
  }
  impl_->read_wake.notify_all();
  impl_->reader.join();  // then every queued read runs (those behind a batch were handed on above)
  for (auto* f : impl_->families) impl_->db->DestroyColumnFamilyHandle(f).PermitUncheckedError();
  impl_->db->Close().PermitUncheckedError();
}

result<std::unique_ptr<store>> store::open(const std::string& dir, store_options opts) {
  // RocksDB would make a new, empty store where CURRENT is missing: refuse
  // when the directory holds a store's files, never silently start over.
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec))
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      auto name = e.path().filename().string();
      if (name.rfind("MANIFEST-", 0) == 0 || e.path().extension() == ".sst" || e.path().extension() == ".log")
        return error_info{errc::store_corrupt, "the store in '" + dir + "' has data files but no CURRENT file (" +
                                                   name + "); restore a backup or repair it by hand"};
    }
  // A new store's folder is made here: RocksDB would log an error ("Error
  // when reading ... NotFound") for a folder it then makes itself.
  if (opts.create_if_missing) std::filesystem::create_directories(dir, ec);
  // A torn record at the end of the log (a crash mid-write, never
  // acknowledged) is dropped; damage anywhere before it fails the open
  // instead of silently dropping every acknowledged write after it.
  auto logger = std::make_shared<store_logger>(dir);
  auto o = store_options_for(logger, rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords);
  o.create_if_missing = opts.create_if_missing;
  if (opts.memory) o.write_buffer_manager = opts.memory->manager_;
  auto p = std::make_unique<impl>();
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(rocksdb::DBOptions(o), dir, all_families(o), &p->families, &raw);
  if (!status.ok()) return open_error(status, "cannot open the store in '" + dir + "'", *logger);
  p->db.reset(raw);
  p->write_options.sync = opts.mode == durability::sync;
  return std::unique_ptr<store>(new store(dir, opts, std::move(p)));
}

result<std::optional<std::string>> store::get(keyspace space, std::string_view key) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->family(space), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return classify(s, "store read failed in '" + dir_ + "'");
  return std::optional<std::string>{std::move(value)};
}

result<std::optional<std::optional<std::string>>> store::get_if_in_memory(keyspace space, std::string_view key) const {
  rocksdb::ReadOptions memory_only;
  memory_only.read_tier = rocksdb::kBlockCacheTier;  // Incomplete instead of reading a table file
  std::string value;
  auto s = impl_->db->Get(memory_only, impl_->family(space), rocksdb::Slice(key.data(), key.size()), &value);
  using answer = std::optional<std::optional<std::string>>;
  if (s.IsIncomplete()) return answer{};
  if (s.IsNotFound()) return answer{std::optional<std::string>{}};
  if (!s.ok()) return classify(s, "store read failed in '" + dir_ + "'");
  return answer{std::optional<std::string>{std::move(value)}};
}

void store::read(std::function<void(const store&)> job) {
  impl_->post_read([this, job = std::move(job)] { job(*this); });
}

result<bool> store::write(const write_batch& batch) {
  std::mutex m;
  std::condition_variable cv;
  std::optional<result<bool>> outcome;
  commit(batch, [&](const result<bool>& r) {
    std::lock_guard<std::mutex> guard(m);
    outcome = r;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return outcome.has_value(); });
  return *outcome;
}

void store::barrier() {
  if (impl_->queued.load() == 0) return;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  enqueue(write_batch{}, [&](const result<bool>&) {  // behind everything queued, never refused
    std::lock_guard<std::mutex> guard(m);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return done; });
}

void store::read_after_writes(std::function<void(const store&)> job) {
  auto run = [this, job = std::move(job)]() { job(*this); };
  if (impl_->queued.load() == 0) return impl_->post_read(std::move(run));
  // Behind every batch queued so far: the committer hands it on once they landed.
  // Never refused for a full queue: the read must follow the writes.
  enqueue(write_batch{}, [this, run = std::move(run)](const result<bool>&) mutable { impl_->post_read(std::move(run)); });
}

void store::commit(write_batch batch, commit_callback done) {
  if (static_cast<std::size_t>(impl_->queued.load(std::memory_order_relaxed)) >= opts_.max_queued) {
    impl_->notify(done, error_info{errc::overloaded, "store '" + dir_ + "' has " + std::to_string(opts_.max_queued) +
                                                      " writes queued; retry later"}, dir_);
    return;
  }
  enqueue(std::move(batch), std::move(done));
}

void store::set_write_guard(write_guard guard) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->guard = std::move(guard);
}

void store::enqueue(write_batch batch, commit_callback done) {
  impl_->queued++;
  std::optional<error_info> refused;
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    if (impl_->guard && !batch.entity.empty()) refused = impl_->guard(batch);
    if (!refused && !impl_->trackings.empty()) impl_->record_changes(batch);
    if (!refused) impl_->queue.emplace_back(std::move(batch), std::move(done));
  }
  if (refused) {
    impl_->queued--;
    impl_->notify(done, *refused, dir_);
    return;
  }
  impl_->wake.notify_one();
}

namespace {
/// The least key greater than every key that starts with `prefix`; empty
/// when there is none (an empty prefix, or one of 0xff bytes only).
std::string prefix_successor(std::string_view prefix) {
  std::string out(prefix);
  while (!out.empty() && static_cast<unsigned char>(out.back()) == 0xff) out.pop_back();
  if (!out.empty()) out.back() = static_cast<char>(static_cast<unsigned char>(out.back()) + 1);
  return out;
}
}  // namespace

result<bool> store::scan(keyspace space, std::string_view prefix, std::string_view start,
                         const std::function<bool(std::string_view, std::string_view)>& fn,
                         std::string_view end) const {
  // Without an upper bound, an iterator that meets deleted keys past the
  // last live one under the prefix steps over every one of them looking for
  // a live key (and stepped over a whole keyspace's worth for an entity's
  // empty reminder index): the bound stops it at the prefix's end.
  std::string upper = prefix_successor(prefix);
  if (!end.empty() && (upper.empty() || end < std::string_view(upper))) upper = std::string(end);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions opts;
  if (!upper.empty()) opts.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(opts, impl_->family(space)));
  auto from = start.empty() ? prefix : start;
  // An empty view may have a null pointer, which RocksDB would hand to memcmp (undefined even for 0 bytes).
  const rocksdb::Slice prefix_slice(prefix.empty() ? "" : prefix.data(), prefix.size());
  for (it->Seek(rocksdb::Slice(from.empty() ? "" : from.data(), from.size())); it->Valid(); it->Next()) {
    auto k = it->key();
    if (!k.starts_with(prefix_slice)) break;
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(it->value().data(), it->value().size()))) break;
  }
  auto s = it->status();
  if (!s.ok()) return classify(s, "store scan failed in '" + dir_ + "'");
  return true;
}

store_stats store::stats() const {
  store_stats out;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_, ec))
    if (e.is_regular_file(ec)) out.size_on_disk_bytes += e.file_size(ec);
  for (auto* f : impl_->families) {
    std::uint64_t v = 0;
    if (impl_->db->GetIntProperty(f, "rocksdb.estimate-num-keys", &v)) out.estimated_keys += v;
    if (impl_->db->GetIntProperty(f, "rocksdb.estimate-pending-compaction-bytes", &v)) out.pending_compaction_bytes += v;
    if (impl_->db->GetIntProperty(f, "rocksdb.cur-size-all-mem-tables", &v)) out.memtable_bytes += v;
  }
  std::uint64_t v = 0;
  if (impl_->db->GetIntProperty("rocksdb.num-running-compactions", &v)) out.running_compactions = v;
  out.commits = impl_->commits.load();
  out.committed_writes = impl_->committed_writes.load();
  out.failed_commits = impl_->failed_commits.load();
  out.bytes_written = impl_->bytes_written.load();
  out.commit_seconds = impl_->commit_seconds.snapshot();
  out.batch_writes = impl_->batch_writes.snapshot();
  out.recoveries = impl_->recoveries.load();
  out.free_bytes = free_space(dir_);
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    if (impl_->write_error) out.write_error = impl_->write_error->message;
  }
  return out;
}

result<bool> store::compact(keyspace space) {
  auto s = impl_->db->CompactRange(rocksdb::CompactRangeOptions(), impl_->family(space), nullptr, nullptr);
  if (!s.ok()) return error_info{errc::internal, "compaction of '" + dir_ + "' failed: " + s.ToString()};
  return true;
}

result<bool> store::checkpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  auto s = rocksdb::Checkpoint::Create(impl_->db.get(), &raw);
  if (!s.ok()) return error_info{errc::internal, "cannot checkpoint '" + dir_ + "': " + s.ToString()};
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  s = cp->CreateCheckpoint(dir);
  if (!s.ok()) return error_info{errc::unavailable, "checkpoint of '" + dir_ + "' into '" + dir + "' failed: " + s.ToString()};
  return true;
}

result<bool> store::verify() const {
  auto s = impl_->db->VerifyChecksum(rocksdb::ReadOptions());
  if (!s.ok()) return classify(s, "verification of '" + dir_ + "' failed");
  return true;
}

result<bool> store::flush() {
  auto s = impl_->db->Flush(rocksdb::FlushOptions(), impl_->families);
  if (!s.ok()) return classify(s, "flush of '" + dir_ + "' failed");
  return true;
}


result<entity_export> store::export_entities(const entity_filter& belongs, const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error_info{errc::unavailable, "cannot create '" + dir + "': " + ec.message()};
  // One snapshot for every keyspace: an entity's state and its idempotency
  // records come from the same moment.
  const pinned_snapshot snap(impl_->db.get());
  auto ro = snap.read_options();
  ro.fill_cache = false;
  entity_export out;
  for (std::size_t i = 0; i < keyspace_count; ++i) {
    const auto space = static_cast<keyspace>(i);
    if (!is_entity_keyspace(space)) continue;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->family(space)));
    std::unique_ptr<rocksdb::SstFileWriter> writer;
    entity_export::file f{space, dir + "/" + family_names[i] + ".sst", 0};
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view k(it->key().data(), it->key().size());
      auto owner = owning_entity(space, k);
      if (!owner || !belongs(*owner)) continue;
      if (!writer) {
        writer = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), rocksdb::Options());
        if (auto s = writer->Open(f.path); !s.ok()) return classify(s, "cannot write '" + f.path + "'");
      }
      if (auto s = writer->Put(it->key(), it->value()); !s.ok()) return classify(s, "cannot write '" + f.path + "'");
      f.records++;
    }
    if (auto s = it->status(); !s.ok()) return classify(s, "export from '" + dir_ + "' failed");
    if (!writer) continue;
    if (auto s = writer->Finish(); !s.ok()) return classify(s, "cannot finish '" + f.path + "'");
    out.records += f.records;
    out.files.push_back(std::move(f));
  }
  return out;
}

result<std::uint64_t> store::erase_entities(const entity_filter& belongs) {
  std::uint64_t erased = 0;
  for (std::size_t i = 0; i < keyspace_count; ++i) {
    const auto space = static_cast<keyspace>(i);
    if (!is_entity_keyspace(space)) continue;
    write_batch batch;
    auto flush = [&]() -> result<bool> {
      if (batch.empty()) return true;
      auto written = write(batch);
      erased += batch.ops.size();
      batch.ops.clear();
      return written;
    };
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->family(space)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view k(it->key().data(), it->key().size());
      auto owner = owning_entity(space, k);
      if (!owner || !belongs(*owner)) continue;
      batch.erase(space, std::string(k));
      if (batch.ops.size() >= 4096)
        if (auto w = flush(); !w) return w.error();
    }
    if (auto s = it->status(); !s.ok()) return classify(s, "scan of '" + dir_ + "' failed");
    if (auto w = flush(); !w) return w.error();
  }
  return erased;
}

result<bool> store::ingest(const std::vector<entity_export::file>& files) {
  for (const auto& f : files) {
    if (f.ops) {
      if (auto applied = apply_changes(f.path); !applied) return applied.error();
      continue;
    }
    rocksdb::IngestExternalFileOptions o;
    o.move_files = true;
    auto s = impl_->db->IngestExternalFile(impl_->family(f.space), {f.path}, o);
    if (!s.ok()) return classify(s, "cannot ingest '" + f.path + "' into '" + dir_ + "'");
  }
  return true;
}

result<bool> store::verify_closed(const std::string& dir) {
  auto logger = std::make_shared<store_logger>(dir);
  auto o = store_options_for(logger, rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords);
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(o), dir, all_families(o), &families, &raw);
  if (!s.ok()) return open_error(s, "the store in '" + dir + "' does not open", *logger);
  s = raw->VerifyChecksum(rocksdb::ReadOptions());
  close_all(raw, families);
  if (!s.ok()) return classify(s, "verification of '" + dir + "' failed");
  return true;
}

result<std::string> store::salvage(const std::string& dir) {
  auto logger = std::make_shared<store_logger>(dir);
  auto o = store_options_for(logger, rocksdb::WALRecoveryMode::kPointInTimeRecovery);
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(rocksdb::DBOptions(o), dir, all_families(o), &families, &raw);
  if (!s.ok()) return classify(s, "salvage of '" + dir + "' failed: the store does not open even so");
  // What was recovered goes to table files, so the damaged log is never replayed again.
  s = raw->Flush(rocksdb::FlushOptions(), families);
  close_all(raw, families);
  if (!s.ok()) return classify(s, "salvage of '" + dir + "' failed while writing what it recovered");
  auto dropped = logger->damage();
  return dropped.empty() ? std::string("nothing was dropped") : dropped;
}

std::uint64_t store::track_changes(entity_filter belongs, std::size_t limit) {
  std::lock_guard<std::mutex> guard(impl_->mutex);
  const auto id = impl_->next_tracking++;
  auto& t = impl_->trackings[id];
  t.belongs = std::move(belongs);
  t.limit = limit;
  return id;
}

void store::stop_tracking(std::uint64_t tracking) {
  std::lock_guard<std::mutex> guard(impl_->mutex);
  impl_->trackings.erase(tracking);
}

result<entity_export> store::export_changes(std::uint64_t tracking, const std::string& dir) {
  impl::tracking t;
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    auto it = impl_->trackings.find(tracking);
    if (it == impl_->trackings.end()) return error_info{errc::bad_request, "no such change tracking in '" + dir_ + "'"};
    t = std::move(it->second);
    impl_->trackings.erase(it);
  }
  if (t.overflowed)
    return error_info{errc::overloaded, "more than " + std::to_string(t.limit) + " records changed while tracked"};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error_info{errc::unavailable, "cannot create '" + dir + "': " + ec.message()};
  const pinned_snapshot snap(impl_->db.get());
  const auto ro = snap.read_options();
  std::size_t records = 0;
  for (const auto& keys : t.keys) records += keys.size();
  changes_writer list(records);
  std::string value;
  for (std::size_t i = 0; i < keyspace_count; ++i)
    for (const auto& key : t.keys[i]) {
      auto s = impl_->db->Get(ro, impl_->families[i], key, &value);
      if (s.IsNotFound())
        list.erase(static_cast<keyspace>(i), key);  // deleted since the snapshot's copy: deleted there too
      else if (s.ok())
        list.put(static_cast<keyspace>(i), key, value);
      else
        return classify(s, "export of changes from '" + dir_ + "' failed");
    }
  const auto bytes = std::move(list).finish();
  entity_export out;
  entity_export::file f{keyspace::state, dir + "/changes.msgpack", records, true};
  {
    std::ofstream file(f.path, std::ios::binary | std::ios::trunc);
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!file.flush()) return error_info{errc::unavailable, "cannot write '" + f.path + "'"};
  }
  out.records = records;
  out.files.push_back(std::move(f));
  return out;
}

result<bool> store::apply_changes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return error_info{errc::unavailable, "cannot read '" + path + "'"};
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto batch = decode_changes(bytes);
  if (!batch) return error_info{errc::bad_request, "'" + path + "': " + batch.error().message};
  if (batch->empty()) return true;
  return write(*batch);
}

}  // namespace cohort
