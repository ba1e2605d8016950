// Shutdown keeps every promise the node made: a request it accepted gets its
// answer before the node exits, whether a service here runs it or a remote
// instance it forwarded it to.
#include <catch2/catch.hpp>

#include <future>
#include <thread>

#include "cohort/examples/example_messages.hpp"
#include "cohort/transport/client.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

TEST_CASE("a draining node waits for the replies of requests it forwarded to a remote instance",
          "[runtime][drain]") {
  temp_dir backend_dir, front_dir;
  auto backend = start_node(loopback_config(backend_dir.path()));

  // The front hosts nothing: greeter is remote, on the backend.
  auto cfg = loopback_config(front_dir.path(), {});
  remote_service_config greeter;
  greeter.name = "greeter";
  greeter.endpoints = {backend->endpoints().front()};
  cfg.remotes.push_back(greeter);
  cfg.drain_timeout = 5s;
  auto front = start_node(cfg);
  const auto ep = front->endpoints().front();

  auto answer = std::async(std::launch::async, [ep] {
    client c(ep);
    call_options o;
    o.timeout = 10s;
    return c.call_as<sleep_args>("greeter", "sleep", sleep_args{800}, o);
  });
  REQUIRE(eventually([&] { return status_of(*backend, "greeter").in_flight == 1; }));

  auto t = std::chrono::steady_clock::now();
  front->stop();  // drains while the backend still works on the request
  auto stopped_after = std::chrono::steady_clock::now() - t;
  auto r = answer.get();
  INFO("stop took " << std::chrono::duration_cast<std::chrono::milliseconds>(stopped_after).count() << " ms");
  REQUIRE(r.ok());  // before: `unavailable`, the reply lost with the I/O loop's clients
  CHECK(r->ms == 800);
  CHECK(stopped_after < 5s);  // it waited for the reply, not for the drain timeout
}
