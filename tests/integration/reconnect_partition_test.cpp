// After a silent partition heals, traffic flows again within a bound the
// config sets (ZeroMQ heartbeats replace the stalled connection), not after
// TCP's retransmission backoff. Two network namespaces: a front node in one
// routes counter calls to the node hosting counter in the other.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>
#include <unistd.h>

#include "child_process.hpp"
#include "netns.hpp"
#include "test_keys.hpp"
#include "temp_dir.hpp"

using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

double steady_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// The time in the first probe line starting with `prefix` whose time is after `after` (ms), if any within `limit`.
std::optional<double> first_after(child_process& probe, const std::string& prefix, double after,
                                   std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    auto line = probe.wait_for_line(prefix, std::max(left, 1ms));
    if (!line) return std::nullopt;
    if (line->rfind(prefix, 0) != 0) continue;
    auto t = std::stod(line->substr(line->rfind(' ') + 1));
    if (t > after) return t;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("after a silent partition heals, calls through a front node succeed again within 2 s",
          "[integration][netns][reconnect]") {
  if (!namespaces_available()) return;
  namespace_pair ns("rc");
  temp_dir dir;
  // The two nodes talk over CURVE, as nodes on two hosts must: heartbeats
  // and reconnection work through the encrypted connection.
  auto back_key = make_key(dir.path(), "back"), front_key = make_key(dir.path(), "front");
  const std::string back_ep = "tcp://" + ns.ip(2) + ":7400";
  auto back_cfg = dir / "back.toml";
  std::ofstream(back_cfg) << "[node]\nname = \"back\"\nlisten = [\"" << back_ep << "\"]\n"
                          << "admin = \"tcp://127.0.0.1:7401\"\ndata_dir = \"" << (dir / "back") << "\"\n"
                          << "[services.counter]\n[security]\nkey_file = \"" << back_key.file << "\"\n"
                          << front_key.trust_entry("node");
  auto front_cfg = dir / "front.toml";
  std::ofstream(front_cfg) << "[node]\nname = \"front\"\nlisten = [\"tcp://127.0.0.1:7500\"]\n"
                           << "admin = \"tcp://127.0.0.1:7501\"\ndata_dir = \"" << (dir / "front") << "\"\n"
                           << "[remote.counter]\nendpoints = [\"" << back_ep << "\"]\n[security]\nkey_file = \""
                           << front_key.file << "\"\n" << back_key.trust_entry("node", "endpoints = [\"" + back_ep + "\"]\n");
  child_process back({"/usr/sbin/ip", "netns", "exec", ns.b, COHORT_BINARY, "run", "--config", back_cfg});
  REQUIRE(back.wait_for_line("cohort: ready", 20s));
  child_process front({"/usr/sbin/ip", "netns", "exec", ns.a, COHORT_BINARY, "run", "--config", front_cfg});
  REQUIRE(front.wait_for_line("cohort: ready", 20s));
  // env -u: a TSan build points LD_LIBRARY_PATH at an instrumented libzmq that Python cannot load.
  child_process probe({"/usr/sbin/ip", "netns", "exec", ns.a, "/usr/bin/env", "-u", "LD_LIBRARY_PATH", "/usr/bin/python3",
                       COHORT_SOURCE_DIR "/tests/integration/probe_client.py", "tcp://127.0.0.1:7500", "60"});
  REQUIRE(first_after(probe, "ok ", 0, 15s));

  // Fourteen seconds of silent loss both ways: TCP's retransmission timer backs
  // off to seconds meanwhile, and calls fail (timeout, then breaker).
  ns.drop_silently(true);
  const double cut = steady_ms();
  REQUIRE(first_after(probe, "err ", cut, 5s));
  std::this_thread::sleep_for(14s);
  ns.drop_silently(false);
  const double healed = steady_ms();

  auto back_ok = first_after(probe, "ok ", healed, 20s);
  REQUIRE(back_ok);
  const double recovery_ms = *back_ok - healed;
  INFO("first successful call " << recovery_ms << " ms after the heal");
  CHECK(recovery_ms < 2000);  // without heartbeats: the next TCP retransmission, seconds later
}
