// The retry budget: retries of failed attempts may add only a share of a
// remote service's requests, so a dying instance cannot double the load on
// the healthy ones (a retry storm). Beyond the budget a failed attempt is the
// caller's answer.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "cohort/examples/example_messages.hpp"
#include "cohort/security/client_keys.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "admin_json.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

/// An instance that accepts connections and never answers: every attempt at
/// it fails by its attempt timeout.
struct black_hole {
  zmq::context_t ctx{1};
  zmq::socket_t s{ctx, zmq::socket_type::router};
  std::string endpoint;
  black_hole() {
    s.set(zmq::sockopt::linger, 0);
    s.bind("tcp://127.0.0.1:*");
    endpoint = s.get(zmq::sockopt::last_endpoint);
  }
};

struct outcome {
  int ok = 0, failed = 0;
  std::uint64_t retries = 0;  // summed over the instances
};

/// 100 sequential greeter.hello calls through a front node whose greeter has
/// one healthy instance and one black hole, with the given budget.
outcome run_through_front(double retry_budget) {
  temp_dir backend_dir, front_dir;
  auto backend = start_node(loopback_config(backend_dir.path()));
  black_hole hole;
  auto cfg = loopback_config(front_dir.path(), {});
  remote_service_config greeter;
  greeter.name = "greeter";
  greeter.endpoints = {backend->endpoints().front(), hole.endpoint};
  greeter.balance = balance_policy::round_robin;
  greeter.attempt_timeout = 40ms;
  greeter.max_retries = 1;
  greeter.retry_budget = retry_budget;
  greeter.breaker_failures = 100000;  // keep the hole in rotation: this test is about the budget
  cfg.remotes.push_back(greeter);
  auto front = start_node(cfg);

  outcome out;
  client c(front->endpoints().front());
  call_options o;
  o.timeout = 3s;
  for (int i = 0; i < 100; ++i) {
    auto r = c.call("greeter", "hello", pack(hello_args{"budget"}), o);
    (r.ok() ? out.ok : out.failed)++;
  }
  auto regj = admin_json(*front, front_dir.path(), "registry");
  UNSCOPED_INFO(regj.dump());
  for (const auto& i : regj["instances"])
    out.retries += i.value("retries", std::uint64_t{0});
  return out;
}

}  // namespace

TEST_CASE("retries stop at the retry budget and the failed attempts reach their callers", "[runtime][gateway]") {
  SECTION("a budget that covers every failure: all 100 answered") {
    auto r = run_through_front(1.0);
    CHECK(r.ok == 100);
    CHECK(r.retries >= 40);  // about half the attempts met the hole and were retried
  }
  SECTION("a budget of 10%: 10 tokens to start, 0.1 per request, then no more retries") {
    auto r = run_through_front(0.1);
    INFO("ok " << r.ok << ", failed " << r.failed << ", retries " << r.retries);
    CHECK(r.retries <= 10 + 10 + 1);
    CHECK(r.retries >= 15);
    CHECK(r.failed >= 20);  // about 50 met the hole, at most 21 of them were retried
    CHECK(r.ok + r.failed == 100);
    CHECK(r.ok >= 50);
  }
}
