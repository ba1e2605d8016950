// Load balancing and circuit breakers over the instances of a remote service.
#include <catch2/catch.hpp>

#include <map>

#include "cohort/net/instance_pool.hpp"

using namespace cohort;
using namespace cohort::detail;
using namespace std::chrono_literals;

namespace {

remote_service_config three(balance_policy b) {
  remote_service_config c;
  c.name = "svc";
  c.endpoints = {"tcp://a:1", "tcp://b:1", "tcp://c:1"};
  c.balance = b;
  c.breaker_failures = 2;
  c.breaker_cooldown = 100ms;
  return c;
}

envelope keyed(const std::string& key) {
  envelope e;
  e.service = "svc";
  e.method = "m";
  e.key = key;
  return e;
}

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

}  // namespace

TEST_CASE("round robin takes each instance in turn", "[gateway]") {
  instance_pool pool(three(balance_policy::round_robin));
  std::map<std::string, int> seen;
  for (int i = 0; i < 9; ++i) seen[pool.pick(keyed(""), {}, t0)->endpoint]++;
  CHECK(seen.size() == 3);
  for (auto& [ep, n] : seen) CHECK(n == 3);
}

TEST_CASE("least outstanding picks the instance with the fewest requests in flight", "[gateway]") {
  instance_pool pool(three(balance_policy::least_outstanding));
  pool.instances()[0]->outstanding = 5;
  pool.instances()[1]->outstanding = 1;
  pool.instances()[2]->outstanding = 3;
  CHECK(pool.pick(keyed(""), {}, t0)->endpoint == "tcp://b:1");
  // Excluding what was tried already.
  CHECK(pool.pick(keyed(""), {pool.instances()[1]}, t0)->endpoint == "tcp://c:1");
}

TEST_CASE("consistent hashing keeps keys in place and moves few when the set changes", "[gateway]") {
  auto cfg = three(balance_policy::consistent_hash);
  instance_pool pool(cfg);
  std::map<std::string, std::string> before;
  for (int k = 0; k < 3000; ++k) {
    auto key = "cart-" + std::to_string(k);
    before[key] = pool.pick(keyed(key), {}, t0)->endpoint;
    CHECK(pool.pick(keyed(key), {}, t0)->endpoint == before[key]);  // stable
  }
  std::map<std::string, int> share;
  for (auto& [k, ep] : before) share[ep]++;
  for (auto& [ep, n] : share) CHECK(n > 600);  // roughly even: 1000 each
  // One more instance: only about a quarter of the keys move, all to it.
  pool.add("tcp://d:1", false, t0);
  int moved = 0;
  for (auto& [k, ep] : before) {
    auto now = pool.pick(keyed(k), {}, t0)->endpoint;
    if (now != ep) {
      ++moved;
      CHECK(now == "tcp://d:1");
    }
  }
  CHECK(moved > 400);
  CHECK(moved < 1200);
}

TEST_CASE("a circuit breaker opens after failures, tries once after the cooldown, and closes on success", "[gateway]") {
  auto cfg = three(balance_policy::round_robin);
  cfg.endpoints = {"tcp://a:1"};
  instance_pool pool(cfg);
  auto a = pool.instances()[0];
  pool.record(a, true, t0);
  CHECK(a->state == service_instance::breaker::closed);
  pool.record(a, true, t0);
  CHECK(a->state == service_instance::breaker::open);
  CHECK(pool.pick(keyed(""), {}, t0 + 50ms) == nullptr);  // open: no traffic
  auto trial = pool.pick(keyed(""), {}, t0 + 150ms);      // cooled down: one trial
  REQUIRE(trial == a);
  CHECK(a->state == service_instance::breaker::half_open);
  CHECK(pool.pick(keyed(""), {}, t0 + 150ms) == nullptr);  // only one trial at a time
  pool.record(a, true, t0 + 160ms);                         // trial failed: open again
  CHECK(a->state == service_instance::breaker::open);
  REQUIRE(pool.pick(keyed(""), {}, t0 + 300ms) == a);
  pool.record(a, false, t0 + 310ms);  // trial succeeded
  CHECK(a->state == service_instance::breaker::closed);
  CHECK(pool.pick(keyed(""), {}, t0 + 320ms) == a);
}

TEST_CASE("registered instances expire without heartbeats, configured ones stay", "[gateway]") {
  instance_pool pool(three(balance_policy::round_robin));
  pool.add("tcp://r:1", true, t0);
  pool.add("tcp://r:1", true, t0 + 900ms);  // heartbeat
  CHECK(pool.expire(t0 + 1500ms, 1000ms).empty());
  auto gone = pool.expire(t0 + 2000ms, 1000ms);
  CHECK(gone == std::vector<std::string>{"tcp://r:1"});
  CHECK(pool.instances().size() == 3);
}
