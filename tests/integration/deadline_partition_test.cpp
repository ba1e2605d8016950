// Deadlines count time in transit: a request that sat behind a cut link until
// long after its caller gave up is dropped when it finally arrives, not run.
// Two network namespaces joined by a veth pair, made and removed by the test.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "netns.hpp"
#include "temp_dir.hpp"

using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

/// Writes a line to a child's stdin.
struct stdin_pipe {
  int fd;
  void line(const std::string& s) { REQUIRE(::write(fd, (s + "\n").data(), s.size() + 1) == static_cast<ssize_t>(s.size() + 1)); }
};

nlohmann::json admin_status(const namespace_pair& ns, const std::string& admin) {
  child_process p({"/usr/sbin/ip", "netns", "exec", ns.a, COHORTCTL_BINARY, "--endpoint", admin, "--json", "status"});
  auto code = p.wait(10s);
  INFO("cohortctl: " << p.out() << p.err());
  REQUIRE(code == 0);
  return nlohmann::json::parse(p.out());
}

}  // namespace

TEST_CASE("a request held up by a cut link past its deadline is dropped on arrival, never run",
          "[integration][netns][deadline]") {
  if (!namespaces_available()) return;
  namespace_pair ns;
  temp_dir dir;
  auto cfg = dir / "a.toml";
  std::ofstream(cfg) << "[node]\nname = \"a\"\nlisten = [\"tcp://" << ns.ip(1) << ":7400\"]\n"
                     << "admin = \"tcp://127.0.0.1:7401\"\ndata_dir = \"" << (dir / "d") << "\"\n"
                     // Heartbeats would close the stalled connection (and lose the request
                     // with it): this test is about the request TCP still delivers late.
                     << "peer_heartbeat_ms = 0\n"
                     << "[services.counter]\n"
                     // Deadlines are the subject here, not keys (security_netns_test has CURVE across namespaces).
                     << "[security]\ninsecure = true\n";
  child_process node({"/usr/sbin/ip", "netns", "exec", ns.a, COHORT_BINARY, "run", "--config", cfg});
  REQUIRE(node.wait_for_line("cohort: ready", 20s));

  // The client's stdin is a pipe the test writes to: fork by hand for it.
  int in[2];
  REQUIRE(::pipe(in) == 0);
  int saved = ::dup(0);
  ::dup2(in[0], 0);
  // env -u: a TSan build points LD_LIBRARY_PATH at an instrumented libzmq that Python cannot load.
  child_process client({"/usr/sbin/ip", "netns", "exec", ns.b, "/usr/bin/env", "-u", "LD_LIBRARY_PATH", "/usr/bin/python3",
                        COHORT_SOURCE_DIR "/tests/integration/partition_client.py", "tcp://" + ns.ip(1) + ":7400"});
  ::dup2(saved, 0);
  ::close(saved);
  ::close(in[0]);
  stdin_pipe to_client{in[1]};

  REQUIRE(client.wait_for_line("first: ok", 15s));
  ns.link(false);
  to_client.line("cut");
  REQUIRE(client.wait_for_line("second: timed out", 10s));  // the caller gave up
  std::this_thread::sleep_for(2s);                          // the request sits in TCP's send queue
  ns.link(true);
  to_client.line("healed");
  // TCP retransmits with backoff; the request arrives within seconds of the heal.
  nlohmann::json status;
  bool dropped = false;
  for (int i = 0; i < 150 && !dropped; ++i) {
    status = admin_status(ns, "tcp://127.0.0.1:7401");
    dropped = status["metrics"]["expired_in_transit"].get<int>() >= 1;
    if (!dropped) std::this_thread::sleep_for(200ms);
  }
  CHECK(dropped);
  auto late = client.wait_for_line("late reply:", 35s);
  REQUIRE(late);
  CHECK_THAT(*late, Catch::Contains("error") && Catch::Contains("timeout"));
  to_client.line("done");
  ::close(in[1]);

  // The counter holds the first add only: the late add of 100 never ran.
  child_process get({"/usr/sbin/ip", "netns", "exec", ns.a, COHORT_BINARY, "call", "counter.get", "null", "--key",
                     "partitioned", "--endpoint", "tcp://" + ns.ip(1) + ":7400", "--insecure"});
  REQUIRE(get.wait(10s) == 0);
  CHECK_THAT(get.out(), Catch::Contains("\"value\": 1"));
}
