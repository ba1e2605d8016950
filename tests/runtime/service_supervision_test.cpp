// Supervision of real service actors inside a node.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "admin_json.hpp"
#include "test_node.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

std::string crash_args() { return *json_to_msgpack(R"({"message":"boom"})"); }

}  // namespace

TEST_CASE("a service whose supervisor gives up is down: callers get unavailable at once, others serve",
          "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.workers = 1;
  g.supervision.intensity = {2, 10000ms};
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  for (int i = 0; i < 3; ++i) {
    auto r = c.call("greeter", "crash", crash_args());
    CHECK(r.error->is(errc::internal));
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(eventually([&] { return status_of(*n, "greeter").state == "down"; }));
  CHECK_THAT(status_of(*n, "greeter").down_reason, Catch::Contains("restart intensity exceeded") && Catch::Contains("boom"));
  auto start = std::chrono::steady_clock::now();
  auto r = c.call("greeter", "hello", pack(hello_args{"x"}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->is(errc::unavailable));
  CHECK(std::chrono::steady_clock::now() - start < 500ms);
  // The other services are untouched.
  CHECK(c.call("counter", "add", *json_to_msgpack(R"({"n":1})"), [] { call_options o; o.key = "k"; return o; }()).ok());
  // The operator brings it back.
  REQUIRE(n->restart_service("greeter").ok());
  CHECK(status_of(*n, "greeter").state == "up");
  CHECK(c.call("greeter", "hello", pack(hello_args{"back"})).ok());
}

TEST_CASE("one_for_all restarts every worker when one crashes", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.workers = 3;
  g.supervision.strategy = restart_strategy::one_for_all;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  CHECK(c.call("greeter", "crash", crash_args()).error->is(errc::internal));
  REQUIRE(eventually([&] { return status_of(*n, "greeter").restarts == 1; }));
  // The root publishes its children after the restart: wait for that, not for a sleep.
  auto all_restarted_once = [&] {
    for (const auto& id : {"worker-1", "worker-2", "worker-3"}) {
      auto child = child_of(*n, "greeter", id);
      if (child.restarts != 1 || child.state != "running") return false;
    }
    return true;
  };
  CHECK(eventually(all_restarted_once));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(status_of(*n, "greeter").restarts == 1);  // and no second round
  CHECK(all_restarted_once());
  CHECK(c.call("greeter", "hello", pack(hello_args{"x"})).ok());
}

TEST_CASE("the node times each worker restart, from the failure to the replacement's first message",
          "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.workers = 1;
  g.supervision.intensity = {100, 10000ms};  // six restarts in a row, no giving up
  auto n = start_node(cfg);
  CHECK(status_of(*n, "greeter").restarts_timed == 0);
  CHECK(status_of(*n, "greeter").restart_latency_p50_us < 0);  // none yet: not a made-up figure
  client c(n->endpoints().front());
  for (std::uint64_t i = 1; i <= 5; ++i) {
    CHECK(c.call("greeter", "crash", crash_args()).error->is(errc::internal));
    // The next crash only once this restart is timed (a call meeting the dead worker is answered unavailable).
    REQUIRE(eventually([&] { return status_of(*n, "greeter").restarts_timed == i; }, 3000ms));
  }
  auto s = status_of(*n, "greeter");
  CHECK(s.restart_latency_p50_us > 0);
  CHECK(s.restart_latency_p99_us >= s.restart_latency_p50_us);
  CHECK(s.restart_latency_max_us >= s.restart_latency_p99_us);
  CHECK(s.restart_latency_p99_us < 2e6);
  // A crash an operator injects is timed too.
  REQUIRE(n->command_child("greeter", "worker-1", "crash").ok());
  REQUIRE(eventually([&] { return status_of(*n, "greeter").restarts_timed == 6; }, 3000ms));
  CHECK(c.call("greeter", "hello", pack(hello_args{"x"})).ok());
  // The operator's view carries the same figures.
  auto j = admin_json(*n, dir.path(), "status");
  bool seen = false;
  for (const auto& svc : j["services"])
    if (svc["name"] == "greeter") {
      seen = true;
      CHECK(svc["restart_latency"]["timed"] == 6);
      CHECK(svc["restart_latency"]["p50_us"].get<double>() > 0);
    }
  CHECK(seen);
}

TEST_CASE("a blocking service's restarted worker takes its predecessor's thread", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");  // declares a blocking method: its workers have threads of their own
  g.workers = 2;
  g.supervision.intensity = {1000, 10000ms};
  auto n = start_node(cfg);
  CHECK(status_of(*n, "counter").blocking_threads == -1);  // on the shared scheduler: no threads of its own
  client c(n->endpoints().front());
  REQUIRE(c.call("greeter", "hello", pack(hello_args{"x"})).ok());
  const auto before = status_of(*n, "greeter");
  CHECK(before.blocking_threads >= 2);
  CHECK(before.blocking_threads_started >= 2);
  constexpr std::uint64_t crashes = 30;
  for (std::uint64_t i = 1; i <= crashes; ++i) {
    CHECK(c.call("greeter", "crash", crash_args()).error->is(errc::internal));
    REQUIRE(eventually([&] { return status_of(*n, "greeter").restarts_timed == i; }, 3000ms));
  }
  const auto after = status_of(*n, "greeter");
  // A thread per restart would be 30 more. A replacement that arrives before
  // its predecessor's thread is idle again may start one; a few, not 30.
  CHECK(after.blocking_threads_started - before.blocking_threads_started <= 4);
  CHECK(after.blocking_threads <= 6);
  // Both workers still block at the same time, each on a thread of its own:
  // two 1 s sleeps overlap.
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& f : greeter_sleepers(n->endpoints().front(), 2, 1000)) CHECK(f.get());
  CHECK(std::chrono::steady_clock::now() - t0 < 1800ms);
  CHECK(c.call("greeter", "hello", pack(hello_args{"y"})).ok());
  // The operator sees the same figures.
  auto j = admin_json(*n, dir.path(), "status");
  for (const auto& svc : j["services"]) {
    if (svc["name"] == "greeter") CHECK(svc["blocking_threads"]["started"].get<std::int64_t>() >= after.blocking_threads_started);
    if (svc["name"] == "counter") CHECK(svc["blocking_threads"].is_null());
  }
}

TEST_CASE("backoff delays a restart and the service answers unavailable meanwhile", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.workers = 1;
  g.supervision.backoff = {300ms, 1000ms, 0.0, 30000ms};
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  auto crashed_at = std::chrono::steady_clock::now();
  CHECK(c.call("greeter", "crash", crash_args()).error->is(errc::internal));
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-1").state == "restarting"; }, 250ms));
  auto during = c.call("greeter", "hello", pack(hello_args{"x"}));
  REQUIRE_FALSE(during.ok());
  CHECK(during.error->is(errc::unavailable));
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-1").state == "running"; }, 3000ms));
  CHECK(std::chrono::steady_clock::now() - crashed_at >= 300ms);
  CHECK(c.call("greeter", "hello", pack(hello_args{"x"})).ok());
}

TEST_CASE("the watchdog reports a stuck handler and replaces its worker", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.workers = 1;
  g.handler_timeout = 50ms;
  g.replace_stuck = true;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  std::optional<reply> slow;
  c.call_async("greeter", "sleep", pack(sleep_args{600}), {}, [&](reply&& r) { slow = std::move(r); });
  REQUIRE(eventually([&] { return status_of(*n, "greeter").stuck_handlers == 1; }, 2000ms));
  CHECK_THAT(status_of(*n, "greeter").last_failure, Catch::Contains("greeter.sleep") && Catch::Contains("50 ms"));
  // The replacement answers while the stuck handler still sleeps.
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-1").restarts == 1; }, 2000ms));
  auto start = std::chrono::steady_clock::now();
  auto r = c.call("greeter", "hello", pack(hello_args{"x"}));
  CHECK(r.ok());
  CHECK(std::chrono::steady_clock::now() - start < 550ms);  // the stuck one sleeps 600 ms
  REQUIRE(c.drain(3s));
  REQUIRE(slow);
  CHECK(slow->ok());  // the stuck handler's own reply still arrives
}

TEST_CASE("a crash-looping service does not disturb a healthy one under steady load", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.supervision.intensity = {1000000, 1000ms};  // keep it looping rather than giving up
  auto n = start_node(cfg);
  std::atomic<bool> stop{false};
  std::atomic<int> crashes{0};
  std::thread crasher([&] {
    client c(n->endpoints().front());
    auto until = std::chrono::steady_clock::now() + 3s;
    while (!stop && std::chrono::steady_clock::now() < until)
      if (auto r = c.call("greeter", "crash", crash_args()); r.error && r.error->is(errc::internal)) crashes++;
  });
  client c(n->endpoints().front());
  int ok = 0, failed = 0;
  call_options key;
  key.key = "steady";
  for (int i = 0; i < 500; ++i)
    (c.call("counter", "add", *json_to_msgpack(R"({"n":1})"), key).ok() ? ok : failed)++;
  stop = true;
  crasher.join();
  CHECK(failed == 0);
  CHECK(ok == 500);
  CHECK(crashes > 5);
  CHECK(status_of(*n, "counter").restarts == 0);
  // Every crash was followed by a restart.
  CHECK(eventually([&] { return status_of(*n, "greeter").restarts == static_cast<std::uint64_t>(crashes.load()); }));
}

TEST_CASE("operator commands stop, start, restart and crash one child", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.allow_fault_injection = false;
  service_named(cfg, "greeter").workers = 2;
  auto n = start_node(cfg);
  CHECK(n->command_child("greeter", "worker-1", "crash").error().code == "bad_request");  // fault injection off
  REQUIRE(n->command_child("greeter", "worker-2", "stop").ok());
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-2").state == "stopped"; }));
  REQUIRE(n->command_child("greeter", "worker-2", "start").ok());
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-2").state == "running"; }));
  REQUIRE(n->command_child("greeter", "worker-1", "restart").ok());
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-1").restarts == 1; }));
  CHECK(n->command_child("greeter", "worker-9", "restart").error().code == "bad_request");
  CHECK(n->command_child("nosuch", "worker-1", "restart").error().code == "unknown_service");
  CHECK(n->command_child("greeter", "worker-1", "explode").error().code == "bad_request");
}

TEST_CASE("a temporary worker that crashes is not restarted", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  auto& g = service_named(cfg, "greeter");
  g.workers = 1;
  g.worker_restart = restart_type::temporary;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  CHECK(c.call("greeter", "crash", crash_args()).error->is(errc::internal));
  REQUIRE(eventually([&] { return child_of(*n, "greeter", "worker-1").state == "stopped"; }));
  CHECK(status_of(*n, "greeter").restarts == 0);
  auto r = c.call("greeter", "hello", pack(hello_args{"x"}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->is(errc::unavailable));
}

TEST_CASE("an instance name gives each instance its own store directory", "[storage][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.instance = "b";
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  call_options key;
  key.key = "k";
  REQUIRE(c.call("counter", "add", pack(add_args{1}), key).ok());
  CHECK(std::filesystem::exists(dir / "counter-b/CURRENT"));
  CHECK_FALSE(std::filesystem::exists(dir / "counter"));
}

TEST_CASE("a continuation that throws is a crash: its caller gets internal naming the exception, not unavailable",
          "[runtime][supervision]") {
  temp_dir dir;
  auto catalog = example_services();
  catalog.push_back(worker_service("thrower")
                        .method("std", [](method_context& ctx, const hello_args& a, responder<hello_reply> respond) {
                          ctx.call<hello_reply>("greeter", "hello", a, [respond](result<hello_reply>) {
                            throw std::runtime_error("continuation failed");
                          });
                        })
                        .method("other", [](method_context& ctx, const hello_args& a, responder<hello_reply> respond) {
                          ctx.call<hello_reply>("greeter", "hello", a, [respond](result<hello_reply>) { throw 42; });
                        })
                        .build());
  auto n = node::start(loopback_config(dir.path(), catalog), catalog);
  REQUIRE(n);
  client c((*n)->endpoints().front());
  auto r = c.call("thrower", "std", pack(hello_args{"x"}));
  REQUIRE(r.error);
  CHECK(r.error->is(errc::internal));  // before: unavailable, "stopped before replying"
  CHECK_THAT(r.error->message, Catch::Contains("continuation failed"));
  auto other = c.call("thrower", "other", pack(hello_args{"x"}));  // before: escaped the actor
  REQUIRE(other.error);
  CHECK(other.error->is(errc::internal));
  CHECK_THAT(other.error->message, Catch::Contains("non-standard"));
  CHECK(c.call("greeter", "hello", pack(hello_args{"still"})).ok());
}

TEST_CASE("a key whose entity keeps crashing is quarantined and the service stays up", "[supervision][runtime]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  // Five poison keys, three crashes each: 15 crashes in well under 5 s. The
  // service's default intensity for entities (30 in 5 s) is not run out,
  // and each key is quarantined at its third crash.
  // A call that reaches the key in the instant between a crash and the
  // root hearing of it finds no actor to run it and is answered
  // `unavailable` (retryable, nothing ran): only `internal` answers are crashes.
  for (int k = 0; k < 5; ++k)
    for (int crashes = 0, attempts = 0; crashes < 3 && attempts < 20; ++attempts) {
      auto r = c.call("counter", "crash", pack(no_args{}), keyed("poison-" + std::to_string(k)));
      REQUIRE(!r.ok());
      REQUIRE((r.error->is(errc::internal) || r.error->is(errc::unavailable)));
      if (r.error->is(errc::internal)) ++crashes;
    }
  auto quarantined = c.call("counter", "get", pack(no_args{}), keyed("poison-0"));
  REQUIRE(!quarantined.ok());
  CHECK(quarantined.error->is(errc::entity_quarantined));
  CHECK_THAT(quarantined.error->message, Catch::Contains("counter 'poison-0' crashed on purpose"));
  // Everyone else is served.
  CHECK(c.call_as<counter_value>("counter", "add", add_args{2}, keyed("healthy"))->value == 2);
  // The root counts a crash when the actor's exit reaches it, after the
  // crashed request was answered: wait for the state, do not race it.
  CHECK(eventually([&] { return status_of(*n, "counter").quarantines == 5; }));
  CHECK(status_of(*n, "counter").state == "up");
  CHECK(eventually([&] { return child_of(*n, "counter", "entity/poison-0").state == "quarantined"; }));
  // The operator releases it: its next request runs again.
  REQUIRE(n->command_child("counter", "entity/poison-0", "restart").ok());
  CHECK(eventually([&] { return c.call("counter", "get", pack(no_args{}), keyed("poison-0")).ok(); }));
  auto still = c.call("counter", "get", pack(no_args{}), keyed("poison-1"));
  REQUIRE(!still.ok());
  CHECK(still.error->is(errc::entity_quarantined));
}

TEST_CASE("crashes an operator injects do not quarantine a key", "[supervision][runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.allow_fault_injection = true;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  call_options o;
  o.key = "k";
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, o).ok());
  for (int i = 0; i < 4; ++i) {
    REQUIRE(n->command_child("counter", "entity/k", "crash").ok());
    REQUIRE(eventually([&] { return status_of(*n, "counter").restarts == static_cast<std::uint64_t>(i + 1); }));
  }
  CHECK(c.call_as<counter_value>("counter", "get", no_args{}, o)->value == 1);
  CHECK(status_of(*n, "counter").quarantines == 0);
}

