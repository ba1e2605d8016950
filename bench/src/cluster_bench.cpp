// cluster_bench (#17): a sharded counter on in-process nodes coordinated by a
// real etcd started here.
//   1. The steady-state cost of shard routing, beside the single-node path
//      measured in the same run: reads (counter.get, no disk) through a
//      node without [cluster], through a cluster node that owns the key, and
//      through one that forwards it to the owner.
//   2. Rebalancing: N entities on two nodes, a third joins under a steady
//      load of writes: the time until every handoff is done, the requests
//      that failed meanwhile, and p99 during the handoffs vs before.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "etcd_launch.hpp"
#include "cohort/cluster/shard_map.hpp"
#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node.hpp"
#include "cohort/security/keys.hpp"
#include "cohort/transport/client.hpp"
#include "cohort/transport/cluster_client.hpp"
#include "cohort/transport/json_bridge.hpp"
#include "raw_rocksdb.hpp"
#include "stats.hpp"
#include "targets.hpp"

using namespace cohort;
using namespace cohort::bench;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

/// A real etcd on free loopback ports, waited for until healthy.
struct etcd_process {
  scratch_dir dir{"etcd"};
  std::string url;
  std::unique_ptr<test::child_process> proc;
  etcd_process() {
    url = "http://127.0.0.1:" + std::to_string(test::free_tcp_port());
    const auto peer = "http://127.0.0.1:" + std::to_string(test::free_tcp_port());
    proc = std::make_unique<test::child_process>(
        test::etcd_command((dir.path / "data").string(), url, peer, (dir.path / "etcd.log").string()));
    if (!test::etcd_healthy(url)) throw std::runtime_error("etcd did not become healthy");
  }
};

struct keyring {
  scratch_dir dir{"keys"};
  std::vector<std::pair<std::string, security::key_pair>> nodes;
  security::key_pair client = security::generate_key_pair();
  keyring() {
    for (const auto* n : {"n1", "n2", "n3"}) {
      auto k = security::generate_key_pair();
      if (!security::write_key_pair((dir.path / (std::string(n) + ".key")).string(), k, n))
        throw std::runtime_error("cannot write a key");
      nodes.emplace_back(n, k);
    }
  }
  [[nodiscard]] curve_client_keys to(int i) const {
    return {nodes[static_cast<std::size_t>(i)].second.public_key, client.public_key, client.secret_key};
  }
};

node_config member_config(const fs::path& data, const keyring* keys, int i, const std::string& etcd, int shards) {
  auto cfg = example_node_config();
  cfg.listen = {"tcp://127.0.0.1:*"};
  cfg.admin.clear();
  cfg.http.listen.clear();
  cfg.data_dir = data.string();
  cfg.drain_timeout = std::chrono::milliseconds(500);
  if (!keys) return cfg;  // the single-node baseline
  cfg.name = keys->nodes[static_cast<std::size_t>(i)].first;
  cfg.security.keyless_loopback = false;
  cfg.security.local_operator = false;
  cfg.security.key_file = (keys->dir.path / (cfg.name + ".key")).string();
  auto peer = [](std::string name, security::role kind, std::string key, std::vector<std::string> services) {
    security::trusted_peer p;
    p.name = std::move(name), p.kind = kind, p.public_key = std::move(key), p.services = std::move(services);
    return p;
  };
  for (const auto& [name, k] : keys->nodes) cfg.security.peers.push_back(peer(name, security::role::node, k.public_key, {}));
  cfg.security.peers.push_back(peer("bench", security::role::client, keys->client.public_key, {"*"}));
  cfg.cluster.etcd = {etcd};
  cfg.cluster.name = "bench";
  cfg.cluster.lease_ttl = std::chrono::milliseconds(3000);
  cfg.cluster.poll = std::chrono::milliseconds(100);
  cfg.cluster.shards = static_cast<std::uint32_t>(shards);
  cfg.cluster.services = {"counter"};
  return cfg;
}

std::unique_ptr<node> start(const node_config& cfg) {
  auto n = node::start(cfg, example_services());
  if (!n) throw std::runtime_error(n.error().message);
  return std::move(*n);
}

