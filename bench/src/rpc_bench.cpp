// rpc_bench: request/reply over tcp loopback, Cohort (client -> node -> echo
// service -> reply; bench/src/echo_service.hpp) beside four others measured in
// the same run, interleaved repeat by repeat: a raw ZeroMQ DEALER/ROUTER echo
// (the floor), the same echo with one batched hand-off to a second thread and
// back (the floor of any runtime that keeps handlers off the socket's thread;
// bench/src/raw_hop_echo.hpp), Cohort's node called by a minimal client (the
// node's cost without cohort::client's), and a gRPC C++ unary echo (what users
// would write instead). Curves against the in-flight window (64 B) and the
// payload size (16 in flight), then the price of CURVE, request metrics and
// tracing. Targets: bench/README.md.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <array>
#include <map>
#include <thread>
#include <cstring>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/security/keys.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/envelope_codec.hpp"
#include "echo_service.hpp"
#include "grpc_echo.hpp"
#include "raw_hop_echo.hpp"
#include "raw_echo.hpp"
#include "run_result.hpp"
#include "stats.hpp"
#include "targets.hpp"
#include "cohort/examples/example_messages.hpp"

using namespace cohort;
using namespace cohort::examples;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;

namespace {

/// One repeat of a paired measurement (a price row): both sides, the order
/// alternating from repeat to repeat, so that neither always runs first.
template <class First, class Second>
void in_alternating_order(int repeat, First&& first, Second&& second) {
  if (repeat % 2) {
    second();
    first();
  } else {
    first();
    second();
  }
}

/// Large enough for the 1 MiB point of the payload curve (the envelope adds a few bytes).
wire_limits bench_limits() {
  wire_limits l;
  l.max_payload_bytes = l.max_string = 2u << 20;
  l.hard_frame_bytes = 8 << 20;
  return l;
}

run_result measure_cohort(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration,
                          std::size_t payload_bytes, const std::optional<curve_client_keys>& curve = std::nullopt,
                          const std::vector<std::string>& services = {"echo"}) {
  client c(endpoint, bench_limits(), {}, curve);
  auto payload = pack(echo_args{std::string(payload_bytes, 'x')});
  std::vector<double> latencies;
  std::uint64_t done = 0, next_service = 0;
  for (const auto& service : services) {
    auto warm = c.call(service, "echo", payload);
    if (!warm.ok()) throw std::runtime_error("warm-up call failed: " + warm.error->message);
  }
  auto start = clock_type::now();
  auto until = start + duration;
  std::function<void()> send_one = [&] {
    auto sent = clock_type::now();
    c.call_async(services[next_service++ % services.size()], "echo", payload, {}, [&, sent](reply&& r) {
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
  return {done / secs, percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 99.9), done};
}

/// Cohort's node called by a minimal client: a DEALER that sends a header
/// encoded once per slot (its id the slot) and reads the id back from each
/// reply's header, with none of cohort::client's bookkeeping (pending map,
/// deadlines, callbacks). Separates the node's cost from the client's.
run_result measure_node_minimal_client(const std::string& endpoint, int in_flight, std::chrono::milliseconds duration,
                                       std::size_t payload_bytes) {
  bench_dealer dealer(endpoint);
  auto& s = dealer.socket;
  const auto payload = pack(echo_args{std::string(payload_bytes, 'x')});
  std::vector<std::string> headers;
  for (int slot = 0; slot < in_flight; ++slot) {
    envelope env;
    env.id = static_cast<std::uint64_t>(slot);
    env.service = "echo";
    env.method = "echo";
    env.deadline_ms = 10000;
    headers.push_back(encode_envelope(env));
  }
  const auto limits = bench_limits();
  std::vector<zmq::message_t> reply;
  return closed_loop(
      in_flight, duration,
      [&](std::size_t slot) {
        std::array<zmq::const_buffer, 2> frames{zmq::buffer(headers[slot]), zmq::buffer(payload)};
        zmq::send_multipart(s, frames);
      },
      [&]() -> std::size_t {
        reply.clear();
        (void)zmq::recv_multipart(s, std::back_inserter(reply));
        std::uint64_t id = 0;
        auto env = decode_envelope(reply.at(0).to_string_view(), limits, &id);
        if (!env || env->kind != message_kind::reply) throw std::runtime_error("the node did not answer with a reply");
        return static_cast<std::size_t>(id);
      });
}

/// What the whole process (all threads) has used so far: CPU time in µs and
/// page faults (minor: fresh memory touched for the first time).
struct process_usage {
  double cpu_us = 0, faults = 0;
  static process_usage now() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto us = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
    return {us(u.ru_utime) + us(u.ru_stime), static_cast<double>(u.ru_minflt + u.ru_majflt)};
  }
};

/// Runs one measurement and adds what it cost the process per reply. The
/// systems not being measured sit idle meanwhile, so the process's usage is
/// the measured system's (client and server).
template <typename Measure>
run_result with_usage(Measure&& measure) {
  const auto before = process_usage::now();
  run_result r = measure();
  const auto after = process_usage::now();
  if (r.replies > 0) {
    r.cpu_us_per_reply = (after.cpu_us - before.cpu_us) / static_cast<double>(r.replies);
    r.faults_per_reply = (after.faults - before.faults) / static_cast<double>(r.replies);
  }
  return r;
}

/// One system's figures at one point, over the repeats.
struct figures {
  std::vector<double> thr, p50, p99, p999, cpu, faults;
  void add(const run_result& r) {
    thr.push_back(r.throughput), p50.push_back(r.p50_us), p99.push_back(r.p99_us), p999.push_back(r.p999_us);
    cpu.push_back(r.cpu_us_per_reply), faults.push_back(r.faults_per_reply);
  }
  [[nodiscard]] nlohmann::json to_json() const {
    auto s = [](const std::vector<double>& v) { return bench::to_json(spread_of(v)); };
    return {{"throughput", s(thr)}, {"p50_us", s(p50)},   {"p99_us", s(p99)},
            {"p999_us", s(p999)},   {"cpu_us_per_reply", s(cpu)}, {"page_faults_per_reply", s(faults)}};
  }
};

/// Cohort and its peers at one (payload, in-flight) point.
struct point {
  std::size_t payload = 0;
  int in_flight = 0;
  figures cohort, raw, hop, node, grpc;
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"payload", payload},
            {"in_flight", in_flight},
            {"cohort", cohort.to_json()},
            {"raw_zeromq", raw.to_json()},
            {"raw_zeromq_one_hop", hop.to_json()},
            {"cohort_node_minimal_client", node.to_json()},
            {"grpc", grpc.to_json()}};
  }
};

