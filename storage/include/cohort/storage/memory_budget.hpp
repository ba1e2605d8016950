// memory_budget: the memory several stores' memtables may use together.
// RocksDB's own bound is per column family (64 MiB, two of them), and a store
// has nine: a node with a few busy services could hold gigabytes of writes in
// memory before a flush. Stores opened with one budget share it (RocksDB's
// WriteBufferManager): past it, the store being written flushes its oldest
// memtable to a table file.
#pragma once

#include <cstddef>
#include <memory>

namespace rocksdb {
class WriteBufferManager;
}

namespace cohort {

class memory_budget {
 public:
  explicit memory_budget(std::size_t bytes);
  ~memory_budget();
  memory_budget(const memory_budget&) = delete;
  memory_budget& operator=(const memory_budget&) = delete;

  [[nodiscard]] std::size_t bytes() const noexcept;
  /// What it counts now for the stores sharing it: their memtables, with the
  /// blocks reserved for them and those flushed but not yet freed.
  [[nodiscard]] std::size_t used() const noexcept;

 private:
  friend class store;
  std::shared_ptr<rocksdb::WriteBufferManager> manager_;
};

}  // namespace cohort
