#pragma once
// What identifies a version of a watched file (the trust list, a TLS
// certificate or key): its device, inode, size, and modification and change
// times. The modification time alone misses a file replaced within one tick
// of the kernel's coarse file clock (a new version renamed into place
// milliseconds after the last), which kept an old key trusted.
#include <cstdint>
#include <optional>
#include <string>

namespace cohort::security {

struct file_version {
  std::uint64_t device = 0, inode = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const file_version& o) const {
    return device == o.device && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
  bool operator!=(const file_version& o) const { return !(*this == o); }
};

/// The version of the file at `path`; empty when it cannot be stat'ed.
[[nodiscard]] std::optional<file_version> version_of(const std::string& path);

}  // namespace cohort::security
