// Entity hibernation (entity_hibernate_after_ms): an idle entity's actor ends,
// its state stays in memory under the service's root, and its next message
// wakes it on a fresh actor without reading the store.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "test_node.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

call_options at(const std::string& key) {
  call_options o;
  o.key = key;
  return o;
}

std::string args(const char* json) { return *json_to_msgpack(json); }

}  // namespace

TEST_CASE("an idle entity hibernates, stays live, and wakes on its next message without reading the store",
          "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "counter").entity_hibernate_after = 50ms;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  constexpr int keys = 20;
  for (int k = 0; k < keys; ++k)
    REQUIRE(c.call_as<counter_value>("counter", "add", add_args{k + 1}, at("k" + std::to_string(k)))->value == k + 1);
  REQUIRE(eventually([&] { return status_of(*n, "counter").hibernated_entities == keys; }));
  auto st = status_of(*n, "counter");
  CHECK(st.live_entities == keys);  // still live: state in memory
  CHECK(st.hibernations >= static_cast<std::uint64_t>(keys));
  CHECK(st.activations == static_cast<std::uint64_t>(keys));
  CHECK(st.passivations == 0);
  CHECK(child_of(*n, "counter", "entity/k3").state == "hibernated");

  // Woken: the state it kept, and no second activation (no store read).
  for (int k = 0; k < keys; ++k) {
    auto v = c.call_as<counter_value>("counter", "get", no_args{}, at("k" + std::to_string(k)));
    REQUIRE(v.ok());
    CHECK(v->value == k + 1);
  }
  st = status_of(*n, "counter");
  CHECK(st.activations == static_cast<std::uint64_t>(keys));
  CHECK(st.wakes >= static_cast<std::uint64_t>(keys));
  CHECK(st.live_entities == keys);

  // Writes after a wake land in the store: a fresh node reads them.
  for (int k = 0; k < keys; ++k)
    REQUIRE(c.call_as<counter_value>("counter", "add", add_args{100}, at("k" + std::to_string(k)))->value == k + 101);
  n.reset();
  auto again = start_node(cfg);
  client c2(again->endpoints().front());
  for (int k = 0; k < keys; ++k)
    CHECK(c2.call_as<counter_value>("counter", "get", no_args{}, at("k" + std::to_string(k)))->value == k + 101);
}

TEST_CASE("an event-sourced entity keeps its journal's sequence across hibernations", "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "ledger").entity_hibernate_after = 20ms;
  service_named(cfg, "ledger").snapshot_every = 4;
  {
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    // Deposits between hibernations: a woken entity that restarted its
    // sequence would write over journal events, and the reload below would
    // count fewer.
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 3; ++i) REQUIRE(c.call("ledger", "deposit", args(R"({"amount":10})"), at("acct")).ok());
      const auto before = status_of(*n, "ledger").hibernations;
      REQUIRE(eventually([&] { return status_of(*n, "ledger").hibernations > before; }));
    }
    CHECK(c.call_as<balance_reply>("ledger", "balance", no_args{}, at("acct"))->balance == 150);
    CHECK(status_of(*n, "ledger").activations == 1);
  }
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  CHECK(c.call_as<balance_reply>("ledger", "balance", no_args{}, at("acct"))->balance == 150);
}

TEST_CASE("hibernated entities are passivated after entity_idle, and hibernation can be turned off",
          "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "counter").entity_hibernate_after = 20ms;
  service_named(cfg, "counter").entity_idle = 400ms;
  service_named(cfg, "ledger").entity_hibernate_after = 0ms;  // never
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  for (int k = 0; k < 10; ++k) REQUIRE(c.call("counter", "add", pack(add_args{1}), at("p" + std::to_string(k))).ok());
  REQUIRE(c.call("ledger", "deposit", args(R"({"amount":5})"), at("acct")).ok());
  REQUIRE(eventually([&] { return status_of(*n, "counter").hibernated_entities == 10; }));
  REQUIRE(eventually([&] {
    auto st = status_of(*n, "counter");
    return st.live_entities == 0 && st.hibernated_entities == 0 && st.passivations >= 10;
  }));
  // Passivated: the next message reads the store again.
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, at("p3"))->value == 1);
  CHECK(status_of(*n, "counter").activations == 11);
  // The ledger (hibernation off) kept its actor all along: its passivation
  // after the default minute has not come either.
  auto ledger = status_of(*n, "ledger");
  CHECK(ledger.hibernations == 0);
  CHECK(ledger.hibernated_entities == 0);
  CHECK(ledger.live_entities == 1);
}

