#include "cohort/isolation/runtime_dir.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <unistd.h>

namespace cohort::detail {

namespace {

/// This process's pid namespace as the kernel names it ("pid:[4026531836]"); empty if unknown.
std::string pid_namespace() {
  std::error_code ec;
  auto link = std::filesystem::read_symlink("/proc/self/ns/pid", ec);
  return ec ? std::string() : link.string();
}

std::string prefix_of(const std::string& node_name) { return "cohort-" + node_name + "-"; }

/// True only when the owner file says a process of our pid namespace that is gone.
bool owner_is_gone(const std::filesystem::path& dir, const std::string& our_namespace) {
  std::ifstream in(dir / runtime_dir_owner_file);
  long pid = 0;
  std::string ns;
  if (!(in >> pid >> ns) || pid <= 0 || ns.empty() || ns != our_namespace) return false;
  if (pid == static_cast<long>(::getpid())) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

result<std::string> make_runtime_dir(const std::string& node_name, const std::filesystem::path& under) {
  std::string pattern = (under / (prefix_of(node_name) + "XXXXXX")).string();
  if (!::mkdtemp(pattern.data()))
    return error_info{errc::unavailable, "cannot create a runtime directory in " + under.string() + ": " +
                                             std::strerror(errno)};
  const auto ns = pid_namespace();
  if (!ns.empty()) {
    // Written whole under another name, then renamed: a sweeping node never reads half of it.
    const auto final_path = std::filesystem::path(pattern) / runtime_dir_owner_file;
    const auto temp_path = std::filesystem::path(pattern) / ".owner";
    {
      std::ofstream out(temp_path);
      out << ::getpid() << ' ' << ns << '\n';
    }
    std::error_code ec;
    std::filesystem::rename(temp_path, final_path, ec);
  }
  return pattern;
}

std::size_t remove_stale_runtime_dirs(const std::string& node_name, const std::filesystem::path& under) {
  const auto prefix = prefix_of(node_name);
  const auto ns = pid_namespace();
  if (ns.empty()) return 0;
  std::size_t removed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(under, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    // Exactly cohort-<node>-XXXXXX, a directory (not a link to one).
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    if (!owner_is_gone(it->path(), ns)) continue;
    std::error_code rm;
    if (std::filesystem::remove_all(it->path(), rm) != static_cast<std::uintmax_t>(-1) && !rm) ++removed;
  }
  return removed;
}

}  // namespace cohort::detail
