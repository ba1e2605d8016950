// Real `cohort run` processes on loopback: cross-process calls, signals, bad config.
#include <catch2/catch.hpp>

#include <fstream>

#include "eventually.hpp"
#include "node_process.hpp"
#include "cohort/transport/client.hpp"
#include "temp_dir.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;

namespace {

std::string write_file(const temp_dir& dir, const std::string& name, const std::string& text) {
  auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("a call crosses process boundaries when services are split over two nodes", "[integration]") {
  node_process b("[services.counter]\n[services.greeter]\n", "name = \"b\"\n");
  node_process a("[services.visits]\n[remote.counter]\nendpoint = \"" + b.endpoint + "\"\n[remote.greeter]\nendpoint = \"" +
                     b.endpoint + "\"\n",
                 "name = \"a\"\n");
  client c(a.endpoint);
  auto first = c.call_as<visit_reply>("visits", "record", hello_args{"eve"});
  REQUIRE(first.ok());
  CHECK(first->greeting == "Hello, eve!");
  CHECK(first->visits == 1);
  CHECK(c.call_as<visit_reply>("visits", "record", hello_args{"eve"})->visits == 2);
  // Node a also forwards a direct call for a remote service.
  auto direct = c.call("greeter", "hello", pack(hello_args{"via-a"}));
  CHECK(direct.ok());

  // With b gone, a's calls fail by their deadline instead of hanging.
  b.proc->signal(SIGKILL);
  REQUIRE(b.proc->wait());
  call_options quick;
  quick.timeout = std::chrono::milliseconds(300);
  auto gone = c.call("visits", "record", pack(hello_args{"eve"}), quick);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error->is(errc::timeout));

  a.proc->signal(SIGTERM);
  CHECK(a.proc->wait() == 0);
}

TEST_CASE("SIGTERM drains in-flight requests and exits 0", "[integration]") {
  node_process n("[services.greeter]\n", "drain_timeout_ms = 3000\n");
  client c(n.endpoint);
  std::optional<reply> slow;
  c.call_async("greeter", "sleep", pack(sleep_args{400}), {}, [&](reply&& r) { slow = std::move(r); });
  // Ordered by state: the signal goes once the node runs the request.
  REQUIRE(eventually([&] {
    c.poll(std::chrono::milliseconds(0));
    return n.service_status("greeter")["in_flight"] == 1;
  }, std::chrono::milliseconds(3000)));
  n.proc->signal(SIGTERM);
  REQUIRE(c.drain(std::chrono::seconds(5)));
  REQUIRE(slow);
  CHECK(slow->ok());
  CHECK(n.proc->wait() == 0);
  CHECK_THAT(n.proc->out(), Catch::Contains("SIGTERM, draining") && Catch::Contains("stopped"));
}

TEST_CASE("SIGINT stops an idle node with exit code 0", "[integration]") {
  temp_dir dir;
  auto cfg = write_file(dir, "n.toml", "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"tcp://127.0.0.1:*\"\ndata_dir = \"" + (dir / "d") + "\"\n[services.greeter]\n");
  child_process n({COHORT_BINARY, "run", "--config", cfg});
  REQUIRE(n.wait_for_line("ready"));
  n.signal(SIGINT);
  CHECK(n.wait() == 0);
}

TEST_CASE("bad config exits non-zero naming the key, before anything listens", "[integration]") {
  temp_dir dir;
  auto cfg = write_file(dir, "bad.toml", "[node]\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"tcp://127.0.0.1:*\"\n[services.greeter]\nworkerz = 2\n");
  child_process n({COHORT_BINARY, "run", "--config", cfg});
  auto code = n.wait();
  REQUIRE(code);
  CHECK(*code == 2);
  CHECK_THAT(n.err(), Catch::Contains("unknown key 'services.greeter.workerz'") && Catch::Contains(":5"));
  CHECK_THAT(n.out(), !Catch::Contains("listening"));
}

TEST_CASE("a missing config file exits non-zero naming the file", "[integration]") {
  child_process n({COHORT_BINARY, "run", "--config", "/nonexistent/cohort.toml"});
  auto code = n.wait();
  REQUIRE(code);
  CHECK(*code != 0);
  CHECK_THAT(n.err(), Catch::Contains("/nonexistent/cohort.toml"));
}

TEST_CASE("a port in use exits non-zero naming the port", "[integration]") {
  temp_dir dir;
  zmq::context_t ctx;
  zmq::socket_t holder(ctx, zmq::socket_type::router);
  holder.set(zmq::sockopt::linger, 0);
  holder.bind("tcp://127.0.0.1:*");
  std::string taken = holder.get(zmq::sockopt::last_endpoint);
  auto cfg = write_file(dir, "n.toml", "[node]\nlisten = [\"" + taken + "\"]\nadmin = \"tcp://127.0.0.1:*\"\ndata_dir = \"" + (dir / "d") + "\"\n[services.greeter]\n");
  child_process n({COHORT_BINARY, "run", "--config", cfg});
  auto code = n.wait();
  REQUIRE(code);
  CHECK(*code == 2);
  CHECK_THAT(n.err(), Catch::Contains(taken) && Catch::Contains("in use"));
}
