// Metrics and health of a real node: /metrics in the Prometheus text format
// (checked by Debian's promtool), families that move when their events
// happen, bounded labels, and /health/ready that tells the truth.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include <set>

#include <nlohmann/json.hpp>

#include <zmq.hpp>

#include "child_process.hpp"
#include "cohort/examples/example_messages.hpp"
#include "cohort/observability/metrics.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

/// (status code, body) of a GET with curl; the body goes through a file (an
/// exposition is larger than a pipe's buffer).
std::pair<int, std::string> get(const std::string& url) {
  temp_dir tmp;
  const auto body = tmp / "body";
  child_process p({"/usr/bin/curl", "-s", "-o", body, "-w", "%{http_code}", "--max-time", "10", url});
  auto code = p.wait(15s);
  REQUIRE(code == 0);
  std::ifstream in(body);
  std::stringstream ss;
  ss << in.rdbuf();
  return {std::stoi(p.out()), ss.str()};
}

/// The value of one series in an exposition, or -1 when it is not there.
double sample(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  auto start = at + 1 + series.size() + 1;
  return std::stod(text.substr(start, text.find('\n', start) - start));
}

node_config http_node(const std::string& dir) {
  auto cfg = loopback_config(dir);
  cfg.http.listen = "127.0.0.1:0";
  return cfg;
}

}  // namespace

TEST_CASE("/metrics is valid Prometheus text and its families move with their events", "[observability][metrics]") {
  temp_dir dir;
  auto n = start_node(http_node(dir.path()));
  client c(n->endpoints().front());
  for (int i = 0; i < 3; ++i) REQUIRE(c.call("greeter", "hello", pack(hello_args{"m"})).ok());
  REQUIRE(c.call("greeter", "fail", pack(fail_args{"out_of_stock", "none"})).error);
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, keyed("a")).ok());
  REQUIRE(c.call_as<visit_reply>("visits", "record", hello_args{"m"}).ok());  // calls counter and greeter itself
  // Made-up names are counted too, but under bounded labels.
  for (int i = 0; i < 100; ++i) (void)c.call("greeter", "no-such-" + std::to_string(i), pack(no_args{}));

  auto [status, text] = get(n->http_endpoint() + "/metrics");
  REQUIRE(status == 200);
  std::ofstream(dir / "metrics.txt") << text;
  child_process promtool({"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + (dir / "metrics.txt")});
  auto checked = promtool.wait(30s);
  INFO(promtool.out() << promtool.err());
  CHECK(checked == 0);

  CHECK(sample(text, R"(cohort_requests_total{code="ok",method="hello",service="greeter"})") == 3);
  CHECK(sample(text, R"(cohort_requests_total{code="out_of_stock",method="fail",service="greeter"})") == 1);
  CHECK(sample(text, R"(cohort_request_duration_seconds_count{method="hello",service="greeter"})") == 3);
  // The client side of ctx.call: visits called counter.add and greeter.hello.
  CHECK(sample(text, R"(cohort_client_requests_total{code="ok",method="add",service="counter"})") == 1);
  CHECK(sample(text, R"(cohort_service_up{service="counter"})") == 1);
  CHECK(sample(text, R"(cohort_entities_live{service="counter"})") >= 1);
  CHECK(sample(text, R"(cohort_entity_activations_total{service="counter"})") >= 1);
  CHECK(sample(text, R"(cohort_requests_total{code="unknown_method",method="other",service="greeter"})") > 0);
  std::regex greeter_methods(R"(cohort_request_duration_seconds_count\{method="[^"]*",service="greeter"\})");
  auto count = std::distance(std::sregex_iterator(text.begin(), text.end(), greeter_methods), std::sregex_iterator());
  CHECK(count <= 65);  // 64 method labels per service at most, then "other"
  // The counter's store: two writes (counter.add twice: from here and from visits), made durable.
  CHECK(sample(text, R"(cohort_store_writes_total{service="counter"})") == 2);
  CHECK(sample(text, R"(cohort_store_commits_total{service="counter"})") >= 1);
  CHECK(sample(text, R"(cohort_store_commit_duration_seconds_count{service="counter"})") ==
        sample(text, R"(cohort_store_commits_total{service="counter"})"));
  CHECK(sample(text, R"(cohort_store_commit_batch_writes_sum{service="counter"})") == 2);
  CHECK(sample(text, R"(cohort_store_written_bytes_total{service="counter"})") > 0);
  CHECK(sample(text, R"(cohort_store_memtable_bytes{service="counter"})") > 0);  // its two writes, not flushed yet
  CHECK(sample(text, R"(cohort_store_free_bytes{service="counter"})") > 0);
  CHECK(sample(text, R"(cohort_store_writes_refused{service="counter"})") == 0);
  CHECK(sample(text, "cohort_trace_spans_total") > 0);
  // More writes move them.
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, keyed("b")).ok());
  auto more = get(n->http_endpoint() + "/metrics").second;
  CHECK(sample(more, R"(cohort_store_writes_total{service="counter"})") == 3);

  // A service that goes down shows it.
  REQUIRE(n->stop_service("greeter").ok());
  auto after = get(n->http_endpoint() + "/metrics").second;
  CHECK(sample(after, R"(cohort_service_up{service="greeter"})") == 0);
}

