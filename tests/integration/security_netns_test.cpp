// Three nodes on two hosts (network namespaces joined by a veth pair, made and
// removed by the test) talking over CURVE: two instances register with a
// gateway by heartbeat and serve calls through it; a node with a key the
// gateway does not trust cannot register, and clients without a trusted key
// cannot call across the network.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "eventually.hpp"
#include "netns.hpp"
#include "temp_dir.hpp"
#include "test_keys.hpp"

using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::string node_config(const std::string& name, const std::string& listen, const std::string& admin,
                        const std::string& data, const std::string& key_file, const std::string& extra) {
  return "[node]\nname = \"" + name + "\"\nlisten = [\"" + listen + "\"]\nadmin = \"" + admin + "\"\ndata_dir = \"" + data +
         "\"\nheartbeat_ms = 100\n" + extra + "[security]\nkey_file = \"" + key_file + "\"\n";
}

}  // namespace

TEST_CASE("three nodes on two hosts over CURVE: registration and calls need trusted keys",
          "[integration][netns][security]") {
  if (!namespaces_available()) return;
  namespace_pair ns("sc");
  temp_dir dir;
  auto g = make_key(dir.path(), "gateway"), b1 = make_key(dir.path(), "b1"), b2 = make_key(dir.path(), "b2"),
       rogue = make_key(dir.path(), "rogue"), web = make_key(dir.path(), "web"), spy = make_key(dir.path(), "spy");
  const std::string g_ep = "tcp://" + ns.ip(1) + ":7400";
  const std::string gateway_trust = b1.trust_entry("node") + b2.trust_entry("node") +
                                    web.trust_entry("client", "services = [\"greeter\"]\n");
  std::ofstream(dir / "g.toml") << node_config("gateway", g_ep, "tcp://127.0.0.1:7401", dir / "g", g.file, "") << gateway_trust;
  child_process gateway({"/usr/sbin/ip", "netns", "exec", ns.a, COHORT_BINARY, "run", "--config", dir / "g.toml"});
  REQUIRE(gateway.wait_for_line("cohort: ready", 20s));

  // Each backend trusts the gateway as a node at its endpoint (so it knows its server key).
  const std::string trusts_gateway = g.trust_entry("node", "endpoints = [\"" + g_ep + "\"]\n");
  auto backend = [&](const test_key& k, int port, const std::string& service) {
    const auto file = dir / (k.name + ".toml");
    std::ofstream(file) << node_config(k.name, "tcp://" + ns.ip(2) + ":" + std::to_string(port),
                                       "tcp://127.0.0.1:" + std::to_string(port + 1), dir / k.name, k.file,
                                       "register_with = [\"" + g_ep + "\"]\n[services." + service + "]\n")
                        << trusts_gateway;
    auto p = std::make_unique<child_process>(
        std::vector<std::string>{"/usr/sbin/ip", "netns", "exec", ns.b, COHORT_BINARY, "run", "--config", file});
    REQUIRE(p->wait_for_line("cohort: ready", 20s));
    return p;
  };
  auto n1 = backend(b1, 7400, "greeter");
  auto n2 = backend(b2, 7410, "greeter");
  auto n3 = backend(rogue, 7420, "counter");  // not in the gateway's trust list

  auto registry = [&] {
    child_process ctl({"/usr/sbin/ip", "netns", "exec", ns.a, COHORTCTL_BINARY, "--endpoint", "tcp://127.0.0.1:7401",
                       "--keys", dir / "g" + "/keys", "--json", "registry"});
    REQUIRE(ctl.wait(10s) == 0);
    return nlohmann::json::parse(ctl.out());
  };
  auto count = [&](const nlohmann::json& r, const std::string& service) {
    int n = 0;
    for (const auto& i : r["instances"]) n += i["service"] == service;
    return n;
  };
  REQUIRE(eventually([&] { return count(registry(), "greeter") == 2; }, 5s, 100ms));
  CHECK(count(registry(), "counter") == 0);  // the rogue node's heartbeats never got in

  // A trusted client on the other host calls through the gateway to either instance, as itself.
  auto call = [&](const std::vector<std::string>& extra, const std::string& target) {
    std::vector<std::string> argv{"/usr/sbin/ip", "netns", "exec", ns.b, COHORT_BINARY, "call", target, "null",
                                  "--endpoint", g_ep, "--timeout", "1500"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto [code, out, err] = run_command(argv, 10s);
    return std::make_pair(code, out + err);
  };
  const std::vector<std::string> as_web{"--client-key", web.file, "--server-key", g.file + ".pub"};
  for (int i = 0; i < 4; ++i) {
    auto [code, out] = call(as_web, "greeter.whoami");
    CHECK(code == 0);
    CHECK_THAT(out, Catch::Contains("\"web\""));
  }
  auto refused = call(as_web, "counter.get");
  CHECK(refused.first != 0);
  CHECK_THAT(refused.second, Catch::Contains("unknown_service") || Catch::Contains("forbidden"));
  // No key, or a key nobody trusts: nothing crosses the network.
  CHECK(call({"--insecure"}, "greeter.whoami").first != 0);
  CHECK(call({"--client-key", spy.file, "--server-key", g.file + ".pub"}, "greeter.whoami").first != 0);
  // And no client is told what the gateway does not trust it with.
  auto status = [&] {
    child_process ctl({"/usr/sbin/ip", "netns", "exec", ns.a, COHORTCTL_BINARY, "--endpoint", "tcp://127.0.0.1:7401",
                       "--keys", dir / "g" + "/keys", "--json", "status"});
    REQUIRE(ctl.wait(10s) == 0);
    return nlohmann::json::parse(ctl.out());
  }();
  CHECK(status["metrics"]["refused_connections"].get<int>() >= 2);
}
