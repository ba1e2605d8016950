// rpc_bench: request/reply over tcp loopback, Cohort (client -> node -> echo
// service -> reply) beside a raw ZeroMQ DEALER/ROUTER echo measured in the same
// run, at 1 request in flight (latency) and 64 in flight (throughput).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <cstring>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/security/keys.hpp"
#include "cohort/transport/client.hpp"
#include "stats.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;

namespace {

/// One run's figures.
struct run_result {
  double throughput = 0;  ///< replies per second
  double p50_us = 0, p99_us = 0, p999_us = 0;
};

/// A raw ZeroMQ ROUTER echo server on its own thread: the baseline.
class raw_echo_server {
 public:
  raw_echo_server() : router_(ctx_, zmq::socket_type::router) {
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::sndhwm, 100000);
    router_.set(zmq::sockopt::rcvhwm, 100000);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { serve(); });
  }
  ~raw_echo_server() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void serve() {
    std::vector<zmq::message_t> frames;
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop_) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) <= 0) continue;
      for (;;) {
        frames.clear();
        if (!zmq::recv_multipart(router_, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
        zmq::send_multipart(router_, frames, zmq::send_flags::dontwait);
      }
    }
  }
  zmq::context_t ctx_{1};
  zmq::socket_t router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

run_result measure_raw(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration,
                       std::size_t payload_bytes) {
  zmq::context_t ctx{1};
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  std::string payload(payload_bytes, 'x');
  std::vector<clock_type::time_point> sent_at;
  std::vector<double> latencies;
  std::uint64_t done = 0;
  auto send_one = [&](std::uint32_t slot) {
    std::string msg(reinterpret_cast<const char*>(&slot), sizeof slot);
    msg += payload;
    sent_at[slot] = clock_type::now();
    s.send(zmq::buffer(msg), zmq::send_flags::none);
  };
  sent_at.resize(in_flight);
  // Warm-up connection.
  send_one(0);
  zmq::message_t m;
  (void)s.recv(m);
  auto start = clock_type::now();
  auto until = start + duration;
  for (int i = 0; i < in_flight; ++i) send_one(static_cast<std::uint32_t>(i));
  while (true) {
    if (!s.recv(m)) break;
    auto now = clock_type::now();
    std::uint32_t slot;
    std::memcpy(&slot, m.data(), sizeof slot);
    latencies.push_back(std::chrono::duration<double, std::micro>(now - sent_at[slot]).count());
    ++done;
    if (now < until) send_one(slot);
    else if (--in_flight == 0) break;
  }
  double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  return {done / secs, percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 99.9)};
}

run_result measure_cohort(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration,
                          std::size_t payload_bytes, const std::optional<curve_client_keys>& curve = std::nullopt) {
  client c(endpoint, {}, {}, curve);
  auto payload = pack(echo_args{std::string(payload_bytes, 'x')});
  std::vector<double> latencies;
  std::uint64_t done = 0;
  auto warm = c.call("greeter", "echo", payload);
  if (!warm.ok()) throw std::runtime_error("warm-up call failed: " + warm.error->message);
  auto start = clock_type::now();
  auto until = start + duration;
  std::function<void()> send_one = [&] {
    auto sent = clock_type::now();
    c.call_async("greeter", "echo", payload, {}, [&, sent](reply&& r) {
      auto now = clock_type::now();
      if (!r.ok()) throw std::runtime_error("call failed: " + r.error->code + ": " + r.error->message);
      latencies.push_back(std::chrono::duration<double, std::micro>(now - sent).count());
      ++done;
      if (now < until) send_one();
    });
  };
  for (int i = 0; i < in_flight; ++i) send_one();
  while (c.in_flight() > 0) c.poll(std::chrono::milliseconds(100));
  double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  return {done / secs, percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 99.9)};
}

struct row {
  std::string scenario, metric;
  spread cohort, baseline;
  double ratio;
  std::string target;
  bool pass;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort request/reply benchmark (tcp loopback) against raw ZeroMQ"};
  bool quick = false;
  int repeats = 5;
  int seconds_ms = 2000;
  std::string json_out;
  std::size_t scheduler_threads = 0;
  app.add_option("--scheduler-threads", scheduler_threads, "CAF scheduler threads of the node (0: one per core)");
  app.add_flag("--quick", quick, "3 repeats of 0.5 s");
  app.add_option("--repeats", repeats, "repeats per measurement")->check(CLI::Range(1, 50));
  app.add_option("--duration-ms", seconds_ms, "length of one measurement")->check(CLI::Range(100, 60000));
  app.add_option("--json", json_out, "write results to this JSON file");
  CLI11_PARSE(app, argc, argv);
  if (quick) repeats = 3, seconds_ms = 500;
  const auto duration = std::chrono::milliseconds(seconds_ms);
  std::vector<std::size_t> payloads{64, 4096};