TEST_CASE("/health/ready is 503 naming what is not ready, while /health/live stays 200", "[observability][health]") {
  temp_dir dir;
  auto n = start_node(http_node(dir.path()));
  const auto base = n->http_endpoint();
  CHECK(get(base + "/health/ready").first == 200);
  CHECK(get(base + "/health").first == 200);
  REQUIRE(n->stop_service("counter").ok());
  auto [code, body] = get(base + "/health/ready");
  CHECK(code == 503);
  CHECK_THAT(body, Catch::Contains("counter is down"));
  CHECK(get(base + "/health").first == 503);  // an alias of ready
  CHECK(get(base + "/health/live").first == 200);
  REQUIRE(n->start_service("counter").ok());
  CHECK(eventually([&] { return get(base + "/health/ready").first == 200; }));

  // Draining: not ready while the last requests finish. stop() runs on this
  // thread (CAF's system is torn down by the thread that made it); a slow
  // call keeps the drain busy while another thread asks /health/ready.
  auto slow = std::async(std::launch::async, [ep = n->endpoints().front()] {
    client c(ep);
    return c.call("greeter", "sleep", pack(sleep_args{1500})).ok();
  });
  REQUIRE(eventually([&] { return status_of(*n, "greeter").in_flight == 1; }));
  auto seen = std::async(std::launch::async, [url = base + "/health/ready"] {
    // No Catch2 assertions off the main thread: popen, and the answer is returned.
    for (int i = 0; i < 300; ++i) {
      std::string out;
      if (FILE* f = ::popen(("/usr/bin/curl -s --max-time 2 -w ' %{http_code}' " + url).c_str(), "r")) {
        char buf[4096];
        while (auto got = std::fread(buf, 1, sizeof buf, f)) out.append(buf, got);
        ::pclose(f);
      }
      if (out.find("draining") != std::string::npos && out.find(" 503") != std::string::npos) return out;
      std::this_thread::sleep_for(10ms);
    }
    return std::string();
  });
  std::this_thread::sleep_for(100ms);
  n->stop();
  CHECK(slow.get());
  CHECK_THAT(seen.get(), Catch::Contains("draining"));
}

