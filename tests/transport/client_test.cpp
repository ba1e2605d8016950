#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <optional>
#include <thread>

#include <pthread.h>

#include <zmq_addon.hpp>

#include "cohort/transport/client.hpp"

using namespace cohort;

namespace {

/// A ROUTER that answers requests by echoing the payload, optionally out of order.
struct echo_peer {
  zmq::context_t ctx{1};
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string endpoint;

  echo_peer() {
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    endpoint = router.get(zmq::sockopt::last_endpoint);
  }

  /// Reads `n` requests, then answers them in reverse order. Runs on a
  /// thread of its own: it reports what went wrong instead of asserting
  /// (Catch2 v2 assertions belong to the test's thread).
  std::string answer_reversed(int n) {
    std::vector<std::vector<zmq::message_t>> got;
    for (int i = 0; i < n; ++i) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(router, std::back_inserter(frames)) || frames.size() != 3)
        return "request " + std::to_string(i) + " did not arrive as 3 frames";
      got.push_back(std::move(frames));
    }
    for (auto it = got.rbegin(); it != got.rend(); ++it) {
      auto req = decode_envelope((*it)[1].to_string_view(), {});
      if (!req.ok()) return "a request's envelope did not decode: " + req.error().message;
      envelope rep;
      rep.kind = message_kind::reply;
      rep.id = req->id;
      auto head = encode_envelope(rep);
      std::array<zmq::const_buffer, 3> out{zmq::buffer((*it)[0].data(), (*it)[0].size()), zmq::buffer(head),
                                           zmq::buffer((*it)[2].data(), (*it)[2].size())};
      zmq::send_multipart(router, out);
    }
    return {};
  }
};

}  // namespace

TEST_CASE("many calls in flight on one connection are matched by correlation id", "[transport]") {
  echo_peer peer;
  client c(peer.endpoint);
  std::map<int, std::string> results;
  for (int i = 0; i < 64; ++i)
    c.call_async("svc", "echo", pack(i), {}, [&results, i](reply&& r) {
      REQUIRE(r.ok());  // runs inside drain(), on this thread
      results[i] = r.payload;
    });
  CHECK(c.in_flight() == 64);
  std::string server_problem;
  std::thread server([&] { server_problem = peer.answer_reversed(64); });
  CHECK(c.drain(std::chrono::seconds(10)));
  server.join();
  CHECK(server_problem.empty());
  REQUIRE(results.size() == 64);
  for (int i = 0; i < 64; ++i) CHECK(results[i] == pack(i));
}

TEST_CASE("a call with no answer fails with timeout at its deadline", "[transport]") {
  echo_peer peer;  // never answers
  client c(peer.endpoint);
  call_options o;
  o.timeout = std::chrono::milliseconds(50);
  auto start = std::chrono::steady_clock::now();
  auto r = c.call("svc", "m", pack(1), o);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error->is(errc::timeout));
  CHECK(took >= std::chrono::milliseconds(50));
  CHECK(took < std::chrono::seconds(5));
  CHECK(c.in_flight() == 0);
}

TEST_CASE("poll with nothing to read sleeps its whole wait instead of spinning", "[transport]") {
  // poll(2) counts whole milliseconds: a wait cut down to them (1 ms read
  // as 0.99, truncated to 0) made a loop of poll(1ms) a busy loop that took
  // a core from the node beside it.
  echo_peer peer;  // never answers
  client c(peer.endpoint);
  call_options o;
  o.timeout = std::chrono::seconds(5);
  c.call_async("svc", "m", pack(1), o, [](reply&&) {});
  for (int ms : {1, 2, 3}) {
    auto start = std::chrono::steady_clock::now();
    CHECK(c.poll(std::chrono::milliseconds(ms)) == 0);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(ms));
  }
  int polls = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  while (std::chrono::steady_clock::now() < until && polls < 100000) {
    c.poll(std::chrono::milliseconds(1));
    ++polls;
  }
  CHECK(polls <= 101);  // each slept at least its millisecond
  auto start = std::chrono::steady_clock::now();
  c.poll(std::chrono::milliseconds(0));  // one look, no sleep
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  CHECK(c.in_flight() == 1);
}

namespace {
std::atomic<int> signals_seen{0};
extern "C" void count_signal(int) { signals_seen++; }
}  // namespace

TEST_CASE("a signal that interrupts a waiting call does not end it early or throw", "[transport]") {
  // A node that supervises service processes gets SIGCHLD on any thread;
  // cppzmq's poll throws on EINTR, and that once ended the whole node.
  struct sigaction sa {};
  sa.sa_handler = count_signal;  // no SA_RESTART: the poll is interrupted
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);
  echo_peer peer;  // never answers
  std::atomic<bool> done{false};
  std::optional<reply> outcome;
  std::string thrown;
  std::chrono::steady_clock::duration took{};
  std::thread caller([&] {
    client c(peer.endpoint);
    call_options o;
    o.timeout = std::chrono::milliseconds(400);
    auto start = std::chrono::steady_clock::now();
    try {
      outcome = c.call("svc", "m", pack(1), o);
    } catch (const std::exception& e) {
      thrown = e.what();
    }
    took = std::chrono::steady_clock::now() - start;
    done = true;
  });
  const int before = signals_seen.load();
  for (int i = 0; i < 200 && !done; ++i) {
    ::pthread_kill(caller.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  caller.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  CHECK(signals_seen.load() > before);  // the signals did land on the waiting thread
  CHECK(thrown.empty());
  REQUIRE(outcome);
  REQUIRE_FALSE(outcome->ok());
  CHECK(outcome->error->is(errc::timeout));
  CHECK(took >= std::chrono::milliseconds(400));
}
