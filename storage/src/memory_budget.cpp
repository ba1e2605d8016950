#include "cohort/storage/memory_budget.hpp"

#include <rocksdb/write_buffer_manager.h>

namespace cohort {

// No stall (allow_stall = false): a write past the budget is not held up; it
// makes its store flush, and the flush runs beside it.
memory_budget::memory_budget(std::size_t bytes) : manager_(std::make_shared<rocksdb::WriteBufferManager>(bytes)) {}

memory_budget::~memory_budget() = default;

std::size_t memory_budget::bytes() const noexcept { return manager_->buffer_size(); }

std::size_t memory_budget::used() const noexcept { return manager_->memory_usage(); }

}  // namespace cohort