TEST_CASE("a required remote service with no available instance makes the node not ready, and metrics show why",
          "[observability][health]") {
  temp_dir dir;
  auto cfg = http_node(dir.path());
  cfg.services.erase(std::remove_if(cfg.services.begin(), cfg.services.end(),
                                    [](const service_config& s) { return s.name == "greeter"; }),
                     cfg.services.end());
  remote_service_config greeter;
  greeter.name = "greeter";
  greeter.endpoints = {"tcp://127.0.0.1:9"};  // nothing answers there
  greeter.required = true;
  greeter.breaker_failures = 1;
  greeter.breaker_cooldown = 60s;
  greeter.max_retries = 0;
  cfg.remotes = {greeter};
  auto n = start_node(cfg);
  const auto base = n->http_endpoint();
  CHECK(get(base + "/health/ready").first == 200);  // one instance, breaker closed: worth trying
  client c(n->endpoints().front());
  call_options quick;
  quick.timeout = 300ms;
  CHECK(c.call("greeter", "hello", pack(hello_args{"x"}), quick).error);
  auto [code, body] = get(base + "/health/ready");
  CHECK(code == 503);
  CHECK_THAT(body, Catch::Contains("greeter (required) has no available instance"));
  auto text = get(base + "/metrics").second;
  CHECK(sample(text, R"(cohort_remote_breaker_open{service="greeter",endpoint="tcp://127.0.0.1:9"})") == 1);
  CHECK(sample(text, R"(cohort_remote_instances{service="greeter"})") == 1);
  CHECK(sample(text, R"(cohort_remote_failures_total{service="greeter",endpoint="tcp://127.0.0.1:9"})") >= 1);
  // The dependency's state is in the body: one instance, none available, never answered.
  auto remotes = nlohmann::json::parse(body)["remotes"];
  REQUIRE(remotes.size() == 1);
  CHECK(remotes[0]["service"] == "greeter");
  CHECK(remotes[0]["required"] == true);
  CHECK(remotes[0]["instances"] == 1);
  CHECK(remotes[0]["available"] == 0);
  CHECK(remotes[0]["last_success_s"].is_null());
}

TEST_CASE("retries to another instance and bulkhead refusals are counted per remote service",
          "[observability][metrics]") {
  temp_dir back_dir, front_dir;
  auto back = start_node(loopback_config(back_dir / "data"));
  auto cfg = http_node(front_dir.path());
  cfg.services.erase(std::remove_if(cfg.services.begin(), cfg.services.end(),
                                    [](const service_config& s) { return s.name == "greeter"; }),
                     cfg.services.end());
  remote_service_config greeter;
  greeter.name = "greeter";
  // A dead instance first (round robin starts there), then the live one: the
  // idempotent greeter.hello fails at the first and is retried at the second.
  greeter.endpoints = {"tcp://127.0.0.1:9", back->endpoints().front()};
  greeter.attempt_timeout = 200ms;
  greeter.max_in_flight = 1;
  cfg.remotes = {greeter};
  auto n = start_node(cfg);
  client c(n->endpoints().front());
  bool retried = false;
  call_options traced;
  traced.traceparent = "00-9c1f2e3d4b5a69788796a5b4c3d2e1f0-1122334455667788-01";
  for (int i = 0; i < 4 && !retried; ++i) {
    REQUIRE(c.call("greeter", "hello", pack(hello_args{"r"}), traced).ok());
    auto text = get(n->http_endpoint() + "/metrics").second;
    retried = sample(text, R"(cohort_remote_retries_total{service="greeter",endpoint=")" + back->endpoints().front() +
                               R"("})") >= 1;
  }
  CHECK(retried);
  // The trace survives the retry: the instance that answered served it as a
  // child of the front node's forward span.
  std::vector<observability::span> front_spans, back_spans;
  REQUIRE(eventually([&] {
    front_spans = n->spans("9c1f2e3d4b5a69788796a5b4c3d2e1f0");
    back_spans = back->spans("9c1f2e3d4b5a69788796a5b4c3d2e1f0");
    return !front_spans.empty() && !back_spans.empty();
  }));
  std::set<std::string> forwards;
  for (const auto& s : front_spans)
    if (s.kind == observability::span_kind::client) forwards.insert(s.span_id);
  for (const auto& s : back_spans) {
    CHECK(s.name == "greeter.hello");
    CHECK(forwards.count(s.parent_span_id) == 1);
  }
  // Health shows when the dependency last answered.
  auto health = nlohmann::json::parse(get(n->http_endpoint() + "/health/ready").second);
  REQUIRE(health["remotes"].size() == 1);
  CHECK(health["remotes"][0]["available"] >= 1);
  CHECK(health["remotes"][0]["last_success_s"].get<double>() >= 0);

  // max_in_flight = 1: while one slow call is out, the next is refused at once.
  client slow(n->endpoints().front());
  call_options long_call;
  long_call.timeout = 5s;
  auto pending = std::async(std::launch::async, [&] {
    return slow.call("greeter", "sleep", pack(sleep_args{600}), long_call);
  });
  std::this_thread::sleep_for(150ms);
  auto refused = c.call("greeter", "hello", pack(hello_args{"b"}));
  REQUIRE(refused.error);
  CHECK(refused.error->code == "overloaded");
  pending.wait();
  auto text = get(n->http_endpoint() + "/metrics").second;
  CHECK(sample(text, R"(cohort_remote_bulkhead_rejections_total{service="greeter"})") == 1);
  CHECK(sample(text, "cohort_http_overloaded_total") == 0);
  n->stop();
  back->stop();
}

TEST_CASE("supervision, entity, edge and security families move with their events", "[observability][metrics]") {
  temp_dir dir;
  auto cfg = http_node(dir.path());
  cfg.allow_fault_injection = true;
  service_named(cfg, "counter").entity_idle = 100ms;
  auto n = start_node(cfg);
  const auto url = n->http_endpoint() + "/metrics";
  auto before = get(url).second;
  client c(n->endpoints().front());

  // In flight while a slow call runs.
  client slow(n->endpoints().front());
  auto pending = std::async(std::launch::async, [&] { return slow.call("greeter", "sleep", pack(sleep_args{400})); });
  REQUIRE(eventually([&] { return sample(get(url).second, R"(cohort_service_in_flight{service="greeter"})") == 1; }));
  REQUIRE(pending.get().ok());
  CHECK(sample(get(url).second, R"(cohort_service_in_flight{service="greeter"})") == 0);

  // A crash is a restart; an idle entity is passivated.
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, keyed("p")).ok());
  REQUIRE(n->command_child("counter", "entity/p", "crash"));
  REQUIRE(eventually([&] { return sample(get(url).second, R"(cohort_service_restarts_total{service="counter"})") >= 1; }));
  REQUIRE(c.call_as<counter_value>("counter", "add", add_args{1}, keyed("q")).ok());
  REQUIRE(eventually([&] { return sample(get(url).second, R"(cohort_entity_passivations_total{service="counter"})") >= 1; }));

  // The edge: a frame that is not a request, and a request refused by admission.
  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(n->endpoints().front());
  raw.send(zmq::str_buffer("garbage"), zmq::send_flags::none);
  auto refused = c.call("_registry", "heartbeat", pack(no_args{}));  // only authenticated nodes may
  REQUIRE(refused.error);
  CHECK(refused.error->code == "forbidden");
  auto after = get(url).second;
  REQUIRE(eventually([&] {
    after = get(url).second;
    return sample(after, "cohort_edge_malformed_frames_total") > std::max(0.0, sample(before, "cohort_edge_malformed_frames_total"));
  }));
  CHECK(sample(after, "cohort_security_refused_requests_total") >
        std::max(0.0, sample(before, "cohort_security_refused_requests_total")));
  CHECK(sample(after, "cohort_edge_requests_total") > sample(before, "cohort_edge_requests_total"));
  n->stop();
}

