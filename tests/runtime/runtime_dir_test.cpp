// The runtime directory of a node with isolated services: made with its
// owner named, and removed by a later node only when that owner is gone.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "cohort/isolation/runtime_dir.hpp"
#include "temp_dir.hpp"

using namespace cohort;
using namespace cohort::test;
namespace fs = std::filesystem;

namespace {

/// A pid that was a process of this namespace and is not one any more.
long dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

std::string our_namespace() { return fs::read_symlink("/proc/self/ns/pid").string(); }

fs::path plant(const fs::path& under, const std::string& name, const std::string& owner) {
  auto dir = under / name;
  fs::create_directories(dir);
  std::ofstream(dir / "greeter.sock") << "";
  if (!owner.empty()) std::ofstream(dir / detail::runtime_dir_owner_file) << owner << "\n";
  return dir;
}

}  // namespace

TEST_CASE("a runtime directory names its owner: this process, in this pid namespace", "[runtime][isolation]") {
  temp_dir tmp;
  auto dir = detail::make_runtime_dir("n1", tmp.path());
  REQUIRE(dir);
  CHECK(fs::path(*dir).parent_path() == fs::path(tmp.path()));
  CHECK(fs::path(*dir).filename().string().rfind("cohort-n1-", 0) == 0);
  std::ifstream in(fs::path(*dir) / detail::runtime_dir_owner_file);
  long pid = 0;
  std::string ns;
  REQUIRE(in >> pid >> ns);
  CHECK(pid == ::getpid());
  CHECK(ns == our_namespace());
  CHECK(detail::make_runtime_dir("n1", fs::path(tmp.path()) / "missing").error().is(errc::unavailable));
}

TEST_CASE("only runtime directories of dead owners of this namespace and this node name are removed",
          "[runtime][isolation]") {
  temp_dir tmp;
  const auto ns = our_namespace();
  const auto gone = std::to_string(dead_pid()) + " " + ns;
  auto stale = plant(tmp.path(), "cohort-n1-aaaaaa", gone);
  auto stale2 = plant(tmp.path(), "cohort-n1-bbbbbb", gone);
  auto live = plant(tmp.path(), "cohort-n1-cccccc", std::to_string(::getpid()) + " " + ns);
  auto init = plant(tmp.path(), "cohort-n1-dddddd", "1 " + ns);  // alive (init), whoever owns it
  auto no_owner = plant(tmp.path(), "cohort-n1-eeeeee", "");     // being made, or from an older node
  auto other_ns = plant(tmp.path(), "cohort-n1-ffffff", std::to_string(dead_pid()) + " pid:[1]");
  auto other_node = plant(tmp.path(), "cohort-n2-gggggg", gone);
  auto longer_name = plant(tmp.path(), "cohort-n1-x-hhhhhh", gone);  // node "n1-x", not "n1"
  auto garbage = plant(tmp.path(), "cohort-n1-iiiiii", "not a pid");
  auto mine = detail::make_runtime_dir("n1", tmp.path());
  REQUIRE(mine);

  CHECK(detail::remove_stale_runtime_dirs("n1", tmp.path()) == 2);
  CHECK_FALSE(fs::exists(stale));
  CHECK_FALSE(fs::exists(stale2));
  for (const auto& kept : {live, init, no_owner, other_ns, other_node, longer_name, garbage, fs::path(*mine)})
    CHECK(fs::exists(kept));
  CHECK(detail::remove_stale_runtime_dirs("n1", tmp.path()) == 0);
  CHECK(detail::remove_stale_runtime_dirs("n2", tmp.path()) == 1);
  CHECK(detail::remove_stale_runtime_dirs("n1", fs::path(tmp.path()) / "missing") == 0);
}