  auto data_dir = std::filesystem::temp_directory_path() / ("cohort-bench-" + std::to_string(::getpid()));
  auto cfg = example_node_config();
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://127.0.0.1:*";
  cfg.http.listen.clear();
  cfg.data_dir = data_dir.string();
  cfg.scheduler_threads = scheduler_threads;
  auto n = node::start(cfg, example_services());
  if (!n) {
    std::cerr << "cannot start node: " << n.error().message << "\n";
    return 2;
  }
  raw_echo_server raw;
  std::cout << "rpc bench: 64-byte and 4 KiB payloads over tcp loopback, " << repeats << " x " << seconds_ms
            << " ms per figure, alternating Cohort and raw ZeroMQ\n";

  std::vector<row> rows;
  for (auto payload : payloads)
    for (int in_flight : {1, 64}) {
      std::vector<double> c_thr, r_thr, c_p50, r_p50, c_p99, r_p99, c_p999, r_p999;
      for (int i = 0; i < repeats; ++i) {
        auto rr = measure_raw(raw.endpoint(), in_flight, duration, payload);
        auto cr = measure_cohort((*n)->endpoints().front(), in_flight, duration, payload);
        r_thr.push_back(rr.throughput), c_thr.push_back(cr.throughput);
        r_p50.push_back(rr.p50_us), c_p50.push_back(cr.p50_us);
        r_p99.push_back(rr.p99_us), c_p99.push_back(cr.p99_us);
        r_p999.push_back(rr.p999_us), c_p999.push_back(cr.p999_us);
      }
      auto ct = spread_of(c_thr), rt = spread_of(r_thr);
      auto c50 = spread_of(c_p50), r50 = spread_of(r_p50);
      auto c99 = spread_of(c_p99), r99 = spread_of(r_p99);
      auto c999 = spread_of(c_p999), r999 = spread_of(r_p999);
      // The targets are set for 64-byte payloads.
      const bool targeted = payload == 64;
      std::string sc = std::to_string(payload) + "B, " + std::to_string(in_flight) + " in flight";
      double thr_ratio = ct.median / rt.median, lat_ratio = c50.median / r50.median;
      rows.push_back({sc, "throughput (req/s)", ct, rt, thr_ratio, targeted && in_flight == 64 ? ">= 0.50 of raw" : "-",
                      thr_ratio >= 0.5});
      rows.push_back({sc, "p50 latency (us)", c50, r50, lat_ratio, targeted && in_flight == 1 ? "<= 1.5x raw" : "-",
                      lat_ratio <= 1.5});
      rows.push_back({sc, "p99 latency (us)", c99, r99, c99.median / r99.median, "-", true});
      rows.push_back({sc, "p99.9 latency (us)", c999, r999, c999.median / r999.median, "-", true});
    }

  // The price of security: the same calls over CURVE (encrypted, both ends
  // authenticated) against plain tcp, both to Cohort nodes, same run.
  auto secure_dir = data_dir.string() + "-curve";
  auto bench_key = security::generate_key_pair();
  auto secure_cfg = cfg;
  secure_cfg.data_dir = secure_dir;
  secure_cfg.security.keyless_loopback = false;
  security::trusted_peer me;
  me.name = "bench";
  me.kind = security::role::client;
  me.public_key = bench_key.public_key;
  me.services = {"*"};
  secure_cfg.security.peers = {me};
  auto secure = node::start(secure_cfg, example_services());
  if (!secure) {
    std::cerr << "cannot start the CURVE node: " << secure.error().message << "\n";
    return 2;
  }
  auto server_key = security::read_public_key(secure_dir + "/keys/node.key.pub");
  const curve_client_keys keys{*server_key, bench_key.public_key, bench_key.secret_key};
  for (auto payload : payloads) {
    const int in_flight = 64;
    std::vector<double> c_thr, p_thr;
    for (int i = 0; i < repeats; ++i) {
      p_thr.push_back(measure_cohort((*n)->endpoints().front(), in_flight, duration, payload).throughput);
      c_thr.push_back(measure_cohort((*secure)->endpoints().front(), in_flight, duration, payload, keys).throughput);
    }
    auto ct = spread_of(c_thr), pt = spread_of(p_thr);
    double ratio = ct.median / pt.median;
    rows.push_back({"CURVE " + std::to_string(payload) + "B, 64 in flight", "req/s vs plain tcp", ct, pt, ratio,
                    payload == 64 ? ">= 0.70 of plain" : "-", ratio >= 0.7});
  }
  (*secure)->stop();