TEST_CASE("per-method handles are found again, and service and method labels are bounded on each side",
          "[observability][metrics]") {
  observability::metrics m;
  auto& first = m.server("svc", "get");
  CHECK(&m.server("svc", "get") == &first);
  CHECK(&m.client("svc", "get") != &first);  // the two sides count apart
  first.record("ok", 1ms);
  for (std::size_t i = 0; i < observability::metrics::max_services + 20; ++i)
    m.server("svc-" + std::to_string(i), "get").record("ok", 1ms);
  for (std::size_t i = 0; i < observability::metrics::max_methods + 20; ++i)
    m.server("svc", "m-" + std::to_string(i)).record("ok", 1ms);
  const auto text = m.render();
  std::set<std::string> services, methods_of_svc;
  const std::regex series(R"re(cohort_requests_total\{code="ok",method="([^"]*)",service="([^"]*)"\})re");
  for (std::sregex_iterator it(text.begin(), text.end(), series), end; it != end; ++it) {
    services.insert((*it)[2]);
    if ((*it)[2] == "svc") methods_of_svc.insert((*it)[1]);
  }
  CHECK(services.size() <= observability::metrics::max_services + 1);
  CHECK(services.count("other") == 1);
  CHECK(services.count("svc") == 1);
  CHECK(methods_of_svc.size() <= observability::metrics::max_methods + 1);
  CHECK(methods_of_svc.count("other") == 1);
  CHECK(methods_of_svc.count("get") == 1);
  CHECK(sample(text, R"(cohort_requests_total{code="ok",method="get",service="svc"})") == 1);
  CHECK(sample(text, R"(cohort_requests_total{code="ok",method="get",service="other"})") > 0);
}

