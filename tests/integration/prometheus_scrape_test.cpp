// Debian's Prometheus scrapes a node on loopback ([metrics] listen, the
// endpoint for nodes without an HTTP front), and the series arrive: checked
// through Prometheus's own HTTP API.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "node_process.hpp"

using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

/// A loopback port nobody listens on right now.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE("Prometheus scrapes a node's [metrics] endpoint and its series arrive", "[integration][observability]") {
  const int metrics_port = free_port(), prom_port = free_port();
  node_process n("[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n[services.greeter]\n[services.counter]\n");
  // Some traffic, so that request series exist.
  for (int i = 0; i < 3; ++i) REQUIRE(run({COHORT_BINARY, "call", "greeter.hello", R"({"name":"p"})", "--endpoint", n.endpoint}).first == 0);

  temp_dir dir;
  std::ofstream(dir / "prometheus.yml") << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cohort\n"
                                        << "    static_configs:\n      - targets: ['127.0.0.1:" << metrics_port << "']\n";
  child_process prom({"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml"), "--storage.tsdb.path=" + (dir / "data"),
                      "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"});
  auto query = [&](const std::string& q) {
    auto [code, out] = run({"/usr/bin/curl", "-s", "--max-time", "2", "http://127.0.0.1:" + std::to_string(prom_port) +
                                                                         "/api/v1/query?query=" + q});
    return code == 0 ? nlohmann::json::parse(out, nullptr, false) : nlohmann::json();
  };
  nlohmann::json up, requests;
  for (int i = 0; i < 60; ++i) {  // at most 30 s: Prometheus starts, then scrapes every second
    up = query("cohort_service_up");
    requests = query("cohort_requests_total");
    if (up.is_object() && up["data"]["result"].size() == 2 && requests.is_object() && !requests["data"]["result"].empty()) break;
    std::this_thread::sleep_for(500ms);
  }
  REQUIRE(up.is_object());
  REQUIRE(up["data"]["result"].size() == 2);
  for (const auto& series : up["data"]["result"]) {
    CHECK(series["metric"]["job"] == "cohort");
    CHECK(series["value"][1] == "1");
  }
  REQUIRE(!requests["data"]["result"].empty());
  bool hello = false;
  for (const auto& series : requests["data"]["result"])
    hello = hello || (series["metric"]["service"] == "greeter" && series["metric"]["method"] == "hello" &&
                      series["metric"]["code"] == "ok" && series["value"][1] == "3");
  CHECK(hello);
  auto targets = run({"/usr/bin/curl", "-s", "http://127.0.0.1:" + std::to_string(prom_port) + "/api/v1/targets"});
  CHECK_THAT(targets.second, Catch::Contains("\"health\":\"up\""));
}