  // The price of request metrics: the same calls to a node that counts and
  // times every request (the default) and to one that does not, same run.
  auto quiet_cfg = cfg;
  quiet_cfg.data_dir = data_dir.string() + "-quiet";
  quiet_cfg.request_metrics = false;
  auto quiet = node::start(quiet_cfg, example_services());
  if (!quiet) {
    std::cerr << "cannot start the node without metrics: " << quiet.error().message << "\n";
    return 2;
  }
  {
    std::vector<double> on, off;
    for (int i = 0; i < repeats; ++i) {
      off.push_back(measure_cohort((*quiet)->endpoints().front(), 64, duration, 64).throughput);
      on.push_back(measure_cohort((*n)->endpoints().front(), 64, duration, 64).throughput);
    }
    auto ons = spread_of(on), offs = spread_of(off);
    double ratio = ons.median / offs.median;
    rows.push_back({"metrics 64B, 64 in flight", "req/s vs metrics off", ons, offs, ratio, ">= 0.95 of off", ratio >= 0.95});
  }
  (*quiet)->stop();

  // The price of tracing: a node that records spans at sampling 0 (errors
  // only), 0.01 and 1 against one with tracing off, same run. Requests come
  // without a traceparent, so each starts a trace at the node.
  {
    auto untraced_cfg = cfg;
    untraced_cfg.data_dir = data_dir.string() + "-untraced";
    untraced_cfg.trace.enabled = false;
    auto untraced = node::start(untraced_cfg, example_services());
    if (!untraced) {
      std::cerr << "cannot start the node without tracing: " << untraced.error().message << "\n";
      return 2;
    }
    for (double sample : {0.0, 0.01, 1.0}) {
      auto traced_cfg = cfg;
      traced_cfg.data_dir = data_dir.string() + "-traced";
      traced_cfg.trace.sample = sample;
      auto traced = node::start(traced_cfg, example_services());
      if (!traced) {
        std::cerr << "cannot start the traced node: " << traced.error().message << "\n";
        return 2;
      }
      std::vector<double> on, off;
      for (int i = 0; i < repeats; ++i) {
        off.push_back(measure_cohort((*untraced)->endpoints().front(), 64, duration, 64).throughput);
        on.push_back(measure_cohort((*traced)->endpoints().front(), 64, duration, 64).throughput);
      }
      auto ons = spread_of(on), offs = spread_of(off);
      double ratio = ons.median / offs.median;
      char label[64];
      std::snprintf(label, sizeof label, "tracing %g, 64 in flight", sample);
      const bool cheap = sample < 1;
      rows.push_back({label, "req/s vs tracing off", ons, offs, ratio, cheap ? ">= 0.95 of off" : ">= 0.85 of off",
                      ratio >= (cheap ? 0.95 : 0.85)});
      (*traced)->stop();
    }
    (*untraced)->stop();
  }

  std::printf("\n%-24s %-20s %-26s %-26s %7s  %-15s %s\n", "scenario", "metric", "cohort median [min..max]",
              "raw zmq median [min..max]", "ratio", "target", "result");
  for (const auto& r : rows) {
    auto cell = [](const spread& s) {
      return human(s.median) + " [" + human(s.min) + ".." + human(s.max) + "]";
    };
    std::printf("%-24s %-20s %-26s %-26s %7.2f  %-15s %s\n", r.scenario.c_str(), r.metric.c_str(),
                cell(r.cohort).c_str(), cell(r.baseline).c_str(), r.ratio, r.target.c_str(),
                r.target == "-" ? "" : (r.pass ? "pass" : "short"));
  }
  if (!json_out.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows)
      j.push_back({{"scenario", r.scenario}, {"metric", r.metric},
                   {"cohort", {{"median", r.cohort.median}, {"min", r.cohort.min}, {"max", r.cohort.max}}},
                   {"baseline", {{"median", r.baseline.median}, {"min", r.baseline.min}, {"max", r.baseline.max}}},
                   {"ratio", r.ratio}, {"target", r.target}, {"pass", r.pass}});
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  (*n)->stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  std::filesystem::remove_all(secure_dir, ec);
  std::filesystem::remove_all(data_dir.string() + "-quiet", ec);
  return 0;
}
