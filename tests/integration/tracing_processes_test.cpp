// Traces and logs across processes: a checkout through the shop split over
// three node processes is one trace that `cohortctl trace` gathers from all
// three; in process isolation the trace id survives the hop into the service
// process, the access log names it, and `cohortctl logs` finds the lines.
#include <catch2/catch.hpp>

#include <csignal>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cohort/shop/seed.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "cohort/shop/shop.hpp"
#include "node_process.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string caller_span = "00f067aa0ba902b7";
const std::string traceparent = "00-" + trace_id + "-" + caller_span + "-01";

/// POSTs JSON with a traceparent; returns (status line and headers, body).
std::pair<std::string, std::string> post(const std::string& url, const std::string& body, const std::string& key) {
  auto [code, out] = run({"/usr/bin/curl", "-s", "-i", "--max-time", "20", "-H", "Content-Type: application/json", "-H",
                          "traceparent: " + traceparent, "-H", "X-Cohort-Key: " + key, "-d", body, url});
  REQUIRE(code == 0);
  auto split = out.find("\r\n\r\n");
  REQUIRE(split != std::string::npos);
  return {out.substr(0, split), out.substr(split + 4)};
}

const json* span_named(const json& spans, const std::string& name, const std::string& kind) {
  for (const auto& s : spans)
    if (s["name"] == name && s["kind"] == kind) return &s;
  return nullptr;
}

}  // namespace

