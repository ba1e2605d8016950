#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <thread>

#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "test_node.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;

TEST_CASE("a worker service answers typed calls over tcp", "[runtime]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  auto r = c.call_as<hello_reply>("greeter", "hello", hello_args{"Ada"});
  REQUIRE(r.ok());
  CHECK(r->greeting == "Hello, Ada!");
}

TEST_CASE("a node serves the same under each scheduler policy: entities, workers, calls in flight", "[runtime]") {
  for (const char* policy : {"affinity", "sharing", "stealing"}) {
    INFO("scheduler_policy = " << policy);
    temp_dir dir;
    auto cfg = loopback_config(dir.path());
    cfg.scheduler_policy = policy;
    cfg.scheduler_threads = 2;
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    constexpr int calls = 400, keys = 40;
    int ok = 0;
    for (int i = 0; i < calls; ++i)
      c.call_async("counter", "add", pack(add_args{1}), keyed("k" + std::to_string(i % keys)),
                   [&](reply&& r) { ok += r.ok(); });
    REQUIRE(c.drain(std::chrono::seconds(30)));
    CHECK(ok == calls);
    for (int k = 0; k < keys; ++k)
      CHECK(c.call_as<counter_value>("counter", "get", no_args{}, keyed("k" + std::to_string(k)))->value == calls / keys);
    auto r = c.call_as<hello_reply>("greeter", "hello", hello_args{policy});
    REQUIRE(r.ok());
    CHECK(r->greeting == std::string("Hello, ") + policy + "!");
  }
}

TEST_CASE("every call of several pipelining clients is answered, whether the I/O thread spins or sleeps", "[runtime]") {
  // The I/O thread reads a socket when ZeroMQ's fd for it fires, or when it
  // may hold messages the fd will not announce (after a send, which can take
  // the signal; after a read stopped at its batch). A request it failed to
  // read would sit in the socket until its caller's deadline: calls lost.
  // One client alone is the case a lost signal stalls (its later requests
  // ride the same pipe, announced to nobody); several share the socket.
  struct run {
    int spin_us, clients, calls;
  };
  for (const run& r : {run{0, 1, 20000}, run{200, 1, 20000}, run{0, 4, 4000}, run{200, 4, 4000}}) {
    const int spin_us = r.spin_us, clients = r.clients, calls = r.calls;
    INFO("io_spin_us = " << spin_us << ", clients = " << clients);
    temp_dir dir;
    auto cfg = loopback_config(dir.path());
    cfg.io_spin_us = spin_us;
    auto n = start_node(cfg);
    constexpr int window = 48;
    std::vector<int> answered(clients, 0), failed(clients, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t)
      threads.emplace_back([&, t] {
        client c(n->endpoints().front());
        int sent = 0;
        std::function<void()> send_one = [&] {
          if (sent >= calls) return;
          ++sent;
          c.call_async("greeter", "hello", pack(hello_args{"p" + std::to_string(sent)}), call_options{},
                       [&](reply&& r) {
                         (r.ok() ? answered[t] : failed[t])++;
                         send_one();
                       });
        };
        for (int i = 0; i < window; ++i) send_one();
        c.drain(std::chrono::seconds(30));
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < clients; ++t) {
      INFO("client " << t);
      CHECK(failed[t] == 0);
      CHECK(answered[t] == calls);
    }
  }
}

TEST_CASE("a client that sends bursts between its polls gets every reply", "[runtime]") {
  // A client reads its socket when ZeroMQ's fd fires or after it sent: a
  // send processes the socket's pending commands now and then, and can take
  // the signal of replies that arrived meanwhile. Bursts of calls sent
  // outside poll, while earlier replies come in, are that case.
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  constexpr int rounds = 150, burst = 400;
  int answered = 0, failed = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < burst; ++i)
      c.call_async("greeter", "hello", pack(hello_args{"b"}), call_options{},
                   [&](reply&& r) { (r.ok() ? answered : failed)++; });
    // A reply left unannounced holds this loop until its call times out
    // (5 s), then counts as failed.
    REQUIRE(c.drain(std::chrono::seconds(10)));
    REQUIRE(failed == 0);
  }
  CHECK(answered == rounds * burst);
}