std::string bytes_label(std::size_t n) {
  if (n >= (1u << 20)) return std::to_string(n >> 20) + " MiB";
  if (n >= 1024) return std::to_string(n >> 10) + " KiB";
  return std::to_string(n) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort request/reply benchmark (tcp loopback) beside raw ZeroMQ and gRPC C++"};
  bool quick = false;
  int repeats = 5;
  int seconds_ms = 2000;
  std::string json_out;
  std::size_t scheduler_threads = 0;
  app.add_option("--scheduler-threads", scheduler_threads, "CAF scheduler threads of the node (0: one per core)");
  std::string scheduler_policy;
  app.add_option("--scheduler-policy", scheduler_policy, "the node's scheduler_policy (default: the node's default)")
      ->check(CLI::IsMember(scheduler_policies()));
  int io_spin_us = -1;
  app.add_option("--io-spin-us", io_spin_us, "the node's io_spin_us (default: the node's default)");
  app.add_flag("--quick", quick, "3 repeats of 0.5 s (a smoke run, not figures to quote)");
  app.add_option("--repeats", repeats, "repeats per measurement")->check(CLI::Range(1, 50));
  app.add_option("--duration-ms", seconds_ms, "length of one measurement")->check(CLI::Range(100, 60000));
  app.add_option("--json", json_out, "write results to this JSON file");
  std::vector<int> windows{1, 4, 16, 64, 256};
  // The payload sizes with a target (each >= 0.8x raw at 16 in flight); the curve's default points.
  const std::vector<std::size_t> targeted_sizes{64, 1024, 16 << 10, 256 << 10, 1 << 20};
  std::vector<std::size_t> sizes = targeted_sizes;
  std::vector<int> services_points{1, 8, 64, 256};
  app.add_option("--services", services_points, "points of the services-per-node curve")->check(CLI::Range(1, 1024));
  bool curves_only = false;
  app.add_option("--windows", windows, "points of the in-flight curve (64 B)")->check(CLI::Range(1, 4096));
  app.add_option("--payloads", sizes, "points of the payload curve (16 in flight)")->check(CLI::Range(1, 1 << 20));
  app.add_flag("--curves-only", curves_only, "only the curves (for profiling one scenario): no targets, no prices");
  std::string system;
  app.add_option("--system", system, "with --curves-only: measure one system alone (a profile without the others)")
      ->check(CLI::IsMember({"cohort", "raw", "hop", "node", "grpc"}))
      ->needs("--curves-only");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    if (app.count("--services") == 0) services_points = {1, 16};
    if (app.count("--repeats") == 0) repeats = 3;
    if (app.count("--duration-ms") == 0) seconds_ms = 500;
  }
  const auto duration = std::chrono::milliseconds(seconds_ms);

  auto data_dir = std::filesystem::temp_directory_path() / ("cohort-bench-" + std::to_string(::getpid()));
  auto cfg = example_node_config();
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin = "tcp://127.0.0.1:*";
  cfg.http.listen.clear();
  cfg.data_dir = data_dir.string();
  cfg.scheduler_threads = scheduler_threads;
  if (!scheduler_policy.empty()) cfg.scheduler_policy = scheduler_policy;
  if (io_spin_us >= 0) cfg.io_spin_us = io_spin_us;
  cfg.limits = bench_limits();
  cfg.services.push_back(echo_service_config());
  auto catalog = example_services();
  catalog.push_back(echo_service());
  auto n = node::start(cfg, catalog);
  if (!n) {
    std::cerr << "cannot start node: " << n.error().message << "\n";
    return 2;
  }
  raw_echo_server raw;
  raw_hop_echo_server hop;
  grpc_echo_server grpc;
  const auto cohort_endpoint = (*n)->endpoints().front();
  std::cout << "rpc bench: tcp loopback, " << repeats << " x " << seconds_ms
            << " ms per figure; Cohort, raw ZeroMQ, raw ZeroMQ with one hop, Cohort's node with a minimal client\n"
               "and gRPC C++ interleaved in each repeat; columns after req/s: cohort / raw / raw+hop / node+min.client / grpc\n";

  // Every (payload, in-flight) point measured once, the four systems in a
  // rotating order per repeat so that drift of the machine hits each alike.
  std::map<std::pair<std::size_t, int>, point> points;
  auto measure = [&](std::size_t payload, int in_flight) -> const point& {
    auto [it, fresh] = points.try_emplace({payload, in_flight});
    auto& p = it->second;
    if (!fresh) return p;
    p.payload = payload, p.in_flight = in_flight;
    constexpr std::array<const char*, 5> names{"raw", "cohort", "hop", "node", "grpc"};
    for (int i = 0; i < repeats; ++i)
      for (int k = 0; k < 5; ++k) {
        const int which = (i + k) % 5;
        if (!system.empty() && system != names[which]) continue;
        switch (which) {
          case 0: p.raw.add(with_usage([&] { return measure_raw(raw.endpoint(), in_flight, duration, payload); })); break;
          case 1:
            p.cohort.add(with_usage([&] { return measure_cohort(cohort_endpoint, in_flight, duration, payload); }));
            break;
          case 2: p.hop.add(with_usage([&] { return measure_raw(hop.endpoint(), in_flight, duration, payload); })); break;
          case 3:
            p.node.add(with_usage(
                [&] { return measure_node_minimal_client(cohort_endpoint, in_flight, duration, payload); }));
            break;
          default:
            p.grpc.add(with_usage([&] { return measure_grpc(grpc.address(), in_flight, duration, payload); }));
            break;
        }
      }
    // Every column after req/s: Cohort / raw ZeroMQ / raw ZeroMQ with one hop /
    // Cohort's node with a minimal client / gRPC C++.
    auto c = spread_of(p.cohort.thr), r = spread_of(p.raw.thr), h = spread_of(p.hop.thr), nd = spread_of(p.node.thr),
         g = spread_of(p.grpc.thr);
    auto five = [&p](std::vector<double> figures::*column, bool raw_numbers) {
      std::string out;
      for (const figures* f : {&p.cohort, &p.raw, &p.hop, &p.node, &p.grpc}) {
        const double m = spread_of(f->*column).median;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f", m);
        out += (out.empty() ? "" : " / ") + (raw_numbers ? std::string(buf) : human(m));
      }
      return out;
    };
    std::printf("%-8s %4d in flight  req/s cohort %-8s raw %-8s (%.2fx) raw+hop %-8s (%.2fx) node+min.client %-8s "
                "(%.2fx) grpc %-8s (%.2fx)  p50 us %s  p99 us %s  cpu us/reply %s  faults/reply %s\n",
                bytes_label(payload).c_str(), in_flight, human(c.median).c_str(), human(r.median).c_str(),
                c.median / r.median, human(h.median).c_str(), c.median / h.median, human(nd.median).c_str(),
                c.median / nd.median, human(g.median).c_str(), c.median / g.median,
                five(&figures::p50, false).c_str(), five(&figures::p99, false).c_str(),
                five(&figures::cpu, true).c_str(), five(&figures::faults, true).c_str());
    std::fflush(stdout);
    return p;
  };

  nlohmann::json window_curve = nlohmann::json::array(), payload_curve = nlohmann::json::array();
  std::cout << "\nin-flight window, 64 B:\n";
  for (int w : windows) window_curve.push_back(measure(64, w).to_json());
  std::cout << "\npayload size, 16 in flight:\n";
  for (auto size : sizes) payload_curve.push_back(measure(size, 16).to_json());
  // How cost grows with the services on a node: N echo services (one worker each), 64 B calls spread round-robin over them, 64 in flight.
  nlohmann::json services_curve = nlohmann::json::array();
  if (system.empty()) std::cout << "\nservices on the node, 64 B, 64 in flight spread over them:\n";
  for (int count : system.empty() ? services_points : std::vector<int>{}) {
    auto many_cfg = cfg;
    many_cfg.data_dir = data_dir.string() + "-services";
    auto defs = catalog;
    std::vector<std::string> names;
    for (int i = 0; i < count; ++i) {
      names.push_back("echo-" + std::to_string(i));
      defs.push_back(echo_service(names.back()));
      many_cfg.services.push_back(echo_service_config(names.back(), 1));
    }
    auto many = node::start(many_cfg, defs);
    if (!many) {
      std::cerr << "cannot start the node of " << count << " services: " << many.error().message << "\n";
      return 2;
    }
    figures f;
    for (int i = 0; i < repeats; ++i)
      f.add(measure_cohort((*many)->endpoints().front(), 64, duration, 64, std::nullopt, names));
    (*many)->stop();
    std::error_code ec;
    std::filesystem::remove_all(many_cfg.data_dir, ec);
    auto t = spread_of(f.thr);
    std::printf("%5d services: req/s %s [%s..%s], p99 %s us\n", count, human(t.median).c_str(), human(t.min).c_str(),
                human(t.max).c_str(), human(spread_of(f.p99).median).c_str());
    services_curve.push_back({{"services", count}, {"cohort", f.to_json()}});
  }

  if (curves_only) {
    (*n)->stop();
    std::error_code ec;
    std::filesystem::remove_all(data_dir, ec);
    return 0;
  }
  std::cout << "\n4 KiB, 64 in flight:\n";
  measure(4096, 64);
  for (int w : {1, 64}) measure(64, w);
  for (auto size : targeted_sizes) measure(size, 16);

  target_list targets;
  auto thr = [](const figures& f) { return spread_of(f.thr); };
  {
    const auto& p = points.at({64, 64});
    targets.ratio_at_least("64 B, 64 in flight", "throughput", thr(p.cohort), thr(p.raw), "raw ZeroMQ", 0.8);
    targets.ratio_at_most("64 B, 64 in flight", "p99 latency", spread_of(p.cohort.p99), spread_of(p.raw.p99),
                          "raw ZeroMQ", 2.0);
    const auto& one = points.at({64, 1});
    targets.ratio_at_least("64 B, 1 in flight", "throughput", thr(one.cohort), thr(one.raw), "raw ZeroMQ", 0.95);
    targets.ratio_at_most("64 B, 1 in flight", "p50 latency", spread_of(one.cohort.p50), spread_of(one.grpc.p50),
                          "gRPC C++", 1.0);
    const auto& big = points.at({4096, 64});
    targets.ratio_at_least("4 KiB, 64 in flight", "throughput", thr(big.cohort), thr(big.raw), "raw ZeroMQ", 0.9);
    for (auto size : targeted_sizes) {
      const auto& s = points.at({size, 16});
      targets.ratio_at_least(bytes_label(size) + ", 16 in flight", "throughput", thr(s.cohort), thr(s.raw),
                             "raw ZeroMQ", 0.8);
    }
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
  auto secure = node::start(secure_cfg, catalog);
  if (!secure) {
    std::cerr << "cannot start the CURVE node: " << secure.error().message << "\n";
    return 2;
  }
  auto server_key = security::read_public_key(secure_dir + "/keys/node.key.pub");
  const curve_client_keys keys{*server_key, bench_key.public_key, bench_key.secret_key};
  for (std::size_t payload : {std::size_t{64}, std::size_t{4096}}) {
    std::vector<double> c_thr, p_thr;
    for (int i = 0; i < repeats; ++i) {
      auto plain = [&] { p_thr.push_back(measure_cohort(cohort_endpoint, 64, duration, payload).throughput); };
      auto curve = [&] {
        c_thr.push_back(measure_cohort((*secure)->endpoints().front(), 64, duration, payload, keys).throughput);
      };
      in_alternating_order(i, plain, curve);
    }
    if (payload == 64)
      targets.paired_ratio_at_least("CURVE 64 B, 64 in flight", "throughput", c_thr, p_thr, "plain tcp", 0.7);
    else
      std::printf("CURVE 4 KiB, 64 in flight: %.2fx plain tcp (no target)\n",
                  spread_of(c_thr).median / spread_of(p_thr).median);
  }
  (*secure)->stop();

  // The price of request metrics: the same calls to a node that counts and
  // times every request (the default) and to one that does not, same run.
  auto quiet_cfg = cfg;
  quiet_cfg.data_dir = data_dir.string() + "-quiet";
  quiet_cfg.request_metrics = false;
  auto quiet = node::start(quiet_cfg, catalog);
  if (!quiet) {
    std::cerr << "cannot start the node without metrics: " << quiet.error().message << "\n";
    return 2;
  }
  {
    std::vector<double> on, off;
    for (int i = 0; i < repeats; ++i) {
      auto measure_off = [&] { off.push_back(measure_cohort((*quiet)->endpoints().front(), 64, duration, 64).throughput); };
      auto measure_on = [&] { on.push_back(measure_cohort(cohort_endpoint, 64, duration, 64).throughput); };
      in_alternating_order(i, measure_off, measure_on);
    }
    targets.paired_ratio_at_least("metrics on, 64 B, 64 in flight", "throughput", on, off, "metrics off", 0.95);
  }
  (*quiet)->stop();

  // The price of tracing: a node that records spans at sampling 0 (errors
  // only), 0.01 and 1 against one with tracing off, same run. Requests come
  // without a traceparent, so each starts a trace at the node.
  {
    auto untraced_cfg = cfg;
    untraced_cfg.data_dir = data_dir.string() + "-untraced";
    untraced_cfg.trace.enabled = false;
    auto untraced = node::start(untraced_cfg, catalog);
    if (!untraced) {
      std::cerr << "cannot start the node without tracing: " << untraced.error().message << "\n";
      return 2;
    }
    for (double sample : {0.0, 0.01, 1.0}) {
      auto traced_cfg = cfg;
      traced_cfg.data_dir = data_dir.string() + "-traced";
      traced_cfg.trace.sample = sample;
      auto traced = node::start(traced_cfg, catalog);
      if (!traced) {
        std::cerr << "cannot start the traced node: " << traced.error().message << "\n";
        return 2;
      }
      std::vector<double> on, off;
      for (int i = 0; i < repeats; ++i) {
        auto measure_off = [&] { off.push_back(measure_cohort((*untraced)->endpoints().front(), 64, duration, 64).throughput); };
        auto measure_on = [&] { on.push_back(measure_cohort((*traced)->endpoints().front(), 64, duration, 64).throughput); };
        in_alternating_order(i, measure_off, measure_on);
      }
      char label[64];
      std::snprintf(label, sizeof label, "tracing %g, 64 B, 64 in flight", sample);
      targets.paired_ratio_at_least(label, "throughput", on, off, "tracing off", sample < 1 ? 0.95 : 0.85);
      (*traced)->stop();
    }
    (*untraced)->stop();
  }

  targets.print();
  if (!json_out.empty()) {
    nlohmann::json j = {{"repeats", repeats}, {"duration_ms", seconds_ms}, {"window_curve", window_curve},
                        {"payload_curve", payload_curve},
                        {"services_curve", services_curve}, {"points", nlohmann::json::array()},
                        {"targets", targets.to_json()}};
    for (const auto& [key, p] : points) j["points"].push_back(p.to_json());
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  (*n)->stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  std::filesystem::remove_all(secure_dir, ec);
  std::filesystem::remove_all(data_dir.string() + "-quiet", ec);
  std::filesystem::remove_all(data_dir.string() + "-untraced", ec);
  std::filesystem::remove_all(data_dir.string() + "-traced", ec);
  return 0;
}