TEST_CASE("a checkout through the split shop is one trace across three processes", "[integration][observability][trace]") {
  temp_dir shared;  // one data dir: the three nodes share node.key and operator.key (one --keys for cohortctl)
  const std::string data = shared / "data";
  const std::string tuning = "resume_every_ms = 100\n";
  node_process inventory("[services.inventory]\n" + tuning, "name = \"inventory-node\"\n", data);
  node_process payments("[services.payments]\n" + tuning, "name = \"payments-node\"\n", data);
  node_process front("[http]\nlisten = \"127.0.0.1:0\"\n[services.orders]\n" + tuning + "[services.cart]\n" + tuning +
                         "[services.catalog]\n[services.notifications]\n[remote.inventory]\nendpoint = \"" +
                         inventory.endpoint + "\"\n[remote.payments]\nendpoint = \"" + payments.endpoint + "\"\n",
                     "name = \"front-node\"\n", data);
  client c(front.endpoint);
  REQUIRE(shop::seed_shop(c));
  call_options cart;
  cart.key = "cart-trace";
  REQUIRE(c.call("cart", "add", *json_to_msgpack(R"({"sku":"mug-001","qty":2})"), cart).ok());

  auto [head, body] = post(http_endpoint(front) + "/v1/orders/checkout",
                           R"({"customer":"ada","cart_id":"cart-trace","card":"4242"})", "order-trace-1");
  INFO(head << "\n" << body);
  REQUIRE(head.find(" 200 ") != std::string::npos);
  CHECK(json::parse(body)["status"] == "completed");
  CHECK(head.find("traceparent: 00-" + trace_id + "-") != std::string::npos);  // returned to the HTTP caller

  // cohortctl gathers the spans from the three nodes.
  json spans;
  std::set<std::string> names;
  for (int i = 0; i < 50; ++i) {  // spans are recorded as replies arrive: at most 5 s
    auto [code, out] = run({COHORTCTL_BINARY, "--keys", data + "/keys", "--endpoint", front.admin, "--endpoint",
                            inventory.admin, "--endpoint", payments.admin, "--json", "trace", trace_id});
    REQUIRE(code == 0);
    spans = json::parse(out)["spans"];
    names.clear();
    for (const auto& s : spans) names.insert(s["name"].get<std::string>() + "/" + s["kind"].get<std::string>());
    if (names.count("payments.capture/server") && names.count("publish order_placed/producer")) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(spans.dump(1));
  for (const char* expected :
       {"POST /v1/orders/checkout/server", "orders.checkout/server", "cart.view/client", "cart.view/server",
        "orders.record/client", "orders.record/server", "inventory.reserve/client", "inventory.reserve/server", "payments.authorize/client",
        "payments.authorize/server", "payments.capture/client", "payments.capture/server", "store.commit/internal"})
    CHECK(names.count(expected));
  // One tree: every span's parent is in the trace, except the gateway's, whose parent is the caller's span.
  std::set<std::string> ids;
  for (const auto& s : spans) {
    CHECK(s["trace_id"] == trace_id);
    ids.insert(s["span_id"].get<std::string>());
  }
  for (const auto& s : spans) {
    if (s["name"] == "POST /v1/orders/checkout")
      CHECK(s["parent_span_id"] == caller_span);
    else
      CHECK(ids.count(s["parent_span_id"].get<std::string>()));
  }
  // Each step's server span is recorded by the node that ran it.
  const auto* reserve = span_named(spans, "inventory.reserve", "server");
  const auto* authorize = span_named(spans, "payments.authorize", "server");
  REQUIRE(reserve);
  REQUIRE(authorize);
  CHECK((*reserve)["attributes"]["cohort.node"] == "inventory-node");
  CHECK((*authorize)["attributes"]["cohort.node"] == "payments-node");

  // The waterfall: indented by parent, each step with its duration and status.
  auto [code, text] = run({COHORTCTL_BINARY, "--keys", data + "/keys", "--endpoint", front.admin, "--endpoint",
                           inventory.admin, "--endpoint", payments.admin, "trace", trace_id});
  INFO(text);
  CHECK(code == 0);
  CHECK(text.find("trace " + trace_id + ": ") == 0);
  CHECK(text.find("from 3 node(s)") != std::string::npos);
  CHECK(text.find("POST /v1/orders/checkout  (server, gateway @ front-node)") != std::string::npos);
  CHECK(text.find("└─ orders.checkout  (server, orders @ front-node)") != std::string::npos);
  CHECK(text.find("payments.authorize  (server, payments @ payments-node)") != std::string::npos);
}

TEST_CASE("in process isolation the trace reaches the service process; logs are JSON and cohortctl finds them",
          "[integration][observability][trace][log]") {
  node_process n("[http]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\naccess = true\n[services.greeter]\n",
                 "name = \"iso\"\nisolation = \"process\"\n");
  auto [head, body] = post(http_endpoint(n) + "/v1/greeter/hello", R"({"name":"\"quoted\"\n"})", "");
  INFO(head << "\n" << body);
  REQUIRE(head.find(" 200 ") != std::string::npos);

  json spans;
  for (int i = 0; i < 50; ++i) {
    auto [code, out] = run({COHORTCTL_BINARY, "--keys", n.keys, "--endpoint", n.admin, "--json", "trace", trace_id});
    REQUIRE(code == 0);
    spans = json::parse(out)["spans"];
    if (spans.size() >= 3) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(spans.dump(1));
  const auto* gateway = span_named(spans, "POST /v1/greeter/hello", "server");
  const auto* forward = span_named(spans, "greeter.hello", "client");
  const auto* served = span_named(spans, "greeter.hello", "server");
  REQUIRE(gateway);
  REQUIRE(forward);
  REQUIRE(served);
  CHECK((*forward)["parent_span_id"] == (*gateway)["span_id"]);
  CHECK((*served)["parent_span_id"] == (*forward)["span_id"]);
  CHECK((*served)["attributes"]["cohort.node"] == "iso/greeter");  // recorded in the service process

  // The access log line of that request, gathered by trace id.
  auto [code, out] = run({COHORTCTL_BINARY, "--keys", n.keys, "--endpoint", n.admin, "--json", "logs", "--trace",
                          trace_id, "--component", "access"});
  REQUIRE(code == 0);
  INFO(out);
  auto line = json::parse(out.substr(0, out.find('\n')));
  CHECK(line["component"] == "access");
  CHECK(line["trace_id"] == trace_id);
  CHECK(line["status"] == "200");
  CHECK(line["path"] == "/v1/greeter/hello");
  CHECK(line["caller"] == "anonymous");
  // Text output of the same, and an unknown trace finds nothing.
  auto [code2, text] = run({COHORTCTL_BINARY, "--keys", n.keys, "--endpoint", n.admin, "logs", "--trace", trace_id});
  CHECK(code2 == 0);
  CHECK(text.find("access") != std::string::npos);
  auto [code3, none] = run({COHORTCTL_BINARY, "--keys", n.keys, "--endpoint", n.admin, "logs", "--trace",
                            "11111111111111111111111111111111"});
  CHECK(code3 == 0);
  CHECK(none.empty());

  // Everything the node wrote to stderr is JSON lines.
  n.proc->signal(SIGTERM);
  REQUIRE(n.proc->wait(15s));
  std::istringstream err(n.proc->err());
  std::string l;
  int lines = 0;
  while (std::getline(err, l)) {
    INFO(l);
    auto j = json::parse(l, nullptr, false);
    CHECK_FALSE(j.is_discarded());
    CHECK(j.contains("time"));
    lines++;
  }
  CHECK(lines > 0);
}