TEST_CASE("a call queued behind more one-way messages than the I/O thread reads at once is answered", "[runtime]") {
  // The I/O thread reads at most a batch of messages from a socket before it
  // looks at the others; what stays queued is announced by no signal. One-way
  // messages send no reply, so no send makes it read again either: only its
  // own note that the batch stopped early does.
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 1000; ++i) REQUIRE(c.send_oneway("greeter", "hello", pack(hello_args{"w"})));
    call_options o;
    o.timeout = std::chrono::seconds(3);
    auto r = c.call_as<hello_reply>("greeter", "hello", hello_args{"after"}, o);
    REQUIRE(r.ok());
    CHECK(r->greeting == "Hello, after!");
  }
}

TEST_CASE("the same code serves over inproc:// in one process", "[runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.listen = {"inproc://cohort-test"};
  auto n = start_node(cfg);
  client c(n->context(), "inproc://cohort-test");
  auto r = c.call_as<hello_reply>("greeter", "hello", hello_args{"inproc"});
  REQUIRE(r.ok());
  CHECK(r->greeting == "Hello, inproc!");
}

TEST_CASE("an entity keeps its state across passivation and a node restart", "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "counter").entity_idle = std::chrono::milliseconds(20);
  {
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    REQUIRE(c.call_as<counter_value>("counter", "add", add_args{5}, keyed("k1"))->value == 5);
    REQUIRE(c.call_as<counter_value>("counter", "add", add_args{3}, keyed("k1"))->value == 8);
    // Passivated: counted, and its actor gone.
    REQUIRE(eventually([&] {
      auto st = status_of(*n, "counter");
      return st.passivations >= 1 && st.live_entities == 0;
    }));
    auto again = c.call_as<counter_value>("counter", "get", no_args{}, keyed("k1"));
    REQUIRE(again.ok());
    CHECK(again->value == 8);  // re-activated from the store
    CHECK(status_of(*n, "counter").activations >= 2);  // re-activated (more if the machine is slow)
  }
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  auto after_restart = c.call_as<counter_value>("counter", "get", no_args{}, keyed("k1"));
  REQUIRE(after_restart.ok());
  CHECK(after_restart->value == 8);
}

TEST_CASE("each key gets one activation, and idle entities are passivated", "[runtime][entities]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  // Long enough that no key goes idle between the rounds, even on a slow machine.
  service_named(cfg, "counter").entity_idle = std::chrono::milliseconds(1000);
  service_named(cfg, "counter").store_durability = durability::async;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  int ok = 0;
  for (int round = 0; round < 3; ++round)
    for (int k = 0; k < 100; ++k)
      c.call_async("counter", "add", pack(add_args{1}), keyed("key-" + std::to_string(k)),
                   [&](reply&& r) { ok += r.ok(); });
  REQUIRE(c.drain(std::chrono::seconds(20)));
  CHECK(ok == 300);
  CHECK(status_of(*n, "counter").activations == 100);
  auto v = c.call_as<counter_value>("counter", "get", no_args{}, keyed("key-42"));
  CHECK(v->value == 3);
  REQUIRE(eventually([&] { return status_of(*n, "counter").live_entities == 0; }));
  CHECK(status_of(*n, "counter").passivations >= 100);
}

TEST_CASE("an entity service call without a key is a bad_request", "[runtime][entities]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  auto r = c.call("counter", "add", pack(add_args{1}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->is(errc::bad_request));
  CHECK_THAT(r.error->message, Catch::Contains("key"));
}

TEST_CASE("a service calls two others and combines their replies", "[runtime]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  auto first = c.call_as<visit_reply>("visits", "record", hello_args{"bo"});
  REQUIRE(first.ok());
  CHECK(first->greeting == "Hello, bo!");
  CHECK(first->visits == 1);
  CHECK(c.call_as<visit_reply>("visits", "record", hello_args{"bo"})->visits == 2);
  auto bad = c.call("visits", "record", pack(hello_args{""}));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error->is(errc::bad_request));
}

TEST_CASE("a handler that throws answers internal and its worker is replaced", "[runtime][supervision]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "greeter").workers = 1;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  auto r = c.call("greeter", "crash", *json_to_msgpack(R"({"message":"boom"})"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->is(errc::internal));
  CHECK_THAT(r.error->message, Catch::Contains("std::runtime_error") && Catch::Contains("boom"));
  REQUIRE(eventually([&] { return status_of(*n, "greeter").restarts == 1; }));
  CHECK_THAT(status_of(*n, "greeter").last_failure, Catch::Contains("boom"));
  auto after = c.call_as<hello_reply>("greeter", "hello", hello_args{"x"});
  INFO((after.ok() ? std::string() : after.error().code + ": " + after.error().message));
  CHECK(after.ok());
}

