// gateway_bench: a backend node serving echo.echo (bench/src/echo_service.hpp), and a gateway node in
// front of it (native ZeroMQ front and HTTP/JSON front). Measures, in the same
// run: the native call through the gateway vs straight to the backend (the
// cost of the hop) beside the same for raw ZeroMQ (a raw echo called
// directly and through zmq_proxy: what any ZeroMQ hop costs here), and
// HTTP requests/s and latency with wrk at 1, 16 and 64 connections. All on
// loopback; every run bounded.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <thread>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cohort/examples/example_messages.hpp"
#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/transport/client.hpp"
#include "echo_service.hpp"
#include "raw_echo.hpp"
#include "raw_proxy.hpp"
#include "stats.hpp"
#include "targets.hpp"

using namespace cohort;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double native_throughput(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration) {
  client c(endpoint);
  auto payload = pack(examples::echo_args{std::string(64, 'x')});
  (void)c.call("echo", "echo", payload);
  std::uint64_t done = 0, failed = 0;
  auto until = clock_type::now() + duration;
  std::function<void()> send_one = [&] {
    c.call_async("echo", "echo", payload, {}, [&](reply&& r) {
      r.ok() ? ++done : ++failed;
      if (clock_type::now() < until) send_one();
    });
  };
  auto start = clock_type::now();
  for (int i = 0; i < in_flight; ++i) send_one();
  while (c.in_flight() > 0) c.poll(std::chrono::milliseconds(100));
  if (failed) std::cerr << "warning: " << failed << " calls failed\n";
  return done / std::chrono::duration<double>(clock_type::now() - start).count();
}

struct wrk_result {
  double rps = 0, p50_ms = 0, p99_ms = 0;
  bool clean = false;
};

double to_ms(const std::string& v, const std::string& unit) {
  double x = std::stod(v);
  return unit == "us" ? x / 1000 : unit == "s" ? x * 1000 : x;
}