TEST_CASE("a responder kept past its actor's end answers unavailable instead of touching the dead actor",
          "[supervision][runtime]") {
  std::mutex kept_mutex;
  std::optional<responder<no_args>> kept;
  auto keeper = worker_service("keeper")
                    .method("keep",
                            [&](method_context&, const no_args&, responder<no_args> r) {
                              std::lock_guard<std::mutex> guard(kept_mutex);
                              kept = r;
                            })
                    .build();
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), {keeper});
  service_named(cfg, "keeper").workers = 1;
  cfg.allow_fault_injection = true;
  auto started = node::start(cfg, {keeper});
  REQUIRE(started);
  auto& n = *started;
  const auto ep = n->endpoints().front();
  auto answer = std::async(std::launch::async, [ep] {
    client c(ep);
    call_options o;
    o.timeout = 10s;
    return c.call("keeper", "keep", pack(no_args{}), o);
  });
  REQUIRE(eventually([&] {
    std::lock_guard<std::mutex> guard(kept_mutex);
    return kept.has_value();
  }));
  // The worker that ran the handler ends; its responder lives on.
  REQUIRE(n->command_child("keeper", "worker-1", "crash").ok());
  REQUIRE(eventually([&] { return status_of(*n, "keeper").restarts == 1; }));
  {
    std::lock_guard<std::mutex> guard(kept_mutex);
    (*kept)(no_args{});
  }
  auto r = answer.get();
  REQUIRE(!r.ok());
  CHECK(r.error->is(errc::unavailable));
  CHECK_THAT(r.error->message, Catch::Contains("ended before it answered"));
}

