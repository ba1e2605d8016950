// supervision_bench: restart latency over thousands of crashes, timed inside
// the node (failure -> the replacement's first message) and as a client sees
// it (crash -> an answer again), against the size of the supervision tree;
// and isolation (a healthy service's throughput while
// another crash-loops, or while every worker of another is blocked in a
// handler declared blocking, as a ratio to its throughput alone).
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "echo_service.hpp"
#include "stats.hpp"
#include "targets.hpp"

using namespace cohort;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;

namespace {

double micros(clock_type::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

/// A service's status: restarts and their latency timed inside the node.
service_status status_of(node& n, const std::string& service) {
  for (auto& s : n.services())
    if (s.name == service) return s;
  return {};
}

/// Restart latency of one service's worker, over `crashes` crashes.
struct restart_figures {
  double client_p50 = 0, client_p99 = 0;      ///< crash reply -> an answer from the replacement
  double baseline_p50 = 0, baseline_p99 = 0;  ///< a call without a crash
  std::uint64_t retries = 0;
  service_status inside;                      ///< failure -> the replacement's first message, timed by the node
};

/// Throughput of counter.get with `in_flight` calls outstanding for `duration`.
double healthy_throughput(const std::string& endpoint, zmq::context_t& ctx, int in_flight,
                          std::chrono::milliseconds duration) {
  client c(ctx, endpoint);
  call_options key;
  key.key = "bench";
  auto args = *json_to_msgpack("null");
  std::uint64_t done = 0, failed = 0;
  auto until = clock_type::now() + duration;
  std::function<void()> send_one = [&] {
    c.call_async("counter", "get", args, key, [&](reply&& r) {
      r.ok() ? ++done : ++failed;
      if (clock_type::now() < until) send_one();
    });
  };
  auto start = clock_type::now();
  for (int i = 0; i < in_flight; ++i) send_one();
  while (c.in_flight() > 0) c.poll(std::chrono::milliseconds(100));
  if (failed) std::cerr << "warning: " << failed << " healthy calls failed\n";
  return done / std::chrono::duration<double>(clock_type::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort supervision benchmark: restart latency and failure isolation"};
  bool quick = false;
  int crashes = 5000, repeats = 5, duration_ms = 2000;
  std::string json_out;
  app.add_flag("--quick", quick, "fewer crashes and shorter runs");
  app.add_option("--crashes", crashes, "crashes measured")->check(CLI::Range(10, 1000000));
  app.add_option("--json", json_out, "write results to this JSON file");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    if (app.count("--crashes") == 0) crashes = 1000;  // an explicit --crashes wins over --quick
    repeats = 3, duration_ms = 500;
  }

  auto data_dir = std::filesystem::temp_directory_path() / ("cohort-supbench-" + std::to_string(::getpid()));
  auto cfg = example_node_config();
  cfg.listen = {"inproc://supervision-bench"};
  cfg.admin.clear();
  cfg.http.listen.clear();
  cfg.data_dir = data_dir.string();
  for (auto& s : cfg.services) {
    s.supervision.intensity = {100000000, std::chrono::milliseconds(1000)};  // crash-loop, never give up
    if (s.name == "greeter") s.workers = 1;
    if (s.name == "counter") s.store_durability = durability::async;
  }
  auto echo_cfg = echo_service_config("echo", 1);
  echo_cfg.supervision.intensity = {100000000, std::chrono::milliseconds(1000)};
  cfg.services.push_back(echo_cfg);
  auto services = example_services();
  services.push_back(echo_service("echo"));
  auto n = node::start(cfg, services);
  if (!n) {
    std::cerr << "cannot start node: " << n.error().message << "\n";
    return 2;
  }
  auto& ctx = (*n)->context();
  const auto endpoint = (*n)->endpoints().front();
  auto crash = *json_to_msgpack(R"({"message":"bench crash"})");
  auto hello = *json_to_msgpack(R"({"name":"bench"})");
  auto echo_payload = *json_to_msgpack(R"({"text":"bench"})");

  // 1. Restart latency: the crash's reply leaves the crashing worker; from then
  // until a request is answered by its replacement (requests that reach the
  // dead worker meanwhile are answered `unavailable` and retried at once).
  // Two kinds of service: echo, whose workers share the node's scheduler (most
  // services), and greeter, which declares a blocking method, so that each of
  // its workers runs on a thread of the service's own pool: its replacement
  // takes the thread its predecessor left (blocking_pool).
  auto restart_latency = [&](const std::string& service, const std::string& ok_method,
                             const std::string& ok_payload) -> std::optional<restart_figures> {
    restart_figures f;
    std::vector<double> restart_us, baseline_us;
    client c(ctx, endpoint);
    for (int i = 0; i < 100; ++i) (void)c.call(service, ok_method, ok_payload);
    for (int i = 0; i < crashes; ++i) {
      auto t0 = clock_type::now();
      if (c.call(service, ok_method, ok_payload).ok()) baseline_us.push_back(micros(clock_type::now() - t0));
      auto r = c.call(service, "crash", crash);
      if (!r.error || !r.error->is(errc::internal)) {
        std::cerr << "unexpected crash reply from " << service << "\n";
        return std::nullopt;
      }
      auto crashed = clock_type::now();
      for (;;) {
        auto h = c.call(service, ok_method, ok_payload);
        if (h.ok()) break;
        ++f.retries;
      }
      restart_us.push_back(micros(clock_type::now() - crashed));
    }
    f.client_p50 = percentile(restart_us, 50), f.client_p99 = percentile(restart_us, 99);
    f.baseline_p50 = percentile(baseline_us, 50), f.baseline_p99 = percentile(baseline_us, 99);
    f.inside = status_of(**n, service);
    return f;
  };
  auto echo_restarts = restart_latency("echo", "echo", echo_payload);
  auto greeter_restarts = restart_latency("greeter", "hello", hello);
  if (!echo_restarts || !greeter_restarts) return 1;
  const auto& inside = echo_restarts->inside;
  const auto& greeter_inside = greeter_restarts->inside;

  // 1b. Restart latency inside the node against the size of the supervision
  // tree: a node whose echo service has `size` workers (on the shared
  // scheduler, so the curve shows supervision, not threads), crashed
  // `tree_crashes` times; the node times each restart (failure -> the
  // replacement's first message).
  nlohmann::json tree_curve = nlohmann::json::array();
  std::vector<std::tuple<int, double, double, std::uint64_t>> tree_rows;
  for (int size : quick ? std::vector<int>{1, 64} : std::vector<int>{1, 16, 256, 1024}) {
    auto tree_cfg = cfg;
    tree_cfg.listen = {"inproc://supervision-tree-" + std::to_string(size)};
    tree_cfg.data_dir = data_dir.string() + "-tree";
    for (auto& s : tree_cfg.services)
      if (s.name == "echo") s.workers = static_cast<std::size_t>(size);
    auto t = node::start(tree_cfg, services);
    if (!t) {
      std::cerr << "cannot start the node of " << size << " workers: " << t.error().message << "\n";
      return 2;
    }
    {
      client c((*t)->context(), (*t)->endpoints().front());
      const int tree_crashes = std::min(crashes, quick ? 200 : 1000);
      for (int i = 0; i < tree_crashes; ++i) {
        (void)c.call("echo", "crash", crash);
        // Time for the restart, without asking for the status meanwhile: a
        // status copies every child's row, which at 1024 workers would load
        // the very threads being timed. Every 50 crashes, catch up (bounded).
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if ((i + 1) % 50 == 0)
          for (int w = 0; w < 400 && status_of(**t, "echo").restarts_timed < static_cast<std::uint64_t>(i + 1); ++w)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    auto st = status_of(**t, "echo");
    tree_rows.emplace_back(size, st.restart_latency_p50_us, st.restart_latency_p99_us, st.restarts_timed);
    tree_curve.push_back({{"workers", size}, {"timed", st.restarts_timed}, {"p50_us", st.restart_latency_p50_us},
                          {"p99_us", st.restart_latency_p99_us}, {"max_us", st.restart_latency_max_us}});
    (*t)->stop();
    std::error_code ec;
    std::filesystem::remove_all(data_dir.string() + "-tree", ec);
  }

  // 2. Isolation: counter's throughput alone vs while greeter crash-loops, at a
  // steady 1000 crashes/s (a service stuck in a crash loop) and flat out (a
  // client hammering the crashing method; this also competes for the 2 cores).
  // Beside each crash loop, the same load of calls that do not crash
  // (greeter.hello at the same pace, from the same kind of client): what the
  // crashes cost beyond the load itself. Alone and each load alternate in
  // every repeat, so drift hits all alike.
  using load_fn = std::function<void(const std::atomic<bool>&)>;
  auto beside_loads = [&](const std::vector<load_fn>& loads, int loaders) {
    std::vector<double> alone;
    std::vector<std::vector<double>> beside(loads.size());
    for (int i = 0; i < repeats; ++i) {
      alone.push_back(healthy_throughput(endpoint, ctx, 16, std::chrono::milliseconds(duration_ms)));
      for (std::size_t l = 0; l < loads.size(); ++l) {
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < loaders; ++t) threads.emplace_back([&, l] { loads[l](stop); });
        beside[l].push_back(healthy_throughput(endpoint, ctx, 16, std::chrono::milliseconds(duration_ms)));
        stop = true;
        for (auto& t : threads) t.join();
      }
    }
    std::vector<spread> out{spread_of(alone)};
    for (auto& b : beside) out.push_back(spread_of(b));
    return out;
  };
  auto beside_load = [&](const load_fn& load, int loaders) {
    auto s = beside_loads({load}, loaders);
    return std::make_pair(s[0], s[1]);
  };
  std::atomic<std::uint64_t> naps{0};
  auto call_loop = [&](const char* service, const char* method, const std::string& payload, int calls_per_s,
                       std::atomic<std::uint64_t>& count) {
    return [&, service, method, calls_per_s](const std::atomic<bool>& stop) {
      client c(ctx, endpoint);
      auto next = clock_type::now();
      while (!stop) {
        (void)c.call(service, method, payload);
        ++count;
        if (calls_per_s > 0) {
          next += std::chrono::microseconds(1000000 / calls_per_s);
          std::this_thread::sleep_until(next);
        }
      }
    };
  };
  // Per pace (1k/s, flat out): echo crashing, echo answering, greeter
  // crashing, greeter answering; counted calls of each.
  struct paced_loads {
    spread alone, echo_crash, echo_calls, greeter_crash, greeter_calls;
    std::atomic<std::uint64_t> n_echo_crash{0}, n_echo_calls{0}, n_greeter_crash{0}, n_greeter_calls{0};
  };
  auto measure_pace = [&](int per_s, paced_loads& p) {
    auto r = beside_loads({call_loop("echo", "crash", crash, per_s, p.n_echo_crash),
                           call_loop("echo", "echo", echo_payload, per_s, p.n_echo_calls),
                           call_loop("greeter", "crash", crash, per_s, p.n_greeter_crash),
                           call_loop("greeter", "hello", hello, per_s, p.n_greeter_calls)},
                          1);
    p.alone = r[0], p.echo_crash = r[1], p.echo_calls = r[2], p.greeter_crash = r[3], p.greeter_calls = r[4];
  };
  paced_loads paced, flat;
  measure_pace(1000, paced);
  measure_pace(0, flat);
  const spread &a = paced.alone, &b = paced.echo_crash, &fa = flat.alone, &fb = flat.echo_crash;
  // Every greeter worker blocked in greeter.sleep (declared blocking) all the time.
  auto nap = *json_to_msgpack(R"({"ms":50})");
  auto [ba, bb] = beside_load(
      [&](const std::atomic<bool>& stop) {
        client c(ctx, endpoint);
        while (!stop) {
          (void)c.call("greeter", "sleep", nap);
          ++naps;
        }
      },
      8);
  double ratio = b.median / a.median, flat_ratio = fb.median / fa.median, blocked_ratio = bb.median / ba.median;
  const auto& er = *echo_restarts;
  const auto& gr = *greeter_restarts;

  std::printf("supervision bench: %d crashes per service; echo %llu restarts seen, %llu retries of requests that met a "
              "dead worker; greeter %llu, %llu\n",
              crashes, static_cast<unsigned long long>(er.inside.restarts), static_cast<unsigned long long>(er.retries),
              static_cast<unsigned long long>(gr.inside.restarts), static_cast<unsigned long long>(gr.retries));
  std::printf("\nrestart latency, inside the node (failure -> the replacement's first message; last %zu restarts):\n",
              static_cast<std::size_t>(1024));
  for (const auto* f : {&er, &gr})
    std::printf("  %-8s p50 %s us, p99 %s us, max %s us (%llu timed)%s\n", f == &er ? "echo" : "greeter",
                human(f->inside.restart_latency_p50_us).c_str(), human(f->inside.restart_latency_p99_us).c_str(),
                human(f->inside.restart_latency_max_us).c_str(), static_cast<unsigned long long>(f->inside.restarts_timed),
                f == &er ? "  (workers on the shared scheduler)" : "  (a blocking method: threads of its own, kept across restarts)");
  std::printf("restart latency, as the client sees it (crash reply -> an answer from the replacement, inproc):\n");
  for (const auto* f : {&er, &gr})
    std::printf("  %-8s p50 %s us, p99 %s us; a call without a crash: p50 %s us, p99 %s us\n",
                f == &er ? "echo" : "greeter", human(f->client_p50).c_str(), human(f->client_p99).c_str(),
                human(f->baseline_p50).c_str(), human(f->baseline_p99).c_str());
  std::printf("\nrestart latency inside the node against the tree size (echo workers):\n");
  for (auto& [size, p50, p99, timed] : tree_rows)
    std::printf("  %5d workers: p50 %8s us  p99 %8s us  (%llu timed)\n", size, human(p50).c_str(), human(p99).c_str(),
                static_cast<unsigned long long>(timed));
  auto cell = [](const spread& s) { return human(s.median) + " [" + human(s.min) + ".." + human(s.max) + "]"; };
  auto count = [](const std::atomic<std::uint64_t>& c) { return static_cast<unsigned long long>(c.load()); };
  std::printf("\nisolation, counter.get/s beside another service's load, alone and beside; each load also without "
              "crashes (the same pace of calls that succeed), to tell the crashes' cost from the load's:\n");
  for (auto* p : {&paced, &flat}) {
    const char* pace = p == &paced ? "1k/s" : "flat out";
    std::printf("  %-8s alone %s\n", pace, cell(p->alone).c_str());
    std::printf("           echo crashing %s (%.2fx; %llu crashes), echo answering %s (%.2fx; %llu calls): crashes' own "
                "cost %.2fx\n",
                cell(p->echo_crash).c_str(), p->echo_crash.median / p->alone.median, count(p->n_echo_crash),
                cell(p->echo_calls).c_str(), p->echo_calls.median / p->alone.median, count(p->n_echo_calls),
                p->echo_crash.median / p->echo_calls.median);
    std::printf("           greeter crashing %s (%.2fx; %llu crashes), greeter answering %s (%.2fx; %llu calls): "
                "crashes' own cost %.2fx\n",
                cell(p->greeter_crash).c_str(), p->greeter_crash.median / p->alone.median, count(p->n_greeter_crash),
                cell(p->greeter_calls).c_str(), p->greeter_calls.median / p->alone.median, count(p->n_greeter_calls),
                p->greeter_crash.median / p->greeter_calls.median);
  }
  std::printf("  beside every greeter worker blocked %s (alone %s; %llu blocking calls of 50 ms)\n", cell(bb).c_str(),
              cell(ba).c_str(), count(naps));
  target_list targets;
  auto p50_of = [](const service_status& st) {
    return spread{st.restart_latency_p50_us, st.restart_latency_p50_us, st.restart_latency_p50_us};
  };
  targets.value_at_most("restart, inside the node", "p50 latency (us)", p50_of(inside), 100);
  targets.value_at_most("restart, inside, blocking service", "p50 latency (us)", p50_of(greeter_inside), 100);
  targets.ratio_at_least("isolation, crash loop 1k/s", "healthy throughput", b, a, "alone", 0.9);
  targets.ratio_at_least("isolation, crash loop flat out", "healthy throughput", fb, fa, "alone", 0.9);
  targets.ratio_at_least("isolation, blocking svc crashing 1k/s", "healthy throughput", paced.greeter_crash, paced.alone,
                         "alone", 0.9);
  targets.ratio_at_least("isolation, blocking svc crashing flat", "healthy throughput", flat.greeter_crash, flat.alone,
                         "alone", 0.9);
  targets.ratio_at_least("isolation, all workers blocked", "healthy throughput", bb, ba, "alone", 0.9);
  targets.print();
  if (!json_out.empty()) {
    auto restart_json = [](const restart_figures& f) {
      return nlohmann::json{{"p50", f.client_p50}, {"p99", f.client_p99}, {"baseline_p50", f.baseline_p50},
                            {"baseline_p99", f.baseline_p99}, {"retries", f.retries},
                            {"inside", {{"p50", f.inside.restart_latency_p50_us},
                                        {"p99", f.inside.restart_latency_p99_us},
                                        {"max", f.inside.restart_latency_max_us},
                                        {"timed", f.inside.restarts_timed}}}};
    };
    auto pace_json = [](const paced_loads& p) {
      auto side = [&](const spread& crash, const spread& calls, std::uint64_t crashes, std::uint64_t n_calls) {
        return nlohmann::json{{"beside_crashing_median", crash.median}, {"ratio", crash.median / p.alone.median},
                              {"beside_calls_median", calls.median}, {"calls_ratio", calls.median / p.alone.median},
                              {"crash_cost_ratio", crash.median / calls.median}, {"crashes", crashes},
                              {"calls", n_calls}};
      };
      return nlohmann::json{{"alone_median", p.alone.median},
                            {"echo", side(p.echo_crash, p.echo_calls, p.n_echo_crash, p.n_echo_calls)},
                            {"greeter", side(p.greeter_crash, p.greeter_calls, p.n_greeter_crash, p.n_greeter_calls)}};
    };
    nlohmann::json j = {{"restart_latency_us", restart_json(er)},
                        {"restart_latency_blocking_service_us", restart_json(gr)},
                        {"restart_latency_inside_us", {{"p50", inside.restart_latency_p50_us},
                                                       {"p99", inside.restart_latency_p99_us},
                                                       {"max", inside.restart_latency_max_us},
                                                       {"timed", inside.restarts_timed}}},
                        {"restart_latency_by_tree_size", tree_curve},
                        {"crashes", crashes},
                        {"isolation_1k_per_s", pace_json(paced)},
                        {"isolation_flat_out", pace_json(flat)},
                        {"isolation_1k_per_s_ratio", ratio},
                        {"isolation_flat_out_ratio", flat_ratio},
                        {"isolation_blocked", {{"alone_median", ba.median}, {"beside_median", bb.median}, {"ratio", blocked_ratio}}},
                        {"targets", targets.to_json()}};
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  (*n)->stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  return 0;
}