/// Shards per owner and handoffs in progress of `counter`, as `n` sees them.
std::map<std::string, int> owners(const node& n, int* moving) {
  auto s = json::parse(n.cluster_status());
  std::map<std::string, int> out;
  *moving = -1;
  if (!s["services"].contains("counter")) return out;
  for (auto& [o, c] : s["services"]["counter"]["owners"].items()) out[o] = c.get<int>();
  *moving = static_cast<int>(s["services"]["counter"]["handoffs"].size());
  return out;
}

/// The owner of each shard of `counter`.
std::vector<std::string> shard_owners(node& n) {
  auto s = json::parse(*n.cluster_command("shards", "{}"));
  std::vector<std::string> out;
  for (const auto& e : s["services"]["counter"]) out.push_back(e["owner"].get<std::string>());
  return out;
}

struct load_result {
  double per_second = 0, p50_us = 0, p99_us = 0;
  std::uint64_t done = 0, failed = 0;
  std::vector<std::pair<clock_type::time_point, double>> sent_and_us;  ///< each call: when it was sent, its latency
  /// p99 of the calls sent in [from, to].
  [[nodiscard]] double p99_of_sent(clock_type::time_point from, clock_type::time_point to) const {
    std::vector<double> lat;
    for (const auto& [sent, us] : sent_and_us)
      if (sent >= from && sent <= to) lat.push_back(us);
    return percentile(lat, 99);
  }
};

/// `in_flight` requests at a time on `keys` (random), until `stop()` says so.
load_result drive(client& c, const std::string& method, const std::vector<std::string>& keys, int in_flight,
                  const std::function<bool()>& stop) {
  const auto payload = *json_to_msgpack(method == "add" ? R"({"n":1})" : "null");
  std::mt19937_64 rng(7);
  std::vector<double> lat;
  load_result r;
  std::function<void()> send_one = [&] {
    call_options o;
    o.key = keys[rng() % keys.size()];
    o.timeout = std::chrono::milliseconds(20000);
    const auto sent = clock_type::now();
    c.call_async("counter", method, payload, o, [&, sent](reply&& rep) {
      rep.ok() ? ++r.done : ++r.failed;
      if (!rep.ok() && r.failed <= 3) std::cerr << "  failed: " << rep.error->code << ": " << rep.error->message << "\n";
      lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - sent).count());
      r.sent_and_us.emplace_back(sent, lat.back());
      if (!stop()) send_one();
    });
  };
  const auto started = clock_type::now();
  for (int i = 0; i < in_flight; ++i) send_one();
  while (c.in_flight() > 0) c.poll(std::chrono::milliseconds(20));
  r.per_second = static_cast<double>(r.done) / seconds(clock_type::now() - started);
  r.p50_us = percentile(lat, 50);
  r.p99_us = percentile(lat, 99);
  return r;
}

/// One call at a time on random `keys` through `call` (a client's or a
/// cluster client's), until `stop()` says so.
template <class Call>
load_result drive_one(Call&& call, const std::vector<std::string>& keys, const std::function<bool()>& stop) {
  const auto payload = *json_to_msgpack("null");
  std::mt19937_64 rng(11);
  std::vector<double> lat;
  load_result r;
  const auto started = clock_type::now();
  while (!stop()) {
    call_options o;
    o.key = keys[rng() % keys.size()];
    const auto sent = clock_type::now();
    auto rep = call(payload, o);
    rep.ok() ? ++r.done : ++r.failed;
    lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - sent).count());
  }
  r.per_second = static_cast<double>(r.done) / seconds(clock_type::now() - started);
  r.p50_us = percentile(lat, 50);
  r.p99_us = percentile(lat, 99);
  return r;
}

std::function<bool()> for_(std::chrono::milliseconds d) {
  auto until = clock_type::now() + d;
  return [until] { return clock_type::now() >= until; };
}