TEST_CASE("by default the watchdog names a handler that blocks without saying so, and others still serve",
          "[supervision][runtime]") {
  auto sloth = worker_service("sloth")
                   .method("nap",
                           [](method_context&, const sleep_args& a) {
                             std::this_thread::sleep_for(std::chrono::milliseconds(a.ms));  // undeclared
                             return a;
                           })
                   .build();
  auto catalog = example_services();
  catalog.push_back(sloth);
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog);
  service_named(cfg, "sloth").workers = 1;
  auto started = node::start(cfg, catalog);
  REQUIRE(started);
  auto& n = *started;
  client c(n->endpoints().front());
  std::optional<reply> slow;
  c.call_async("sloth", "nap", pack(sleep_args{1800}), {}, [&](reply&& r) { slow = std::move(r); });
  // No handler_timeout_ms in the config: the default (1 s on shared threads) applies.
  REQUIRE(eventually([&] { return status_of(*n, "sloth").stuck_handlers == 1; }, 3000ms));
  CHECK_THAT(status_of(*n, "sloth").last_failure, Catch::Contains("sloth.nap") && Catch::Contains("1000 ms"));
  // The nap holds one scheduler thread; there are at least two.
  call_options o;
  o.key = "beside-sloth";
  o.timeout = 500ms;
  CHECK(c.call_as<counter_value>("counter", "add", add_args{1}, o).ok());
  REQUIRE(c.drain(3s));
  REQUIRE(slow);
  CHECK(slow->ok());
  // on_stuck = "report" (the default) only reports: the worker was never replaced.
  CHECK(child_of(*n, "sloth", "worker-1").restarts == 0);
  CHECK(status_of(*n, "sloth").restarts == 0);
}