TEST_CASE("a method's histogram places a duration on a bound in that bound's bucket, sums, and counts codes past "
          "the 32nd as other, from several threads",
          "[observability][metrics]") {
  observability::metrics m;
  auto& h = m.server("svc", "get");
  h.record("ok", 50us);      // exactly the first bound: le="5e-05"
  h.record("ok", 51us);      // the second bucket
  h.record("ok", 20s);       // past the last bound: +Inf only
  h.record("not_found", 1ms);
  for (int i = 0; i < 40; ++i) h.record("code_" + std::to_string(i), 1ms);
  h.record("not_found", 1ms);  // a code seen before the list filled keeps its own series
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; ++i) m.server("svc", "get").record("ok", 2ms);
    });
  for (auto& t : threads) t.join();
  const auto text = m.render();
  INFO(text.substr(0, 4000));
  const std::string labels = R"(method="get",service="svc")";
  CHECK(sample(text, "cohort_request_duration_seconds_bucket{" + labels + R"(,le="5e-05"})") == 1);
  CHECK(sample(text, "cohort_request_duration_seconds_bucket{" + labels + R"(,le="0.0001"})") == 2);
  CHECK(sample(text, "cohort_request_duration_seconds_bucket{" + labels + R"(,le="0.001"})") == 44);
  CHECK(sample(text, "cohort_request_duration_seconds_bucket{" + labels + R"(,le="0.0025"})") == 4044);
  CHECK(sample(text, "cohort_request_duration_seconds_bucket{" + labels + R"(,le="10"})") == 4044);
  CHECK(sample(text, "cohort_request_duration_seconds_bucket{" + labels + R"(,le="+Inf"})") == 4045);
  CHECK(sample(text, "cohort_request_duration_seconds_count{" + labels + "}") == 4045);
  CHECK(sample(text, "cohort_request_duration_seconds_sum{" + labels + "}") == Approx(20.0 + 0.000101 + 0.042 + 8.0));
  CHECK(sample(text, R"(cohort_requests_total{code="ok",)" + labels + "}") == 4003);
  CHECK(sample(text, R"(cohort_requests_total{code="not_found",)" + labels + "}") == 2);
  CHECK(sample(text, R"(cohort_requests_total{code="code_30",)" + labels + "}") == 1);  // the 32nd code
  CHECK(sample(text, R"(cohort_requests_total{code="code_31",)" + labels + "}") == -1);
  CHECK(sample(text, R"(cohort_requests_total{code="other",)" + labels + "}") == 9);  // code_31 .. code_39
  // A second object on the same threads has handles of its own, though a
  // thread remembers the first's (and the first may be gone, its address reused).
  auto second = std::make_unique<observability::metrics>();
  CHECK(&second->server("svc", "get") != &h);
  second->server("svc", "get").record("ok", 1ms);
  CHECK(sample(second->render(), R"(cohort_requests_total{code="ok",)" + labels + "}") == 1);
}