wrk_result run_wrk(const std::string& url, int connections, int seconds, const fs::path& script) {
  auto out_file = fs::temp_directory_path() / ("cohort-wrk-" + std::to_string(::getpid()) + ".txt");
  auto cmd = "wrk -t1 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) + "s --latency -s " +
             script.string() + " " + url + " > " + out_file.string() + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(out_file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  fs::remove(out_file);
  wrk_result r;
  std::smatch m;
  if (std::regex_search(text, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) r.rps = std::stod(m[1]);
  if (std::regex_search(text, m, std::regex(R"(50%\s+([0-9.]+)(us|ms|s))"))) r.p50_ms = to_ms(m[1], m[2]);
  if (std::regex_search(text, m, std::regex(R"(99%\s+([0-9.]+)(us|ms|s))"))) r.p99_ms = to_ms(m[1], m[2]);
  r.clean = rc == 0 && text.find("Non-2xx") == std::string::npos && text.find("Socket errors") == std::string::npos;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort gateway benchmark: the gateway hop (native) and the HTTP/JSON front (wrk)"};
  bool quick = false;
  int repeats = 5, duration_ms = 2000;
  std::string json_out;
  app.add_flag("--quick", quick, "fewer and shorter runs");
  app.add_option("--json", json_out, "write results to this JSON file");
  CLI11_PARSE(app, argc, argv);
  if (quick) repeats = 3, duration_ms = 700;
  auto data = fs::temp_directory_path() / ("cohort-gwbench-" + std::to_string(::getpid()));

  auto backend_cfg = example_node_config();
  backend_cfg.listen = {"tcp://127.0.0.1:*"};
  backend_cfg.admin.clear();
  backend_cfg.http.listen.clear();
  backend_cfg.data_dir = (data / "backend").string();
  backend_cfg.services = {echo_service_config()};
  auto catalog = example_services();
  catalog.push_back(echo_service());
  auto backend = node::start(backend_cfg, catalog);
  if (!backend) return std::cerr << backend.error().message << "\n", 2;

  node_config gw_cfg;
  gw_cfg.name = "gateway";
  gw_cfg.listen = {"tcp://127.0.0.1:*"};
  gw_cfg.admin.clear();
  gw_cfg.http.listen = "127.0.0.1:0";
  gw_cfg.data_dir = (data / "gateway").string();
  remote_service_config echo;
  echo.name = "echo";
  echo.endpoints = {(*backend)->endpoints().front()};
  gw_cfg.remotes.push_back(echo);
  auto gateway = node::start(gw_cfg, catalog);
  if (!gateway) return std::cerr << gateway.error().message << "\n", 2;

  const auto direct = (*backend)->endpoints().front(), via = (*gateway)->endpoints().front();
  // The same hop without Cohort: a raw echo, and ZeroMQ's proxy in front of it.
  raw_echo_server raw_echo;
  raw_proxy proxy(raw_echo.endpoint());
  const auto span = std::chrono::milliseconds(duration_ms);
  std::vector<double> d, g, rd, rp;
  for (int i = 0; i < repeats; ++i) {
    // The four in a rotating order, so that none always runs first.
    for (int k = 0; k < 4; ++k) switch ((i + k) % 4) {
        case 0: d.push_back(native_throughput(direct, 64, span)); break;
        case 1: g.push_back(native_throughput(via, 64, span)); break;
        case 2: rd.push_back(measure_raw(raw_echo.endpoint(), 64, span, 64).throughput); break;
        default: rp.push_back(measure_raw(proxy.endpoint(), 64, span, 64).throughput); break;
      }
  }
  auto ds = spread_of(d), gs = spread_of(g), rds = spread_of(rd), rps = spread_of(rp);
  double ratio = gs.median / ds.median, raw_ratio = rps.median / rds.median;
  auto cell = [](const spread& s) { return human(s.median) + " [" + human(s.min) + ".." + human(s.max) + "]"; };
  std::printf("gateway bench: backend node + gateway node in one process, loopback\n\n");
  std::printf("%-44s %-24s %-24s %6s  %-12s %s\n", "scenario", "via gateway", "direct to node", "ratio", "target", "result");
  std::printf("%-44s %-24s %-24s %6.2f  %-12s %s\n", "native req/s, 64 in flight, 64 B", cell(gs).c_str(),
              cell(ds).c_str(), ratio, ">= 0.70", ratio >= 0.7 ? "pass" : "short");
  std::printf("%-44s %-24s %-24s %6.2f  (Cohort's hop is %.2fx of it)\n", "raw ZeroMQ: via zmq_proxy / direct",
              cell(rps).c_str(), cell(rds).c_str(), raw_ratio, ratio / raw_ratio);

  nlohmann::json results = {{"native",
                             {{"gateway", gs.median},
                              {"direct", ds.median},
                              {"ratio", ratio},
                              {"raw_proxy", rps.median},
                              {"raw_direct", rds.median},
                              {"raw_ratio", raw_ratio},
                              {"ratio_of_raw_hop", ratio / raw_ratio},
                              {"spreads",
                               {{"gateway", to_json(gs)}, {"direct", to_json(ds)},
                                {"raw_proxy", to_json(rps)}, {"raw_direct", to_json(rds)}}}}}};
  target_list targets;
  targets.ratio_at_least("native gateway hop, 64 B, 64 in flight", "req/s", gs, ds, "direct to node", 0.7);
  auto script = data / "post.lua";
  fs::create_directories(data);
  std::ofstream(script) << "wrk.method = \"POST\"\nwrk.body = '{\"data\":\"" << std::string(64, 'x')
                        << "\"}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n";
  auto url = (*gateway)->http_endpoint() + "/v1/echo/echo";
  for (int c : {1, 16, 64}) {
    auto r = run_wrk(url, c, quick ? 1 : 3, script);
    std::printf("%-44s %-24s p50 %.2f ms, p99 %.2f ms %s\n", ("HTTP/JSON via gateway, wrk " + std::to_string(c) + " conn").c_str(),
                (human(r.rps) + " req/s").c_str(), r.p50_ms, r.p99_ms, r.clean ? "" : "(errors!)");
    results["http"][std::to_string(c)] = {{"rps", r.rps}, {"p50_ms", r.p50_ms}, {"p99_ms", r.p99_ms}, {"clean", r.clean}};
  }
  // The price of TLS: the same HTTP calls over HTTPS (a self-signed
  // certificate from the openssl CLI; kept-alive connections, so this is the
  // record encryption, not handshakes), alternating with plain HTTP.
  {
    auto cert = data / "cert.pem", key = data / "key.pem";
    auto made = std::system(("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key.string() + " -out " +
                             cert.string() + " -days 1 -subj /CN=127.0.0.1 >/dev/null 2>&1").c_str());
    auto tls_cfg = gw_cfg;
    tls_cfg.listen = {"tcp://127.0.0.1:*"};
    tls_cfg.data_dir = (data / "gateway-tls").string();
    tls_cfg.http.tls_cert_file = cert.string();
    tls_cfg.http.tls_key_file = key.string();
    auto tls_gw = made == 0 ? node::start(tls_cfg, catalog) : result<std::unique_ptr<node>>(error_info{errc::unavailable, "openssl failed"});
    if (!tls_gw) return std::cerr << "TLS gateway: " << tls_gw.error().message << "\n", 2;
    auto tls_url = (*tls_gw)->http_endpoint() + "/v1/echo/echo";
    for (int c : {16, 64}) {
      std::vector<double> plain, secure;
      for (int i = 0; i < (quick ? 1 : 3); ++i) {
        plain.push_back(run_wrk(url, c, quick ? 1 : 2, script).rps);
        secure.push_back(run_wrk(tls_url, c, quick ? 1 : 2, script).rps);
      }
      auto ps = spread_of(plain), ss = spread_of(secure);
      std::printf("%-44s %-24s %-24s %6.2f  %-12s\n", ("HTTPS vs HTTP via gateway, wrk " + std::to_string(c) + " conn").c_str(),
                  cell(ss).c_str(), cell(ps).c_str(), ss.median / ps.median, "-");
      results["https"][std::to_string(c)] = {{"https_rps", ss.median}, {"http_rps", ps.median}, {"ratio", ss.median / ps.median}};
    }
    (*tls_gw)->stop();
  }
  (*gateway)->stop();

  // Scaling: 1, 2 and 4 instances of echo behind a gateway (each its own
  // node), and 1, 4 and 16 client connections (16 in flight each).
  std::vector<std::unique_ptr<node>> extra;
  for (int i = 0; i < 3; ++i) {
    auto c = backend_cfg;
    c.data_dir = (data / ("backend" + std::to_string(i + 2))).string();
    auto b = node::start(c, catalog);
    if (!b) return std::cerr << b.error().message << "\n", 2;
    extra.push_back(std::move(*b));
  }
  std::vector<std::string> all{(*backend)->endpoints().front()};
  for (auto& b : extra) all.push_back(b->endpoints().front());
  for (std::size_t instances : {1u, 2u, 4u}) {
    auto cfg = gw_cfg;
    cfg.http.listen.clear();
    cfg.remotes[0].endpoints.assign(all.begin(), all.begin() + static_cast<long>(instances));
    cfg.remotes[0].balance = balance_policy::least_outstanding;
    auto gw = node::start(cfg, catalog);
    if (!gw) return std::cerr << gw.error().message << "\n", 2;
    std::vector<double> runs;
    for (int i = 0; i < repeats; ++i) runs.push_back(native_throughput((*gw)->endpoints().front(), 64, std::chrono::milliseconds(duration_ms)));
    auto sp = spread_of(runs);
    std::printf("%-44s %-24s\n", ("scaling: " + std::to_string(instances) + " instance(s), 64 in flight").c_str(),
                (cell(sp) + " req/s").c_str());
    results["scaling_instances"][std::to_string(instances)] = sp.median;
    if (instances == 4) {
      for (int clients : {1, 4, 16}) {
        std::vector<double> totals;
        for (int i = 0; i < repeats; ++i) {
          std::vector<std::thread> threads;
          std::vector<double> each(static_cast<std::size_t>(clients));
          for (int k = 0; k < clients; ++k)
            threads.emplace_back([&, k] { each[static_cast<std::size_t>(k)] = native_throughput((*gw)->endpoints().front(), 16, std::chrono::milliseconds(duration_ms)); });
          for (auto& t : threads) t.join();
          double total = 0;
          for (double x : each) total += x;
          totals.push_back(total);
        }
        auto tp = spread_of(totals);
        std::printf("%-44s %-24s\n", ("scaling: 4 instances, " + std::to_string(clients) + " client connection(s)").c_str(),
                    (cell(tp) + " req/s").c_str());
        results["scaling_clients"][std::to_string(clients)] = tp.median;
      }
    }
    (*gw)->stop();
  }
  for (auto& b : extra) b->stop();
  targets.print();
  results["targets"] = targets.to_json();
  if (!json_out.empty()) std::ofstream(json_out) << results.dump(2) << "\n";
  (*backend)->stop();
  std::error_code ec;
  fs::remove_all(data, ec);
  return 0;
}
