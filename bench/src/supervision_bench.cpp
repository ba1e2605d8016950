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
#include <thread>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "stats.hpp"
#include "targets.hpp"

using namespace cohort;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;

namespace {

double micros(clock_type::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

/// The greeter's status: restarts and their latency timed inside the node.
service_status greeter_status(node& n) {
  for (auto& s : n.services())
    if (s.name == "greeter") return s;
  return {};
}

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
  auto n = node::start(cfg, example_services());
  if (!n) {
    std::cerr << "cannot start node: " << n.error().message << "\n";
    return 2;
  }
  auto& ctx = (*n)->context();
  const auto endpoint = (*n)->endpoints().front();
  auto crash = *json_to_msgpack(R"({"message":"bench crash"})");
  auto hello = *json_to_msgpack(R"({"name":"bench"})");

  // 1. Restart latency: the crash's reply leaves the crashing worker; from then
  // until a request is answered by its replacement (requests that reach the
  // dead worker meanwhile are answered `unavailable` and retried at once).
  std::vector<double> restart_us, baseline_us;
  std::uint64_t retries = 0;
  {
    client c(ctx, endpoint);
    for (int i = 0; i < 100; ++i) (void)c.call("greeter", "hello", hello);
    for (int i = 0; i < crashes; ++i) {
      auto t0 = clock_type::now();
      if (c.call("greeter", "hello", hello).ok()) baseline_us.push_back(micros(clock_type::now() - t0));
      auto r = c.call("greeter", "crash", crash);
      if (!r.error || !r.error->is(errc::internal)) {
        std::cerr << "unexpected crash reply\n";
        return 1;
      }
      auto crashed = clock_type::now();
      for (;;) {
        auto h = c.call("greeter", "hello", hello);
        if (h.ok()) break;
        ++retries;
      }
      restart_us.push_back(micros(clock_type::now() - crashed));
    }
  }
  auto restarts_seen = [&] {
    for (auto& s : (*n)->services())
      if (s.name == "greeter") return s.restarts;
    return std::uint64_t{0};
  }();
  double r50 = percentile(restart_us, 50), r99 = percentile(restart_us, 99);
  double b50 = percentile(baseline_us, 50), b99 = percentile(baseline_us, 99);
  const auto inside = greeter_status(**n);

  // 1b. Restart latency inside the node against the size of the supervision
  // tree: a node whose greeter has `size` workers, crashed `tree_crashes`
  // times; the node times each restart (failure -> replacement's first message).
  nlohmann::json tree_curve = nlohmann::json::array();
  std::vector<std::tuple<int, double, double, std::uint64_t>> tree_rows;
  for (int size : quick ? std::vector<int>{1, 64} : std::vector<int>{1, 16, 256, 1024}) {
    auto tree_cfg = cfg;
    tree_cfg.listen = {"inproc://supervision-tree-" + std::to_string(size)};
    tree_cfg.data_dir = data_dir.string() + "-tree";
    for (auto& s : tree_cfg.services)
      if (s.name == "greeter") s.workers = static_cast<std::size_t>(size);
    auto t = node::start(tree_cfg, example_services());
    if (!t) {
      std::cerr << "cannot start the node of " << size << " workers: " << t.error().message << "\n";
      return 2;
    }
    {
      client c((*t)->context(), (*t)->endpoints().front());
      const int tree_crashes = std::min(crashes, quick ? 200 : 1000);
      for (int i = 0; i < tree_crashes; ++i) {
        (void)c.call("greeter", "crash", crash);
        // Time for the restart, without asking for the status meanwhile: a
        // status copies every child's row, which at 1024 workers would load
        // the very threads being timed. Every 50 crashes, catch up (bounded).
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if ((i + 1) % 50 == 0)
          for (int w = 0; w < 400 && greeter_status(**t).restarts_timed < static_cast<std::uint64_t>(i + 1); ++w)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    auto st = greeter_status(**t);
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
  // Alone and beside alternate in each repeat, so drift hits both alike.
  auto beside_load = [&](const std::function<void(const std::atomic<bool>&)>& load, int loaders) {
    std::vector<double> alone, beside;
    for (int i = 0; i < repeats; ++i) {
      alone.push_back(healthy_throughput(endpoint, ctx, 16, std::chrono::milliseconds(duration_ms)));
      std::atomic<bool> stop{false};
      std::vector<std::thread> threads;
      for (int t = 0; t < loaders; ++t) threads.emplace_back([&] { load(stop); });
      beside.push_back(healthy_throughput(endpoint, ctx, 16, std::chrono::milliseconds(duration_ms)));
      stop = true;
      for (auto& t : threads) t.join();
    }
    return std::make_pair(spread_of(alone), spread_of(beside));
  };
  std::atomic<std::uint64_t> paced_crashes{0}, flat_crashes{0}, naps{0};
  auto crash_loop = [&](int crashes_per_s, std::atomic<std::uint64_t>& count) {
    return [&, crashes_per_s](const std::atomic<bool>& stop) {
      client c(ctx, endpoint);
      auto next = clock_type::now();
      while (!stop) {
        (void)c.call("greeter", "crash", crash);
        ++count;
        if (crashes_per_s > 0) {
          next += std::chrono::microseconds(1000000 / crashes_per_s);
          std::this_thread::sleep_until(next);
        }
      }
    };
  };
  auto [a, b] = beside_load(crash_loop(1000, paced_crashes), 1);
  auto [fa, fb] = beside_load(crash_loop(0, flat_crashes), 1);
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

  std::printf("supervision bench: %d crashes, %llu restarts seen, %llu retries of requests that met a dead worker\n",
              crashes, static_cast<unsigned long long>(restarts_seen), static_cast<unsigned long long>(retries));
  std::printf("\nrestart latency, inside the node (failure -> the replacement's first message; last %zu restarts):\n"
              "  p50 %s us, p99 %s us, max %s us (%llu timed)\n",
              static_cast<std::size_t>(1024), human(inside.restart_latency_p50_us).c_str(), human(inside.restart_latency_p99_us).c_str(),
              human(inside.restart_latency_max_us).c_str(), static_cast<unsigned long long>(inside.restarts_timed));
  std::printf("restart latency, as the client sees it (crash reply -> an answer from the replacement, inproc):\n"
              "  p50 %s us, p99 %s us; a call without a crash: p50 %s us, p99 %s us\n",
              human(r50).c_str(), human(r99).c_str(), human(b50).c_str(), human(b99).c_str());
  std::printf("\nrestart latency inside the node against the tree size (greeter workers):\n");
  for (auto& [size, p50, p99, timed] : tree_rows)
    std::printf("  %5d workers: p50 %8s us  p99 %8s us  (%llu timed)\n", size, human(p50).c_str(), human(p99).c_str(),
                static_cast<unsigned long long>(timed));
  auto cell = [](const spread& s) { return human(s.median) + " [" + human(s.min) + ".." + human(s.max) + "]"; };
  std::printf("\nisolation, counter.get/s: alone %s; beside a crash loop of 1k/s %s (%llu crashes); beside one flat out %s "
              "(alone %s; %llu crashes); beside every greeter worker blocked %s (alone %s; %llu blocking calls of 50 ms)\n",
              cell(a).c_str(), cell(b).c_str(), static_cast<unsigned long long>(paced_crashes.load()), cell(fb).c_str(),
              cell(fa).c_str(), static_cast<unsigned long long>(flat_crashes.load()), cell(bb).c_str(), cell(ba).c_str(),
              static_cast<unsigned long long>(naps.load()));
  target_list targets;
  targets.value_at_most("restart, inside the node", "p50 latency (us)",
                        {inside.restart_latency_p50_us, inside.restart_latency_p50_us, inside.restart_latency_p50_us}, 100);
  targets.ratio_at_least("isolation, crash loop 1k/s", "healthy throughput", b, a, "alone", 0.9);
  targets.ratio_at_least("isolation, crash loop flat out", "healthy throughput", fb, fa, "alone", 0.9);
  targets.ratio_at_least("isolation, all workers blocked", "healthy throughput", bb, ba, "alone", 0.9);
  targets.print();
  if (!json_out.empty()) {
    nlohmann::json j = {{"restart_latency_us", {{"p50", r50}, {"p99", r99}, {"baseline_p50", b50}, {"baseline_p99", b99}}},
                        {"restart_latency_inside_us", {{"p50", inside.restart_latency_p50_us},
                                                       {"p99", inside.restart_latency_p99_us},
                                                       {"max", inside.restart_latency_max_us},
                                                       {"timed", inside.restarts_timed}}},
                        {"restart_latency_by_tree_size", tree_curve},
                        {"crashes", crashes},
                        {"isolation_1k_per_s", {{"alone_median", a.median}, {"beside_median", b.median}, {"ratio", ratio}}},
                        {"isolation_flat_out", {{"alone_median", fa.median}, {"beside_median", fb.median}, {"ratio", flat_ratio}}},
                        {"isolation_blocked", {{"alone_median", ba.median}, {"beside_median", bb.median}, {"ratio", blocked_ratio}}},
                        {"targets", targets.to_json()}};
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  (*n)->stop();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  return 0;
}
