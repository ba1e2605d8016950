// Several instances of a service behind one front node: SIGKILL one under
// load and the requests move to the others.
#include <catch2/catch.hpp>

#include <set>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cohort/examples/example_messages.hpp"
#include "cohort/transport/client.hpp"
#include "node_process.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

TEST_CASE("requests move to the other instances within a bounded time when one is SIGKILLed",
          "[integration][gateway]") {
  std::vector<std::unique_ptr<node_process>> backends;
  for (int i = 0; i < 3; ++i) backends.push_back(std::make_unique<node_process>("[services.greeter]\n"));
  std::string endpoints;
  for (auto& b : backends) endpoints += (endpoints.empty() ? "\"" : ", \"") + b->endpoint + "\"";
  node_process front("[remote.greeter]\nendpoints = [" + endpoints +
                     "]\nbalance = \"least_outstanding\"\nattempt_timeout_ms = 300\nmax_retries = 2\n"
                     "retry_budget = 1.0\nbreaker_failures = 2\nbreaker_cooldown_ms = 5000\n");

  client c(front.endpoint);
  call_options opts;
  opts.timeout = 2000ms;
  std::uint64_t sent = 0, answered = 0, ok = 0;
  std::set<std::uint64_t> seen;
  std::vector<std::string> errors;
  double worst_ms = 0;
  auto until = std::chrono::steady_clock::now() + 3s;
  auto kill_at = std::chrono::steady_clock::now() + 700ms;
  bool killed = false;
  std::function<void()> send_one = [&] {
    auto start = std::chrono::steady_clock::now();
    auto id = c.call_async("greeter", "hello", pack(hello_args{"lb"}), opts, [&, start](reply&& r) {
      CHECK(seen.insert(r.header.id).second);  // never answered twice
      ++answered;
      if (r.ok()) ++ok;
      else errors.push_back(r.error->code + ": " + r.error->message);
      worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      if (std::chrono::steady_clock::now() < until) send_one();
    });
    (void)id;
    ++sent;
  };
  for (int i = 0; i < 16; ++i) send_one();
  while (c.in_flight() > 0 || std::chrono::steady_clock::now() < until) {
    c.poll(5ms);
    if (!killed && std::chrono::steady_clock::now() >= kill_at) {
      backends[1]->proc->signal(SIGKILL);
      REQUIRE(backends[1]->proc->wait());
      killed = true;
    }
    if (std::chrono::steady_clock::now() > until + 5s) break;
  }
  CHECK(killed);
  CHECK(answered == sent);
  CHECK(ok == sent);  // idempotent hello: every request that met the dead instance was retried elsewhere
  for (const auto& e : errors) WARN(e);
  CHECK(worst_ms < 1500);  // bounded: an attempt timeout and a retry, never the whole deadline
  CHECK(sent > 30);
}

TEST_CASE("a non-idempotent request that meets a dead instance fails fast instead of running twice",
          "[integration][gateway]") {
  // A "dead" instance that can never be reused by another test: a socket that
  // listens but never speaks ZeroMQ, so requests to it are never answered.
  int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(silent, 16) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  node_process other("[services.greeter]\n");
  node_process front("[remote.greeter]\nendpoints = [\"tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
                     "\", \"" + other.endpoint + "\"]\nattempt_timeout_ms = 200\n");
  client c(front.endpoint);
  call_options opts;
  opts.timeout = 3000ms;
  int timeouts = 0, oks = 0;
  for (int i = 0; i < 4; ++i) {
    // greeter.sleep is not declared idempotent: it is never retried.
    auto start = std::chrono::steady_clock::now();
    auto r = c.call("greeter", "sleep", pack(sleep_args{1}), opts);
    auto took = std::chrono::steady_clock::now() - start;
    if (r.ok()) ++oks;
    else {
      INFO(r.error->code << ": " << r.error->message);
      CHECK((r.error->is(errc::timeout) || r.error->is(errc::unavailable)));
      CHECK(took < 1000ms);
      ++timeouts;
    }
  }
  CHECK(timeouts >= 1);  // round robin hit the dead one at least once
  CHECK(oks >= 1);
  ::close(silent);
}

TEST_CASE("offered load far beyond a service's bulkhead gets prompt overloaded answers and full recovery",
          "[integration][gateway]") {
  node_process backend("[services.greeter]\nworkers = 2\n");
  // DNS names work as endpoints: ZeroMQ resolves them.
  auto port = backend.endpoint.substr(backend.endpoint.rfind(':') + 1);
  node_process front("[remote.greeter]\nendpoints = [\"tcp://localhost:" + port + "\"]\nmax_in_flight = 8\n");
  client c(front.endpoint);
  int ok = 0, overloaded = 0, other = 0;
  double slowest_refusal_ms = 0;
  for (int i = 0; i < 400; ++i) {
    auto start = std::chrono::steady_clock::now();
    c.call_async("greeter", "sleep", pack(sleep_args{50}), {}, [&, start](reply&& r) {
      if (r.ok()) ++ok;
      else if (r.error->is(errc::overloaded)) {
        ++overloaded;
        slowest_refusal_ms = std::max(slowest_refusal_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      } else ++other;
    });
  }
  REQUIRE(c.drain(20s));
  CHECK(ok >= 8);
  CHECK(overloaded > 300);
  CHECK(other == 0);
  CHECK(slowest_refusal_ms < 1000);  // refused at once: queued, the last would wait ~2.5 s
  // Memory stays bounded: a much larger flood leaves the gateway's memory where it was.
  auto rss_before = front.proc->rss_kib();
  int flood_replies = 0;
  for (int i = 0; i < 20000; ++i)
    c.call_async("greeter", "sleep", pack(sleep_args{20}), {}, [&](reply&&) { ++flood_replies; });
  REQUIRE(c.drain(60s));
  CHECK(flood_replies == 20000);
  CHECK(front.proc->rss_kib() - rss_before < 64 * 1024);
  // The load dropped: everything is served again.
  int after = 0;
  for (int i = 0; i < 8; ++i) c.call_async("greeter", "hello", pack(hello_args{"x"}), {}, [&](reply&& r) { after += r.ok(); });
  REQUIRE(c.drain(5s));
  CHECK(after == 8);
}
