#include "cohort/storage/restore.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace cohort {

namespace fs = std::filesystem;

namespace {

/// fsyncs a file or directory: the copy is durable before it is swapped in.
void sync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string staging(const std::string& store_dir) { return store_dir + ".restoring"; }

}  // namespace

result<bool> check_backup_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos || name.size() > 200)
    return error_info{errc::bad_request, "a backup name is a plain file name (no '/', not '.' or '..'): '" + name + "'"};
  return true;
}

bool store_in_use(const std::string& store_dir) {
  int fd = ::open((fs::path(store_dir) / "LOCK").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

void clean_interrupted_restore(const std::string& store_dir) {
  std::error_code ec;
  fs::remove_all(staging(store_dir), ec);
}

result<bool> restore_store(const std::string& backup_dir, const std::string& store_dir) {
  std::error_code ec;
  if (!fs::exists(fs::path(backup_dir) / "CURRENT", ec))
    return error_info{errc::bad_request, "'" + backup_dir + "' is not a backup (it has no CURRENT file)"};
  auto staged = fs::path(staging(store_dir));
  fs::remove_all(staged, ec);
  fs::copy(backup_dir, staged, fs::copy_options::recursive, ec);
  if (ec) {
    auto why = ec.message();
    fs::remove_all(staged, ec);
    return error_info{errc::storage_unavailable, "copying '" + backup_dir + "' failed: " + why + "; the old store is in place"};
  }
  for (const auto& e : fs::directory_iterator(staged, ec)) sync_path(e.path());
  sync_path(staged);
  fs::create_directories(store_dir, ec);
  // One atomic step: the new store takes the old one's name and the old one
  // the staging name.
  if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, store_dir.c_str(), RENAME_EXCHANGE) != 0) {
    auto why = std::string(std::strerror(errno));
    fs::remove_all(staged, ec);
    return error_info{errc::storage_unavailable, "swapping in '" + backup_dir + "' failed: " + why + "; the old store is in place"};
  }
  sync_path(fs::path(store_dir).parent_path());
  fs::remove_all(staged, ec);  // the old store
  return true;
}

}  // namespace cohort
