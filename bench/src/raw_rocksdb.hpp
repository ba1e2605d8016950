// raw_rocksdb: the storage baseline shared by the benchmarks, and their
// scratch directories.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>

namespace cohort::bench {

/// A fresh directory under /tmp, removed with its contents at scope exit.
struct scratch_dir {
  std::filesystem::path path;
  explicit scratch_dir(const std::string& name);
  ~scratch_dir();
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

/// Raw RocksDB: `writers` threads, each putting its own keys (values of
/// `value_bytes`) with sync on, for `duration`; writes per second.
[[nodiscard]] double raw_rocksdb_synced(int writers, std::chrono::milliseconds duration, std::size_t value_bytes = 32);

}  // namespace cohort::bench
