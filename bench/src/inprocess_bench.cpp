// inprocess_bench: a Cohort service calling another service in the same node
// (ctx.call, no sockets) vs raw CAF request/response between two actors,
// measured in the same run at 1 and 64 calls in flight.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <unistd.h>

#include <caf/all.hpp>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cohort/examples/example_messages.hpp"
#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/transport/client.hpp"
#include "echo_service.hpp"
#include "stats.hpp"
#include "targets.hpp"

using namespace cohort;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;

namespace {

struct fanout_args {
  std::uint32_t n = 0;
  std::uint32_t in_flight = 1;
  COHORT_FIELDS(n, in_flight);
};
struct fanout_reply {
  double seconds = 0;
  std::uint32_t done = 0;
  COHORT_FIELDS(seconds, done);
};

/// A service whose one method makes `n` calls to echo.echo (bench/src/echo_service.hpp), `in_flight` at a time.
service_definition fanout_service() {
  return worker_service("bench")
      .method("fanout",
              [](method_context& ctx, const fanout_args& a, responder<fanout_reply> respond) {
                struct run {
                  std::uint32_t sent = 0, done = 0, n = 0;
                  clock_type::time_point start = clock_type::now();
                  std::function<void()> issue;
                };
                auto r = std::make_shared<run>();
                r->n = a.n;
                auto payload = examples::echo_args{std::string(64, 'x')};
                r->issue = [ctx, r, respond, payload]() mutable {
                  r->sent++;
                  ctx.call<examples::echo_args>("echo", "echo", payload,
                                                [r, respond](result<examples::echo_args>) {
                                                  if (++r->done == r->n) {
                                                    respond(fanout_reply{std::chrono::duration<double>(clock_type::now() - r->start).count(), r->done});
                                                    r->issue = nullptr;  // break the cycle
                                                  } else if (r->sent < r->n) {
                                                    r->issue();
                                                  }
                                                });
                };
                for (std::uint32_t i = 0; i < std::min(a.in_flight, a.n); ++i) r->issue();
              })
      .build();
}

using echo_atom = caf::atom_constant<caf::atom("echo")>;

/// Raw CAF: a caller actor keeps `in_flight` requests to an echo actor outstanding.
double raw_caf(std::uint32_t n, std::uint32_t in_flight, std::size_t threads) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  // CAF's own default policy: what a user of raw CAF gets.
  cfg.set("scheduler.policy", caf::atom("stealing"));
  cfg.set("logger.verbosity", caf::atom("quiet"));
  double seconds = 0;
  {
    caf::actor_system sys{cfg};
    auto echo = sys.spawn([]() -> caf::behavior { return {[](echo_atom, const std::string& s) { return s; }}; });
    std::promise<double> finished;
    sys.spawn([&, echo](caf::event_based_actor* self) {
      auto sent = std::make_shared<std::uint32_t>(0), done = std::make_shared<std::uint32_t>(0);
      auto start = clock_type::now();
      auto issue = std::make_shared<std::function<void()>>();
      *issue = [=, &finished] {
        ++*sent;
        self->request(echo, caf::infinite, echo_atom::value, std::string(64, 'x')).then([=, &finished](const std::string&) {
          if (++*done == n) {
            finished.set_value(std::chrono::duration<double>(clock_type::now() - start).count());
            *issue = nullptr;
          } else if (*sent < n) {
            (*issue)();
          }
        });
      };
      for (std::uint32_t i = 0; i < std::min(in_flight, n); ++i) (*issue)();
    });
    seconds = finished.get_future().get();
    caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
  }
  return n / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort in-process messaging benchmark: service-to-service calls vs raw CAF"};
  bool quick = false;
  int repeats = 5;
  std::uint32_t calls = 200000;
  std::string json_out;
  app.add_flag("--quick", quick, "fewer calls and repeats");
  app.add_option("--json", json_out, "write results to this JSON file");
  // The node's default on this machine: one per core but one, at least 2.
  std::size_t threads = std::max<std::size_t>(2, std::thread::hardware_concurrency() - 1);
  app.add_option("--threads", threads, "scheduler threads, of the node and of raw CAF alike")->check(CLI::Range(1, 256));
  std::string policy;
  bool cohort_only = false;
  app.add_flag("--cohort-only", cohort_only, "measure Cohort alone, no raw CAF and no targets (for a profile)");
  app.add_option("--scheduler-policy", policy, "the node's scheduler_policy (default: the node's default)")
      ->check(CLI::IsMember(scheduler_policies()));
  bool no_metrics = false, no_tracing = false;
  app.add_flag("--no-metrics", no_metrics, "the node without request metrics (what they cost a call)");
  app.add_flag("--no-tracing", no_tracing, "the node with tracing off (what spans cost a call)");
  double trace_sample = -1;
  app.add_option("--trace-sample", trace_sample, "the node's trace sampling ratio (default: the node's default; 1: every call's two spans recorded)")
      ->check(CLI::Range(0.0, 1.0));
  int calls_option = 0, repeats_option = 0;
  app.add_option("--calls", calls_option, "calls per run (counts per call: two runs of different lengths, subtracted)")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--repeats", repeats_option, "runs per scenario")->check(CLI::Range(1, 1000));
  std::vector<std::uint32_t> windows{1, 64};
  app.add_option("--in-flight", windows, "calls in flight, one scenario each (default: 1 and 64)")
      ->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);
  if (quick) repeats = 3, calls = 50000;
  if (calls_option) calls = static_cast<std::uint32_t>(calls_option);
  if (repeats_option) repeats = repeats_option;

  auto data = std::filesystem::temp_directory_path() / ("cohort-inproc-" + std::to_string(::getpid()));
  auto cfg = example_node_config();
  cfg.listen = {"inproc://inprocess-bench"};
  cfg.admin.clear();
  cfg.http.listen.clear();
  cfg.data_dir = data.string();
  // Both sides get the same number of scheduler threads (an earlier version
  // gave the node its default of 2 against raw CAF's 1 on a 2-core machine).
  cfg.scheduler_threads = threads;
  if (!policy.empty()) cfg.scheduler_policy = policy;
  if (no_metrics) cfg.request_metrics = false;
  if (no_tracing) cfg.trace.enabled = false;
  if (trace_sample >= 0) cfg.trace.sample = trace_sample;
  service_config bench;
  bench.name = "bench";
  bench.workers = 1;
  cfg.services.push_back(bench);
  // One echo worker, as raw CAF has one echo actor.
  cfg.services.push_back(echo_service_config("echo", 1));
  auto catalog = example_services();
  catalog.push_back(fanout_service());
  catalog.push_back(echo_service());
  auto n = node::start(cfg, catalog);
  if (!n) return std::cerr << n.error().message << "\n", 2;

  std::printf("in-process bench: %u calls per run, %d runs; Cohort ctx.call between two services vs raw CAF request/response (%zu scheduler threads each)\n\n",
              calls, repeats, threads);
  target_list targets;
  std::printf("%-28s %-26s %-26s %6s\n", "scenario", "cohort calls/s", "raw CAF calls/s", "ratio");
  nlohmann::json results;
  client c((*n)->context(), "inproc://inprocess-bench");
  for (std::uint32_t in_flight : windows) {
    std::vector<double> co, raw;
    for (int i = 0; i < repeats; ++i) {
      if (!cohort_only) raw.push_back(raw_caf(calls, in_flight, threads));
      call_options o;
      o.timeout = std::chrono::minutes(2);
      auto r = c.call_as<fanout_reply>("bench", "fanout", fanout_args{calls, in_flight}, o);
      if (!r) return std::cerr << "fanout failed: " << r.error().message << "\n", 1;
      co.push_back(r->done / r->seconds);
    }
    if (cohort_only) {
      std::printf("%u in flight: cohort %s calls/s (no baseline: --cohort-only)\n", in_flight, human(spread_of(co).median).c_str());
      continue;
    }
    auto cs = spread_of(co), rs = spread_of(raw);
    auto cell = [](const spread& s) { return human(s.median) + " [" + human(s.min) + ".." + human(s.max) + "]"; };
    std::printf("%-28s %-26s %-26s %6.2f\n", (std::to_string(in_flight) + " in flight").c_str(), cell(cs).c_str(),
                cell(rs).c_str(), cs.median / rs.median);
    results[std::to_string(in_flight)] = {{"cohort", cs.median}, {"raw_caf", rs.median}, {"ratio", cs.median / rs.median}};
    targets.ratio_at_least(std::to_string(in_flight) + " in flight, in process", "calls/s", cs, rs, "raw CAF", 0.7);
  }
  targets.print();
  results["targets"] = targets.to_json();
  if (!json_out.empty()) std::ofstream(json_out) << results.dump(2) << "\n";
  (*n)->stop();
  std::error_code ec;
  std::filesystem::remove_all(data, ec);
  return 0;
}
