// runtime_dir: where a node with isolated services keeps its children's ipc
// sockets, /tmp/cohort-<node>-XXXXXX (a short path: a socket's path must fit
// in 108 bytes, which a data directory may not). A node that stops removes
// its own; one that is killed (SIGKILL, a power cut of its container) cannot,
// so each directory names its owner, and the next node of that name removes
// the directories whose owner is gone.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "cohort/transport/result.hpp"

namespace cohort::detail {

/// The file in a runtime directory that names its owner: "<pid> <pid namespace>".
inline constexpr const char* runtime_dir_owner_file = "owner";

/// Makes a fresh runtime directory for node `node_name` under `under`
/// (normally the system's temporary directory), owned by this process.
[[nodiscard]] result<std::string> make_runtime_dir(const std::string& node_name, const std::filesystem::path& under);

/// Removes the runtime directories under `under` of nodes named `node_name`
/// whose owner died: only those whose owner file names a process of this pid
/// namespace that no longer exists (a node in another container sharing the
/// directory is never judged by a pid it cannot see; a directory without the
/// file, being made or from an older node, stays). Returns how many it removed.
std::size_t remove_stale_runtime_dirs(const std::string& node_name, const std::filesystem::path& under);

}  // namespace cohort::detail