TEST_CASE("requests queued behind a crash are answered, never left silent", "[runtime][supervision]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "greeter").workers = 1;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  std::vector<std::string> outcomes;
  auto record = [&](reply&& r) { outcomes.push_back(r.ok() ? "ok" : r.error->code); };
  c.call_async("greeter", "sleep", pack(sleep_args{100}), {}, record);
  c.call_async("greeter", "crash", *json_to_msgpack(R"({"message":"boom"})"), {}, record);
  for (int i = 0; i < 5; ++i) c.call_async("greeter", "hello", pack(hello_args{"q"}), {}, record);
  REQUIRE(c.drain(std::chrono::seconds(3)));  // far below the 5 s deadline: nobody waited it out
  REQUIRE(outcomes.size() == 7);
  for (const auto& o : outcomes) CHECK((o == "ok" || o == "internal" || o == "unavailable"));
  CHECK(std::count(outcomes.begin(), outcomes.end(), "internal") == 1);
  CHECK(std::count(outcomes.begin(), outcomes.end(), "timeout") == 0);
}

TEST_CASE("a request past its deadline is answered timeout", "[runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "greeter").workers = 1;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  call_options quick;
  quick.timeout = std::chrono::milliseconds(50);
  // The first blocks the only worker; the second expires in its queue and is not run.
  std::vector<std::string> codes;
  c.call_async("greeter", "sleep", pack(sleep_args{200}), quick, [&](reply&& r) { codes.push_back(r.error->code); });
  c.call_async("greeter", "hello", pack(hello_args{"late"}), quick, [&](reply&& r) { codes.push_back(r.error->code); });
  REQUIRE(c.drain(std::chrono::seconds(2)));
  CHECK(codes == std::vector<std::string>{"timeout", "timeout"});
  CHECK(c.call_as<hello_reply>("greeter", "hello", hello_args{"next"}).ok());
}

TEST_CASE("beyond max_in_flight a service answers overloaded at once", "[runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_named(cfg, "greeter").workers = 1;
  service_named(cfg, "greeter").max_in_flight = 2;
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  int ok = 0;
  for (int i = 0; i < 2; ++i) c.call_async("greeter", "sleep", pack(sleep_args{300}), {}, [&](reply&& r) { ok += r.ok(); });
  REQUIRE(eventually([&] { return status_of(*n, "greeter").in_flight == 2; }));
  auto start = std::chrono::steady_clock::now();
  auto r = c.call("greeter", "hello", pack(hello_args{"x"}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->is(errc::overloaded));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(250));
  REQUIRE(c.drain(std::chrono::seconds(3)));
  CHECK(ok == 2);
  CHECK(c.call_as<hello_reply>("greeter", "hello", hello_args{"x"}).ok());
}

TEST_CASE("stop lets in-flight requests finish and refuses new ones", "[runtime]") {
  temp_dir dir;
  auto n = start_node(loopback_config(dir.path()));
  client c(n->endpoints().front());
  std::optional<reply> slow;
  c.call_async("greeter", "sleep", pack(sleep_args{300}), {}, [&](reply&& r) { slow = std::move(r); });
  REQUIRE(eventually([&] { return status_of(*n, "greeter").in_flight == 1; }));
  std::thread stopper([&] { n->stop(); });
  // Ordered by state, not by a sleep: once the node drains, new calls are refused.
  std::optional<reply> refused;
  CHECK(eventually([&] {
    auto r = c.call("greeter", "hello", pack(hello_args{"x"}));
    if (r.ok()) return false;  // not draining yet
    refused = std::move(r);
    return true;
  }, std::chrono::milliseconds(250)));  // the slow call (300 ms) is still running then
  REQUIRE(c.drain(std::chrono::seconds(3)));
  stopper.join();
  REQUIRE(slow);
  CHECK(slow->ok());
  REQUIRE(refused);
  CHECK(refused->error->is(errc::unavailable));
  CHECK_THAT(refused->error->message, Catch::Contains("shutting down"));
}

