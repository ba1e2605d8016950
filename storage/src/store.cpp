#include "cohort/storage/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

namespace cohort {

struct store::impl {
  std::unique_ptr<rocksdb::DB> db;
};

store::store(std::string dir, store_options opts, std::unique_ptr<impl> p)
    : dir_(std::move(dir)), opts_(opts), impl_(std::move(p)) {}

store::~store() {
  if (impl_ && impl_->db) {
    // Flushes nothing extra: the WAL already holds every acknowledged write.
    impl_->db->Close().PermitUncheckedError();
  }
}

result<std::unique_ptr<store>> store::open(const std::string& dir, store_options opts) {
  rocksdb::Options o;
  o.create_if_missing = opts.create_if_missing;
  o.paranoid_checks = true;
  o.max_open_files = 256;
  o.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(o, dir, &raw);
  if (!status.ok())
    return error_info{errc::unavailable, "cannot open store in '" + dir + "': " + status.ToString()};
  auto p = std::make_unique<impl>();
  p->db.reset(raw);
  return std::unique_ptr<store>(new store(dir, opts, std::move(p)));
}

result<std::optional<std::string>> store::get(std::string_view key) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return error_info{errc::internal, "store read failed in '" + dir_ + "': " + s.ToString()};
  return std::optional<std::string>{std::move(value)};
}

result<bool> store::write(const write_batch& batch) {
  rocksdb::WriteBatch wb;
  for (const auto& [k, v] : batch.ops) {
    auto s = v ? wb.Put(k, *v) : wb.Delete(k);
    if (!s.ok()) return error_info{errc::internal, "store batch failed: " + s.ToString()};
  }
  rocksdb::WriteOptions wo;
  wo.sync = opts_.mode == durability::sync;
  auto s = impl_->db->Write(wo, &wb);
  if (!s.ok()) return error_info{errc::internal, "store write failed in '" + dir_ + "': " + s.ToString()};
  return true;
}

}  // namespace cohort
