// Service discovery: instances register with a gateway node by heartbeat; one
// that stops is dropped, and a restarted one comes back without an operator.
#include <catch2/catch.hpp>

#include <thread>

#include <nlohmann/json.hpp>

#include "cohort/examples/example_messages.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "eventually.hpp"
#include "node_process.hpp"
#include "test_keys.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> instances_of(const node_process& gateway, const std::string& service) {
  client admin(gateway.admin, {}, {}, gateway.operator_keys());
  auto r = admin.call("admin", "registry", *json_to_msgpack("{}"));
  REQUIRE(r.ok());
  std::vector<std::string> out;
  auto registry = nlohmann::json::parse(*msgpack_to_json(r.payload));
  for (auto& i : registry["instances"])
    if (i["service"] == service) out.push_back(i["endpoint"]);
  return out;
}

bool eventually_count(const node_process& gw, const std::string& service, std::size_t n) {
  return eventually([&] { return instances_of(gw, service).size() == n; }, 6s, 20ms);
}

}  // namespace

TEST_CASE("instances register by heartbeat, drop out when they stop and come back when restarted",
          "[integration][gateway]") {
  // Registration is node-to-node: authenticated both ways over CURVE, on loopback too.
  temp_dir keys;
  auto gw = make_key(keys.path(), "gw"), na = make_key(keys.path(), "a"), nb = make_key(keys.path(), "b"),
       app = make_key(keys.path(), "app");
  node_process gateway("[security]\nkeyless_loopback = false\nkey_file = \"" + gw.file + "\"\n" +
                           na.trust_entry("node") + nb.trust_entry("node") + app.trust_entry("client", "services = [\"*\"]\n"),
                       "heartbeat_ms = 100\n");
  auto joins = [&](const test_key& self) {
    return "register_with = [\"" + gateway.endpoint + "\"]\nheartbeat_ms = 100\n[security]\nkeyless_loopback = false\nkey_file = \"" +
           self.file + "\"\n" + gw.trust_entry("node", "endpoints = [\"" + gateway.endpoint + "\"]\n");
  };
  auto a = std::make_unique<node_process>("[services.greeter]\n", joins(na));
  auto b = std::make_unique<node_process>("[services.greeter]\n", joins(nb));
  REQUIRE(eventually_count(gateway, "greeter", 2));

  client c(gateway.endpoint, {}, {}, app.to(gw));
  for (int i = 0; i < 20; ++i) CHECK(c.call("greeter", "hello", pack(hello_args{"via gateway"})).ok());

  b->proc->signal(SIGKILL);
  REQUIRE(b->proc->wait());
  REQUIRE(eventually_count(gateway, "greeter", 1));  // 3 missed heartbeats
  CHECK(instances_of(gateway, "greeter").front() == a->endpoint);
  for (int i = 0; i < 20; ++i) CHECK(c.call("greeter", "hello", pack(hello_args{"still"})).ok());

  b = std::make_unique<node_process>("[services.greeter]\n", joins(nb));  // restarted: a new port
  REQUIRE(eventually_count(gateway, "greeter", 2));
  a->proc->signal(SIGKILL);
  REQUIRE(a->proc->wait());
  REQUIRE(eventually_count(gateway, "greeter", 1));
  CHECK(instances_of(gateway, "greeter").front() == b->endpoint);
  CHECK(c.call("greeter", "hello", pack(hello_args{"again"})).ok());
  // A service nobody registered is unknown.
  CHECK(c.call("nosuch", "x", pack(hello_args{""})).error->is(errc::unknown_service));
}