TEST_CASE("an operator's crash of a hibernated entity wakes and crashes it, and it comes back from its store",
          "[runtime][entities][supervision]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.allow_fault_injection = true;
  service_named(cfg, "counter").entity_hibernate_after = 20ms;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{7}, at("k")).ok());
  REQUIRE(eventually([&] { return status_of(*n, "counter").hibernated_entities == 1; }));
  REQUIRE(n->command_child("counter", "entity/k", "crash").ok());
  REQUIRE(eventually([&] { return status_of(*n, "counter").restarts == 1; }));
  CHECK(status_of(*n, "counter").live_entities == 0);  // the crashed actor took the state with it
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, at("k"))->value == 7);
  CHECK(status_of(*n, "counter").activations == 2);  // read from the store again
  // Stopping a hibernated entity drops its state the same way.
  REQUIRE(eventually([&] { return status_of(*n, "counter").hibernated_entities == 1; }));
  REQUIRE(n->command_child("counter", "entity/k", "stop").ok());
  REQUIRE(eventually([&] { return status_of(*n, "counter").live_entities == 0; }));
  CHECK(status_of(*n, "counter").hibernated_entities == 0);
}

TEST_CASE("entities hibernate and wake under load without losing or reordering a write", "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  // Hibernating about as often as each key is used: offers race requests.
  service_named(cfg, "counter").entity_hibernate_after = 5ms;
  service_named(cfg, "counter").store_durability = durability::async;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  constexpr int keys = 50, rounds = 40;
  int ok = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int k = 0; k < keys; ++k)
      c.call_async("counter", "add", pack(add_args{1}), at("r" + std::to_string(k)), [&](reply&& r) { ok += r.ok(); });
    REQUIRE(c.drain(std::chrono::seconds(30)));
    if (round % 8 == 0) std::this_thread::sleep_for(15ms);  // some rounds find them hibernated
  }
  CHECK(ok == keys * rounds);
  for (int k = 0; k < keys; ++k)
    CHECK(c.call_as<counter_value>("counter", "get", no_args{}, at("r" + std::to_string(k)))->value == rounds);
  auto st = status_of(*n, "counter");
  CHECK(st.wakes > 0);
  CHECK(st.activations == static_cast<std::uint64_t>(keys));
  CHECK(st.live_entities == keys);
}

TEST_CASE("an entity woken the moment its root took its state is served by the new actor as the old one ends",
          "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  // Hibernating after 1 ms (the root sweeps every 5 ms), 32 keys called in
  // turn 0-0.4 ms apart: nearly every call wakes its key, some right after
  // the root took the offer, while the actor that offered is still ending
  // (it must not touch the state then: under TSan, a race if it did).
  service_named(cfg, "counter").entity_hibernate_after = 1ms;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  constexpr int keys = 32;
  std::vector<std::int64_t> expected(keys, 0);
  std::uint32_t seed = 12345;
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  int calls = 0;
  while (std::chrono::steady_clock::now() < until && calls < 20000) {
    const int k = calls++ % keys;
    auto v = c.call_as<counter_value>("counter", "add", add_args{1}, at("w" + std::to_string(k)));
    REQUIRE(v.ok());
    CHECK(v->value == ++expected[static_cast<std::size_t>(k)]);
    seed = seed * 1103515245u + 12345u;
    std::this_thread::sleep_for(std::chrono::microseconds((seed >> 8) % 400));
  }
  const auto st = status_of(*n, "counter");
  CHECK(st.wakes >= 10);
  CHECK(st.activations == static_cast<std::uint64_t>(keys));
  CHECK(st.live_entities == keys);
}