TEST_CASE("the watchdog names an entity handler that holds its scheduler thread, with its key",
          "[supervision][runtime]") {
  auto snail = entity_service<counter_state>("snail")
                   .method("crawl",
                           [](entity_context<counter_state>& ctx, const sleep_args& a) {
                             std::this_thread::sleep_for(std::chrono::milliseconds(a.ms));  // blocks its thread
                             ctx.state().value++;
                             return counter_value{ctx.key(), ctx.state().value};
                           })
                   .build();
  auto catalog = example_services();
  catalog.push_back(snail);
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog);
  service_config snail_cfg;
  snail_cfg.name = "snail";
  cfg.services.push_back(snail_cfg);
  auto started = node::start(cfg, catalog);
  REQUIRE(started);
  auto& n = *started;
  client c(n->endpoints().front());
  std::optional<reply> slow;
  call_options o;
  o.key = "shell-7";
  c.call_async("snail", "crawl", pack(sleep_args{1600}), o, [&](reply&& r) { slow = std::move(r); });
  REQUIRE(eventually([&] { return status_of(*n, "snail").stuck_handlers == 1; }, 3000ms));
  CHECK_THAT(status_of(*n, "snail").last_failure,
             Catch::Contains("snail/entity/shell-7") && Catch::Contains("snail.crawl") && Catch::Contains("1000 ms"));
  REQUIRE(c.drain(3s));
  REQUIRE(slow);
  CHECK(slow->ok());
  // Reported once per stuck handler; a quick one is not reported.
  o.key = "shell-8";
  CHECK(c.call_as<counter_value>("snail", "crawl", sleep_args{1}, o).ok());
  CHECK(status_of(*n, "snail").stuck_handlers == 1);
}
