// allocator: which malloc this process runs on, and how much it has handed out.
#pragma once

#include <cstddef>
#include <string>

namespace cohort::allocator {

/// "jemalloc <version>" when the process runs on jemalloc (Cohort's programs
/// link it: runtime/allocator/CMakeLists.txt), else "glibc".
[[nodiscard]] std::string name();

/// Bytes the allocator has handed out and not had back: unlike RSS, it falls
/// when memory is freed (jemalloc: stats.allocated; glibc: mallinfo2's
/// in-use bytes of every arena and mmapped block).
[[nodiscard]] std::size_t bytes_in_use();

}  // namespace cohort::allocator
