// store: a service instance's own RocksDB (database per service).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cohort/transport/result.hpp"

namespace cohort {

/// How a write is made durable before it is acknowledged.
enum class durability {
  sync,   ///< the WAL is fsynced before write() returns: survives power loss
  async,  ///< written to the WAL without fsync: survives a process crash, not a power loss
};

/// Options for one store. Default member values are the defaults.
struct store_options {
  /// Durability of every write. Default: sync.
  durability mode = durability::sync;
  /// Create the directory and database when missing. Default: true.
  bool create_if_missing = true;
};

/// An atomic group of puts and deletes.
struct write_batch {
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;  ///< nullopt = delete
  void put(std::string key, std::string value) { ops.emplace_back(std::move(key), std::move(value)); }
  void erase(std::string key) { ops.emplace_back(std::move(key), std::nullopt); }
  [[nodiscard]] bool empty() const noexcept { return ops.empty(); }
};

/// One open RocksDB. Safe to call from any thread (RocksDB serialises writers
/// and combines concurrent synced writes into one WAL fsync).
class store {
 public:
  /// Opens (or creates) the database in `dir`. A locked, unwritable or corrupt
  /// directory is an `unavailable` error whose message names the directory.
  [[nodiscard]] static result<std::unique_ptr<store>> open(const std::string& dir, store_options opts = {});
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Reads one key; nullopt when absent.
  [[nodiscard]] result<std::optional<std::string>> get(std::string_view key) const;
  /// Applies `batch` atomically with the configured durability.
  [[nodiscard]] result<bool> write(const write_batch& batch);

  [[nodiscard]] const std::string& directory() const noexcept { return dir_; }
  [[nodiscard]] durability mode() const noexcept { return opts_.mode; }

 private:
  struct impl;
  store(std::string dir, store_options opts, std::unique_ptr<impl> p);
  std::string dir_;
  store_options opts_;
  std::unique_ptr<impl> impl_;
};

}  // namespace cohort
