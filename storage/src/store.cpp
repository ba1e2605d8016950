#include "cohort/storage/store.hpp"

#include "cohort/storage/idempotency.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

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

std::string big_endian(std::uint64_t v, int bytes) {
  std::string out(static_cast<std::size_t>(bytes), '\0');
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

const char* const family_names[keyspace_count] = {rocksdb::kDefaultColumnFamilyName.c_str(), "journal", "snapshot",
                                                  "idempotency", "outbox", "pending"};

}  // namespace

std::string entity_key(std::string_view key) { return big_endian(key.size(), 4) + std::string(key); }

std::string journal_key(std::string_view key, std::uint64_t seq) { return entity_key(key) + big_endian(seq, 8); }

struct store::impl {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  rocksdb::WriteOptions write_options;

  // Group commit: writers queue batches, one thread writes them together.
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<write_batch, commit_callback>> queue;
  bool stopping = false;
  std::thread committer;
  std::atomic<std::uint64_t> commits{0}, committed_writes{0};
  std::atomic<std::int64_t> queued{0};  ///< batches queued or being written
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
      rocksdb::WriteBatch wb;
      rocksdb::Status status;
      for (auto& [batch, done] : group) {
        // Save points keep each caller's batch atomic even if another's is rejected.
        wb.SetSavePoint();
        auto s = add(wb, batch);
        if (!s.ok()) {
          wb.RollbackToSavePoint().PermitUncheckedError();
          done(error_info{errc::internal, "store batch rejected: " + s.ToString()});
          done = nullptr;
        }
      }
      status = wb.Count() > 0 ? db->Write(write_options, &wb) : rocksdb::Status::OK();
      if (wb.Count() > 0) commits++;
      committed_writes += group.size();
      for (auto& [batch, done] : group) {
        if (!done) continue;
        if (status.ok())
          done(true);
        else
          done(error_info{errc::unavailable, "store write failed in '" + dir + "': " + status.ToString()});
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
  impl_->committer = std::thread([this] { impl_->run_committer(dir_); });
}

store::~store() {
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->committer.join();  // every queued batch is written and answered first
  for (auto* f : impl_->families) impl_->db->DestroyColumnFamilyHandle(f).PermitUncheckedError();
  impl_->db->Close().PermitUncheckedError();
}

result<std::unique_ptr<store>> store::open(const std::string& dir, store_options opts) {
  rocksdb::Options o;
  o.create_if_missing = opts.create_if_missing;
  o.create_missing_column_families = true;
  o.paranoid_checks = true;
  o.max_open_files = 256;
  o.keep_log_file_num = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : family_names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(o));
  descriptors[static_cast<std::size_t>(keyspace::idempotency)].options.compaction_filter = &expired_results;
  auto p = std::make_unique<impl>();
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(rocksdb::DBOptions(o), dir, descriptors, &p->families, &raw);
  if (!status.ok())
    return error_info{errc::unavailable, "cannot open store in '" + dir + "': " + status.ToString()};
  p->db.reset(raw);
  p->write_options.sync = opts.mode == durability::sync;
  return std::unique_ptr<store>(new store(dir, opts, std::move(p)));
}

result<std::optional<std::string>> store::get(keyspace space, std::string_view key) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->family(space), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return error_info{errc::internal, "store read failed in '" + dir_ + "': " + s.ToString()};
  return std::optional<std::string>{std::move(value)};
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
  if (impl_->queued.load() > 0) (void)write(write_batch{});
}

void store::commit(write_batch batch, commit_callback done) {
  impl_->queued++;
  {
    std::lock_guard<std::mutex> guard(impl_->mutex);
    impl_->queue.emplace_back(std::move(batch), std::move(done));
  }
  impl_->wake.notify_one();
}

result<bool> store::scan(keyspace space, std::string_view prefix, std::string_view start,
                         const std::function<bool(std::string_view, std::string_view)>& fn) const {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->family(space)));
  auto from = start.empty() ? prefix : start;
  for (it->Seek(rocksdb::Slice(from.data(), from.size())); it->Valid(); it->Next()) {
    auto k = it->key();
    if (!k.starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) break;
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(it->value().data(), it->value().size()))) break;
  }
  auto s = it->status();
  if (!s.ok()) return error_info{errc::internal, "store scan failed in '" + dir_ + "': " + s.ToString()};
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
  }
  std::uint64_t v = 0;
  if (impl_->db->GetIntProperty("rocksdb.num-running-compactions", &v)) out.running_compactions = v;
  out.commits = impl_->commits.load();
  out.committed_writes = impl_->committed_writes.load();
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

}  // namespace cohort
