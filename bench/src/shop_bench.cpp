// shop_bench: checkouts per second of the reference shop (every checkout a
// full saga: reserve, authorize, commit, capture, clear the cart, publish the
// event, deliver it), embedded in one node and split over three node
// processes. Baseline, measured in the same run: raw RocksDB doing the same
// number of fsynced writes per checkout as the shop did (counted from its
// stores), from as many writer threads as checkouts in flight: what the
// checkouts would cost if nothing but the durable writes cost anything.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/shop/seed.hpp"
#include "cohort/shop/shop.hpp"
#include "cohort/shop/shop_config.hpp"
#include "cohort/shop/workload.hpp"
#include "cohort/transport/client.hpp"
#include "raw_rocksdb.hpp"
#include "stats.hpp"
#include "targets.hpp"

using namespace cohort;
using namespace cohort::bench;
using namespace cohort::shop;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {


/// Seeds, then stocks every product deep enough that no checkout runs out.
void prepare(client& c) {
  if (auto s = seed_shop(c); !s) throw std::runtime_error("seed: " + s.error().message);
  for (const auto& p : sample_products()) {
    call_options o;
    o.key = p.sku;
    if (!c.call_as<stock_view>("inventory", "restock", quantity_args{1000000000}, o))
      throw std::runtime_error("restock failed");
  }
}

/// Customers the checkouts are spread over (--customers): fewer customers, longer histories.
std::size_t customers = 64;

workload_options workload(std::size_t orders, std::size_t in_flight, const std::string& prefix) {
  workload_options w;
  w.orders = orders;
  w.concurrency = in_flight;
  w.customers = customers;
  w.prefix = prefix;
  w.declined_share = 0.1;
  w.products = sample_products();
  w.time_limit = std::chrono::minutes(5);
  return w;
}

struct run_figures {
  double checkouts_per_s = 0;
  double writes_per_checkout = 0;
  double syncs_per_checkout = 0;  ///< the stores' commits: one fsync each, a group of writes
};

/// The embedded node's scheduler_policy (--scheduler-policy; empty: the default).
std::string embedded_policy;

run_figures embedded(std::size_t orders, std::size_t in_flight, int round) {
  scratch_dir dir("shop-embedded");
  auto cfg = shop_node_config();
  if (!embedded_policy.empty()) cfg.scheduler_policy = embedded_policy;
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin.clear();
  cfg.http.listen.clear();
  cfg.data_dir = dir.path.string();
  auto n = node::start(cfg, shop_services());
  if (!n) throw std::runtime_error(n.error().message);
  client c((*n)->endpoints().front());
  prepare(c);
  std::uint64_t writes_before = 0, commits_before = 0;
  for (const auto& name : shop_service_names())
    if (auto s = (*n)->storage_stats(name)) writes_before += s->committed_writes, commits_before += s->commits;
  auto r = run_checkouts(c, workload(orders, in_flight, "e" + std::to_string(round)));
  if (r.unfinished) std::cerr << "warning: " << r.unfinished << " sagas unfinished\n";
  std::uint64_t writes = 0, commits = 0;
  for (const auto& name : shop_service_names())
    if (auto s = (*n)->storage_stats(name)) writes += s->committed_writes, commits += s->commits;
  run_figures out;
  const double ended = double(r.completed + r.failed);
  out.checkouts_per_s = ended / r.seconds;
  out.writes_per_checkout = double(writes - writes_before) / ended;
  out.syncs_per_checkout = double(commits - commits_before) / ended;
  return out;
}

/// One `cohort run` process of the split shop.
std::unique_ptr<test::child_process> spawn(const std::string& binary, const fs::path& dir, const std::string& name,
                                           const std::string& sections, std::string& endpoint) {
  auto cfg = dir / (name + ".toml");
  std::ofstream(cfg) << "[node]\nname = \"" << name << "\"\nlisten = [\"tcp://127.0.0.1:*\"]\nadmin = \"\"\n"
                     << "data_dir = \"" << (dir / ("data-" + name)).string() << "\"\n"
                     << sections;
  auto p = std::make_unique<test::child_process>(std::vector<std::string>{binary, "run", "--config", cfg.string()});
  auto ep = p->endpoint();
  if (!ep || !p->wait_for_line("ready")) throw std::runtime_error("node " + name + " did not start");
  endpoint = *ep;
  return p;
}

double split(const std::string& binary, std::size_t orders, std::size_t in_flight, int round) {
  scratch_dir dir("shop-split");
  const std::string tuning = "max_restarts = 200\nrestart_period_ms = 1000\n";
  std::string inv_ep, pay_ep, front_ep;
  auto inv = spawn(binary, dir.path, "inventory", "[services.inventory]\n" + tuning, inv_ep);
  auto pay = spawn(binary, dir.path, "payments", "[services.payments]\n" + tuning, pay_ep);
  std::string front_cfg;
  for (const char* s : {"orders", "cart", "catalog", "notifications"})
    front_cfg += std::string("[services.") + s + "]\n" + tuning;
  front_cfg += "[remote.inventory]\nendpoint = \"" + inv_ep + "\"\n[remote.payments]\nendpoint = \"" + pay_ep + "\"\n";
  auto front = spawn(binary, dir.path, "front", front_cfg, front_ep);
  client c(front_ep);
  prepare(c);
  auto r = run_checkouts(c, workload(orders, in_flight, "s" + std::to_string(round)));
  if (r.unfinished) std::cerr << "warning: " << r.unfinished << " sagas unfinished\n";
  return double(r.completed + r.failed) / r.seconds;
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort shop benchmark: checkouts per second, embedded and split over processes"};
  bool quick = false;
  std::string json_out, binary;
  app.add_flag("--quick", quick, "fewer checkouts and repeats");
  app.add_option("--json", json_out, "write results to this JSON file");
  app.add_option("--scheduler-policy", embedded_policy, "the embedded node's scheduler_policy (default: the node's default)")
      ->check(CLI::IsMember(scheduler_policies()));
  app.add_option("--cohort", binary, "the cohort binary, for the split run (default: next to this program)");
  std::size_t orders_option = 0;
  app.add_option("--orders", orders_option, "checkouts per run (default: 2000, quick 400)");
  app.add_option("--customers", customers, "customers the checkouts are spread over (default: 64)")
      ->check(CLI::Range(1, 1000000));
  std::string only;
  app.add_option("--only", only, "run one shop alone, without the other or the floor (for profiling)")
      ->check(CLI::IsMember({"embedded", "split"}));
  CLI11_PARSE(app, argc, argv);
  if (binary.empty()) binary = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "cli" / "cohort").string();
  const int repeats = quick ? 2 : 3;
  const std::size_t orders = orders_option ? orders_option : quick ? 400 : 2000;
  const std::size_t in_flight = 32;

  std::printf("shop bench: %zu checkouts x %d runs, %zu in flight, sync durability, 10%% declined cards\n\n", orders,
              repeats, in_flight);
  std::vector<double> emb, writes, syncs, spl, raw;
  for (int i = 0; i < repeats; ++i) {
    if (only == "split") {
      std::printf("split run %d: %.0f checkouts/s\n", i, split(binary, orders, in_flight, i));
      continue;
    }
    auto e = embedded(orders, in_flight, i);
    emb.push_back(e.checkouts_per_s);
    writes.push_back(e.writes_per_checkout);
    syncs.push_back(e.syncs_per_checkout);
    if (only == "embedded") {
      std::printf("embedded run %d: %.0f checkouts/s, %.1f durable writes and %.1f fsyncs per checkout\n", i,
                  e.checkouts_per_s, e.writes_per_checkout, e.syncs_per_checkout);
      continue;
    }
    spl.push_back(split(binary, orders, in_flight, i));
    raw.push_back(raw_rocksdb_synced(static_cast<int>(in_flight), std::chrono::milliseconds(quick ? 700 : 2000), 200));
  }
  if (!only.empty()) return 0;
  auto e = spread_of(emb), s = spread_of(spl), w = spread_of(writes), f = spread_of(syncs), r = spread_of(raw);
  const double floor_checkouts = r.median / w.median;  // raw fsynced writes/s over the shop's writes per checkout
  auto cell = [](const spread& x) { return human(x.median) + " [" + human(x.min) + ".." + human(x.max) + "]"; };
  std::printf("%-44s %-26s %-26s %6s\n", "scenario", "cohort median [min..max]", "baseline", "ratio");
  std::printf("%-44s %-26s %-26s %6.2f\n", "checkouts/s, embedded (one process)", cell(e).c_str(),
              (human(floor_checkouts) + " raw-disk floor").c_str(), e.median / floor_checkouts);
  std::printf("%-44s %-26s %-26s %6.2f\n", "checkouts/s, split (3 processes)", cell(s).c_str(),
              (human(floor_checkouts) + " raw-disk floor").c_str(), s.median / floor_checkouts);
  std::printf("%-44s %-26s %-26s\n", "durable writes per checkout (embedded)", human(w.median).c_str(),
              (human(r.median) + " raw sync writes/s").c_str());
  std::printf("%-44s %-26s\n", "fsyncs per checkout (embedded, 6 stores)", human(f.median).c_str());
  target_list targets;
  const spread floor{floor_checkouts, floor_checkouts, floor_checkouts};
  targets.ratio_at_least("shop checkouts, embedded", "checkouts/s", e, floor, "raw-disk floor", 0.8);
  targets.ratio_at_least("shop checkouts, split", "checkouts/s", s, floor, "raw-disk floor", 0.8);
  targets.print();
  if (!json_out.empty()) {
    nlohmann::json j;
    j["targets"] = targets.to_json();
    j["embedded"] = to_json(e);
    j["split"] = to_json(s);
    j["writes_per_checkout"] = w.median;
    j["fsyncs_per_checkout"] = f.median;
    j["raw_sync_writes_per_s"] = r.median;
    j["raw_disk_floor_checkouts_per_s"] = floor_checkouts;
    j["orders"] = orders;
    j["customers"] = customers;
    j["in_flight"] = in_flight;
    std::ofstream(json_out) << j.dump(2) << "\n";
  }
  return 0;
}
