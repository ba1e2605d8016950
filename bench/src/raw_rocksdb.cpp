#include "raw_rocksdb.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>
#include <unistd.h>

#include <rocksdb/db.h>

namespace cohort::bench {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

scratch_dir::scratch_dir(const std::string& name)
    : path(fs::temp_directory_path() / ("cohort-bench-" + name + "-" + std::to_string(::getpid()))) {
  fs::remove_all(path);
  fs::create_directories(path);
}

scratch_dir::~scratch_dir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

double raw_rocksdb_synced(int writers, std::chrono::milliseconds duration, std::size_t value_bytes) {
  scratch_dir dir("raw");
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(o, dir.path.string(), &raw).ok()) throw std::runtime_error("raw rocksdb open failed");
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  std::atomic<std::uint64_t> done{0};
  auto start = clock_type::now();
  auto until = start + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < writers; ++t)
    threads.emplace_back([&, t] {
      std::string value(value_bytes, 'v');
      for (std::uint64_t i = 0; clock_type::now() < until; ++i)
        if (db->Put(wo, "w" + std::to_string(t) + "-" + std::to_string(i), value).ok()) done++;
    });
  for (auto& th : threads) th.join();
  return done / std::chrono::duration<double>(clock_type::now() - start).count();
}

}  // namespace cohort::bench