TEST_CASE("a request still running at the end of the drain timeout is answered unavailable, and stop returns",
          "[runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.drain_timeout = std::chrono::milliseconds(300);
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  std::optional<reply> slow;
  call_options o;
  o.timeout = std::chrono::seconds(20);
  c.call_async("greeter", "sleep", pack(sleep_args{4000}), o, [&](reply&& r) { slow = std::move(r); });
  REQUIRE(eventually([&] { return status_of(*n, "greeter").in_flight == 1; }));
  auto started = std::chrono::steady_clock::now();
  std::thread stopper([&] { n->stop(); });
  // The caller hears at the drain timeout, not when the 4 s handler ends.
  REQUIRE(c.drain(std::chrono::seconds(3)));
  auto answered_after = std::chrono::steady_clock::now() - started;
  REQUIRE(slow);
  REQUIRE(slow->error);
  CHECK(slow->error->is(errc::unavailable));
  CHECK_THAT(slow->error->message, Catch::Contains("drain timeout of 300 ms"));
  CHECK(answered_after >= std::chrono::milliseconds(250));
  CHECK(answered_after < std::chrono::milliseconds(3000));
  stopper.join();
}

TEST_CASE("a service whose store cannot open is down while the others serve", "[runtime][storage]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  SECTION("locked by another process's open") {
    auto holder = store::open(dir / "counter");
    REQUIRE(holder.ok());
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    auto r = c.call("counter", "add", pack(add_args{1}), keyed("k"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->is(errc::unavailable));
    CHECK_THAT(r.error->message, Catch::Contains(dir / "counter"));
    CHECK(status_of(*n, "counter").state == "down");
    CHECK(c.call_as<hello_reply>("greeter", "hello", hello_args{"x"}).ok());
  }
  SECTION("not a directory") {
    std::ofstream(dir / "counter") << "not a store";
    auto n = start_node(cfg);
    client c(n->endpoints().front());
    auto r = c.call("counter", "get", pack(no_args{}), keyed("k"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->is(errc::unavailable));
    CHECK(c.call_as<hello_reply>("greeter", "hello", hello_args{"x"}).ok());
  }
}

TEST_CASE("a node cannot start on a port that is taken", "[runtime]") {
  temp_dir dir;
  auto first = start_node(loopback_config(dir.path()));
  auto cfg = loopback_config(dir / "second");
  cfg.listen = {first->endpoints().front()};
  auto second = node::start(cfg, example_services());
  REQUIRE_FALSE(second.ok());
  CHECK_THAT(second.error().message, Catch::Contains(first->endpoints().front()) && Catch::Contains("in use"));
}

TEST_CASE("process isolation without a config file is a clear error", "[runtime]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  cfg.isolation = "process";
  auto n = node::start(cfg, example_services());
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(n.error().message, Catch::Contains("config file"));
}

struct code_reply {
  std::string code;
  MSGPACK_DEFINE_MAP(code);
};

TEST_CASE("a call from one service to another that is too slow ends in timeout at its deadline", "[runtime]") {
  auto caller = worker_service("caller")
                    .method("slow_call",
                            [](method_context& ctx, const no_args&, responder<code_reply> respond) {
                              call_options quick;
                              quick.timeout = std::chrono::milliseconds(50);
                              ctx.call<sleep_args>("greeter", "sleep", sleep_args{400},
                                                   [respond](result<sleep_args> r) {
                                                     respond(code_reply{r ? "ok" : r.error().code});
                                                   },
                                                   quick);
                            })
                    .build();
  temp_dir dir;
  auto cfg = loopback_config(dir.path());
  service_config sc;
  sc.name = "caller";
  cfg.services.push_back(sc);
  // greeter.sleep blocks its scheduler thread; the caller needs another one to notice its deadline.
  cfg.scheduler_threads = 2;
  auto catalog = example_services();
  catalog.push_back(std::move(caller));
  auto n = node::start(cfg, catalog);
  REQUIRE(n.ok());
  client c((*n)->endpoints().front());
  auto start = std::chrono::steady_clock::now();
  auto r = c.call_as<code_reply>("caller", "slow_call", no_args{});
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(r.ok());
  CHECK(r->code == "timeout");
  CHECK(took >= std::chrono::milliseconds(50));
  CHECK(took < std::chrono::milliseconds(350));  // not the callee's 400 ms
}
