// Crash safety with real processes and a real disk: a node under continuous
// write load is SIGKILLed at random moments, many times. After each restart
// every acknowledged write is present, and retrying every unacknowledged
// request with its idempotency key leaves each operation applied exactly once
// (a half-applied batch, state without its idempotency record or the reverse,
// would show up as a lost or doubled increment).
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "child_process.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "temp_dir.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

constexpr int keys = 8;

std::unique_ptr<child_process> start(const temp_dir& dir, std::string& endpoint) {
  auto p = std::make_unique<child_process>(std::vector<std::string>{COHORT_BINARY, "run", "--config", dir / "n.toml"});
  auto ep = p->endpoint();
  REQUIRE(ep);
  REQUIRE(p->wait_for_line("ready"));
  // The store opened cleanly: no service line said "down" (they come before
  // "ready", so the whole output is read, not the lines after it).
  CHECK_THAT(p->out(), !Catch::Contains(") down") && !Catch::Contains("not ready"));
  endpoint = *ep;
  return p;
}

call_options op(int key, std::uint64_t id) {
  call_options o;
  o.key = "k" + std::to_string(key);
  o.idempotency_key = "op-" + std::to_string(id);
  o.timeout = 3s;
  return o;
}

call_options by_key(int key) {
  call_options o;
  o.key = "k" + std::to_string(key);
  return o;
}

}  // namespace

TEST_CASE("acknowledged writes survive SIGKILL at random moments and retries apply exactly once",
          "[integration][storage][crash]") {
  temp_dir dir;
  std::ofstream(dir / "n.toml") << "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"\"\ndata_dir = \""
                                << (dir / "d") << "\"\n[services.counter]\ndurability = \"sync\"\n";
  std::mt19937 rng(20261122);
  std::uniform_int_distribution<int> kill_after_ms(50, 400);
  const auto add = *json_to_msgpack(R"({"n":1})");

  std::map<int, std::int64_t> applied;  // per key: operations known to be applied exactly once so far
  std::uint64_t next_op = 1;
  int total_acked = 0, total_unacked = 0;
  for (int round = 0; round < 8; ++round) {
    std::string endpoint;
    auto node = start(dir, endpoint);
    std::map<std::uint64_t, int> unacked;  // op id -> key
    std::map<int, std::int64_t> acked_now;
    {
      client c(endpoint);
      auto kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kill_after_ms(rng));
      bool killed = false;
      while (!killed) {
        while (c.in_flight() < 16) {
          auto id = next_op++;
          int key = static_cast<int>(id % keys);
          unacked[id] = key;
          c.call_async("counter", "add", add, op(key, id), [&, id, key](reply&& r) {
            if (r.ok()) {
              unacked.erase(id);
              acked_now[key]++;
            }
          });
        }
        c.poll(1ms);
        if (std::chrono::steady_clock::now() >= kill_at) {
          node->signal(SIGKILL);
          REQUIRE(node->wait());
          killed = true;
        }
      }
      c.drain(100ms);  // whatever was in flight now fails or times out: not acknowledged
    }
    for (auto& [key, n] : acked_now) total_acked += n;
    total_unacked += static_cast<int>(unacked.size());

    // Restart on the same data: every acknowledged write is there.
    node = start(dir, endpoint);
    client c(endpoint);
    for (int key = 0; key < keys; ++key) {
      auto v = c.call_as<counter_value>("counter", "get", msgpack::type::nil_t{}, by_key(key));
      REQUIRE(v.ok());
      CHECK(v->value >= applied[key] + acked_now[key]);
    }
    // Retrying each unacknowledged operation applies it at most once more.
    for (auto& [id, key] : unacked) REQUIRE(c.call("counter", "add", add, op(key, id)).ok());
    std::map<int, std::int64_t> expected = applied;
    for (auto& [key, n] : acked_now) expected[key] += n;
    for (auto& [id, key] : unacked) expected[key] += 1;
    for (int key = 0; key < keys; ++key) {
      auto v = c.call_as<counter_value>("counter", "get", msgpack::type::nil_t{}, by_key(key));
      REQUIRE(v.ok());
      CHECK(v->value == expected[key]);  // each operation exactly once
    }
    applied = expected;
    node->signal(SIGTERM);
    CHECK(node->wait() == 0);
  }
  CHECK(total_acked > 30);
  INFO("acknowledged " << total_acked << ", unacknowledged at a kill " << total_unacked);
}