/// Writes every key once (32 in flight).
void load(client& c, const std::vector<std::string>& keys) {
  std::size_t next = 0;
  const auto payload = *json_to_msgpack(R"({"n":1})");
  std::uint64_t failed = 0;
  std::function<void()> send_one = [&] {
    if (next >= keys.size()) return;
    call_options o;
    o.key = keys[next++];
    c.call_async("counter", "add", payload, o, [&](reply&& r) {
      if (!r.ok()) ++failed;
      send_one();
    });
  };
  for (int i = 0; i < 32; ++i) send_one();
  while (c.in_flight() > 0) c.poll(std::chrono::milliseconds(20));
  if (failed) throw std::runtime_error(std::to_string(failed) + " writes failed while loading");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Cohort cluster benchmark: shard routing cost, rebalancing under load (a real etcd)"};
  bool quick = false;
  int repeats = 3, duration_ms = 2000, entities = 100000, shards = 64;
  std::string json_out;
  app.add_flag("--quick", quick, "shorter runs and 10k entities");
  app.add_option("--entities", entities, "entities to rebalance");
  app.add_option("--json", json_out, "write results to this JSON file");
  CLI11_PARSE(app, argc, argv);
  if (quick) repeats = 2, duration_ms = 600, entities = std::min(entities, 10000);
  const auto duration = std::chrono::milliseconds(duration_ms);
  json results = json::object();
  etcd_process etcd;
  keyring keys;

  // 1. Routing cost, reads with 16 in flight, each side `repeats` times, interleaved.
  std::vector<std::string> probe;
  for (int i = 0; i < 4096; ++i) probe.push_back("p" + std::to_string(i));
  std::vector<double> single, owned, forwarded, single_p99, owned_p99, forwarded_p99;
  std::vector<double> via_seed, to_owner, via_seed_p50, to_owner_p50;
  std::uint64_t direct_calls = 0, redirects = 0;
  {
    scratch_dir d0("single"), d1("n1"), d2("n2");
    auto alone = start(member_config(d0.path, nullptr, 0, "", shards));
    auto n1 = start(member_config(d1.path, &keys, 0, etcd.url, shards));
    auto n2 = start(member_config(d2.path, &keys, 1, etcd.url, shards));
    int moving = -1;
    for (auto until = clock_type::now() + std::chrono::seconds(30); clock_type::now() < until;) {
      auto o = owners(*n1, &moving);
      if (o["n1"] == shards / 2 && moving == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto owner = shard_owners(*n1);
    std::vector<std::string> mine, theirs;
    for (const auto& k : probe)
      (owner[cluster::shard_of(k, static_cast<std::uint32_t>(owner.size()))] == "n1" ? mine : theirs).push_back(k);
    client c0(alone->endpoints().front());
    client c1(n1->endpoints().front(), {}, {}, keys.to(0));
    load(c0, probe);
    load(c1, probe);
    for (int i = 0; i < repeats; ++i) {
      auto a = drive(c0, "get", mine, 16, for_(duration));
      auto b = drive(c1, "get", mine, 16, for_(duration));
      auto f = drive(c1, "get", theirs, 16, for_(duration));
      single.push_back(a.per_second), owned.push_back(b.per_second), forwarded.push_back(f.per_second);
      single_p99.push_back(a.p99_us), owned_p99.push_back(b.p99_us), forwarded_p99.push_back(f.p99_us);
    }
    // Keys of both owners, one call at a time: through n1 (it forwards half)
    // against a cluster client that sends each call to its owner.
    zmq::context_t ctx;
    cluster_client cc(ctx, n1->endpoints().front(), {}, {}, keys.to(0));
    for (const auto& k : probe) {  // warm: learn every shard's owner
      call_options o;
      o.key = k;
      (void)cc.call("counter", "get", *json_to_msgpack("null"), o);
    }
    const auto warm = cc.stats();
    for (int i = 0; i < repeats; ++i) {
      auto a = drive_one([&](const std::string& p, const call_options& o) { return c1.call("counter", "get", p, o); },
                         probe, for_(duration));
      auto b = drive_one([&](const std::string& p, const call_options& o) { return cc.call("counter", "get", p, o); },
                         probe, for_(duration));
      via_seed.push_back(a.per_second), to_owner.push_back(b.per_second);
      via_seed_p50.push_back(a.p50_us), to_owner_p50.push_back(b.p50_us);
    }
    direct_calls = cc.stats().direct - warm.direct;
    redirects = cc.stats().redirects - warm.redirects;
  }
  auto s = spread_of(single), o = spread_of(owned), f = spread_of(forwarded);
  std::printf("cluster bench: counter.get, 16 in flight, %d x %d ms per figure\n\n", repeats, duration_ms);
  std::printf("%-44s %-24s %8s %s\n", "scenario", "req/s median [min..max]", "ratio", "p99 (median)");
  auto row = [&](const char* name, const spread& x, const std::vector<double>& p99) {
    std::printf("%-44s %-24s %8.2f %.0f us\n", name,
                (human(x.median) + " [" + human(x.min) + ".." + human(x.max) + "]").c_str(), x.median / s.median,
                spread_of(p99).median);
  };
  row("single node, no [cluster] (baseline)", s, single_p99);
  row("cluster, key owned by the node asked", o, owned_p99);
  row("cluster, forwarded to the owner", f, forwarded_p99);
  auto vs = spread_of(via_seed), to = spread_of(to_owner);
  std::printf("\nkeys of both owners, 1 in flight, %d x %d ms per figure\n", repeats, duration_ms);
  std::printf("%-44s %-24s %8s %s\n", "scenario", "req/s median [min..max]", "ratio", "p50 (median)");
  std::printf("%-44s %-24s %8.2f %.0f us\n", "client to n1, which forwards half (baseline)",
              (human(vs.median) + " [" + human(vs.min) + ".." + human(vs.max) + "]").c_str(), 1.0,
              spread_of(via_seed_p50).median);
  std::printf("%-44s %-24s %8.2f %.0f us   (%llu direct, %llu redirects after warm-up)\n",
              "cluster_client, straight to each owner",
              (human(to.median) + " [" + human(to.min) + ".." + human(to.max) + "]").c_str(), to.median / vs.median,
              spread_of(to_owner_p50).median, static_cast<unsigned long long>(direct_calls),
              static_cast<unsigned long long>(redirects));
  results["client_routing"] = {
      {"via_seed", {{"median", vs.median}, {"min", vs.min}, {"max", vs.max}, {"p50_us", spread_of(via_seed_p50).median}}},
      {"to_owner", {{"median", to.median}, {"min", to.min}, {"max", to.max}, {"p50_us", spread_of(to_owner_p50).median},
                    {"ratio", to.median / vs.median}, {"redirects_after_warmup", redirects}}}};
  results["routing"] = {
      {"single", {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"p99_us", spread_of(single_p99).median}}},
      {"owned", {{"median", o.median}, {"min", o.min}, {"max", o.max}, {"p99_us", spread_of(owned_p99).median},
                 {"ratio", o.median / s.median}}},
      {"forwarded", {{"median", f.median}, {"min", f.min}, {"max", f.max}, {"p99_us", spread_of(forwarded_p99).median},
                     {"ratio", f.median / s.median}}}};

  // 2. Rebalancing `entities` onto a joining node under 8 writes in flight,
  // `rebalances` times, each on a fresh cluster: p99 during a handoff swings
  // from run to run, so the verdict is on the median ratio, and every run must
  // fail nothing.
  const int rebalances = quick ? 1 : 3;
  std::vector<double> ratios, times;
  std::uint64_t failed_total = 0;
  json runs = json::array();
  std::printf("\nrebalancing %d entities (%d shards) onto a third node under 8 writes in flight, %d run(s):\n", entities,
              shards, rebalances);
  for (int run = 0; run < rebalances; ++run) {
    const auto tag = std::to_string(run);
    scratch_dir d1("r1-" + tag), d2("r2-" + tag), d3("r3-" + tag);
    auto cfg1 = member_config(d1.path, &keys, 0, etcd.url, shards);
    cfg1.cluster.name = "rebalance-" + tag;
    auto cfg2 = member_config(d2.path, &keys, 1, etcd.url, shards);
    cfg2.cluster.name = cfg1.cluster.name;
    auto n1 = start(cfg1);
    auto n2 = start(cfg2);
    int moving = -1;
    for (auto until = clock_type::now() + std::chrono::seconds(30); clock_type::now() < until;) {
      auto ow = owners(*n1, &moving);
      if (ow["n1"] == shards / 2 && moving == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::vector<std::string> names;
    for (int i = 0; i < entities; ++i) names.push_back("e" + std::to_string(i));
    client c(n1->endpoints().front(), {}, {}, keys.to(0));
    const auto load_start = clock_type::now();
    load(c, names);
    const double load_s = seconds(clock_type::now() - load_start);
    auto steady = drive(c, "add", names, 8, for_(duration * 2));
    // The third node joins; the load goes on until every handoff is done.
    auto cfg3 = member_config(d3.path, &keys, 2, etcd.url, shards);
    cfg3.cluster.name = cfg1.cluster.name;
    std::unique_ptr<node> n3;
    clock_type::time_point joined{}, settled{};
    std::thread joiner([&] {
      n3 = start(cfg3);
      joined = clock_type::now();
    });
    // Whether every handoff is done is asked on a thread of its own: an admin
    // call made on the load's thread would hold the replies behind it and
    // count its own wait into their latency.
    // The handoffs' window opens when the first shard is marked moving (seen
    // every 5 ms, opened 50 ms earlier to be sure no held request is left
    // out) and closes when the last one is taken. Before it, the new node
    // starts up in this same process on the same cores: its start-up is not
    // a handoff, and its cost is reported apart (p99 from the node's start).
    std::atomic<bool> finished{false};
    clock_type::time_point first_moving{};
    std::thread watcher([&] {
      const auto since = clock_type::now();
      while (clock_type::now() - since < std::chrono::seconds(300)) {
        int m = -1;
        auto ow = owners(*n1, &m);
        if (m > 0 && first_moving == clock_type::time_point{}) first_moving = clock_type::now();
        if (ow["n3"] >= shards / 3 && m == 0) {
          settled = clock_type::now();
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      joiner.join();
      finished = true;
    });
    const auto start_sent = clock_type::now();
    auto during = drive(c, "add", names, 8, [&] { return finished.load(); });
    watcher.join();
    if (first_moving == clock_type::time_point{}) first_moving = start_sent;
    if (settled == clock_type::time_point{}) {
      // Never settled: the run fails, and its window is all of it.
      std::printf("  run %d: the handoffs did not finish within 300 s\n", run + 1);
      settled = clock_type::now(), first_moving = start_sent + std::chrono::milliseconds(50);
      failed_total++;
    }
    const double rebalance_s = seconds(settled - joined);
    const double handoff_p99 = during.p99_of_sent(first_moving - std::chrono::milliseconds(50), settled);
    const double ratio = handoff_p99 / steady.p99_us;
    ratios.push_back(ratio), times.push_back(rebalance_s), failed_total += during.failed;
    std::printf("  run %d: loaded in %.1f s; steady %s writes/s, p99 %.0f us; rebalanced in %.2f s (join to last "
                "handoff; %.2f s from the first shard moving), %llu failed; p99 of the calls sent during the "
                "handoffs %.0f us = %.1fx steady (from the node's start: %.0f us, %s writes/s)\n",
                run + 1, load_s, human(steady.per_second).c_str(), steady.p99_us, rebalance_s,
                seconds(settled - first_moving), static_cast<unsigned long long>(during.failed), handoff_p99, ratio,
                during.p99_us, human(during.per_second).c_str());
    runs.push_back({{"seconds", rebalance_s},
                    {"load_seconds", load_s},
                    {"steady_per_second", steady.per_second},
                    {"steady_p50_us", steady.p50_us},
                    {"steady_p99_us", steady.p99_us},
                    {"during_per_second", during.per_second},
                    {"handoff_p99_us", handoff_p99},
                    {"handoff_seconds", seconds(settled - first_moving)},
                    {"during_p99_us", during.p99_us},
                    {"during_failed", during.failed},
                    {"p99_ratio", ratio}});
    n3->stop();
  }
  const auto r = spread_of(ratios), t = spread_of(times);
  const bool pass = failed_total == 0 && r.median <= 10;  // as the targets table checks it
  std::printf("  rebalance time median %.2f s [%.2f..%.2f]; p99 during / steady median %.1fx [%.1f..%.1f]; %llu failed "
              "in all (target: 0 failed, median <= 10x)  %s\n",
              t.median, t.min, t.max, r.median, r.min, r.max, static_cast<unsigned long long>(failed_total),
              pass ? "pass" : "short");
  results["rebalance"] = {{"entities", entities},
                          {"shards", shards},
                          {"runs", runs},
                          {"seconds", t.median},
                          {"p99_ratio", r.median},
                          {"p99_ratio_min", r.min},
                          {"p99_ratio_max", r.max},
                          {"during_failed", failed_total},
                          {"pass", pass}};
  target_list targets;
  targets.value_at_most("rebalance " + std::to_string(entities) + " entities", "requests failed",
                        {double(failed_total), double(failed_total), double(failed_total)}, 0);
  targets.value_at_most("rebalance " + std::to_string(entities) + " entities", "p99 during / steady", r, 10);
  targets.print();
  results["targets"] = targets.to_json();
  if (!json_out.empty()) std::ofstream(json_out) << results.dump(2);
  return 0;
}
