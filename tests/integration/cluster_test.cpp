// A cluster of real `cohort run` processes coordinated by a real etcd started
// by the test (docs/cluster.md): the counter service sharded across nodes.
// Every counter is written by one writer in order, so each acknowledged
// `add` must answer exactly one more than the one before: a key that moved
// without its state, or was served by two owners, shows as a value that
// does not follow.
#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cohort/shop/audit.hpp"
#include "cohort/shop/seed.hpp"
#include "cohort/shop/shop.hpp"
#include "cohort/shop/workload.hpp"
#include "cohort/cluster/shard_map.hpp"
#include "cohort/transport/cluster_client.hpp"
#include "cohort/transport/shard_key.hpp"
#include "etcd_server.hpp"
#include "eventually.hpp"
#include "netns_star.hpp"
#include "node_process.hpp"
#include "test_keys.hpp"

using namespace cohort;
using namespace cohort::test;
using json = nlohmann::json;

namespace {

struct cluster_keys {
  temp_dir dir;
  std::vector<test_key> nodes;
  test_key tester;
  std::string trust;
  test_key op = make_key(dir.path(), "op");  ///< an operator with control access, trusted by every member
  cluster_keys() {
    for (const auto* n : {"n1", "n2", "n3"}) nodes.push_back(make_key(dir.path(), n));
    tester = make_key(dir.path(), "tester");
    trust = dir / "trust.toml";
    std::ofstream t(trust);
    for (const auto& k : nodes) t << k.trust_entry("node", "", "peer");
    t << tester.trust_entry("client", "services = [\"*\"]\n", "peer");
    t << op.trust_entry("operator", "access = \"control\"\n", "peer");
  }
};

/// A member's [security] and [cluster] sections (keys of node i, trust of all), then `services`.
std::string member_sections(const cluster_keys& keys, int i, const std::string& etcd_url, const std::string& cluster,
                            int shards, const std::string& services, const std::string& more_cluster = "") {
  const auto& k = keys.nodes[static_cast<std::size_t>(i)];
  return "[security]\nkeyless_loopback = false\nkey_file = \"" + k.file + "\"\ntrust_file = \"" + keys.trust +
         "\"\n[cluster]\netcd = [\"" + etcd_url + "\"]\nname = \"" + cluster + "\"\nlease_ttl_ms = 3000\nshards = " +
         std::to_string(shards) + "\npoll_ms = 100\n" + more_cluster + services;
}

std::unique_ptr<node_process> start_member(const cluster_keys& keys, int i, const etcd_server& etcd,
                                           const std::string& data_dir = "", const std::string& counter = "",
                                           const std::string& more_cluster = "") {
  // Transfers in 1 KiB pieces: these handoffs come in several answers, as
  // large exports do (the shop and namespace tests take the default: one).
  return std::make_unique<node_process>(member_sections(keys, i, etcd.url(), "t", 16, "[services.counter]\n" + counter,
                                                        "transfer_chunk_bytes = 1024\n" + more_cluster),
                                        "name = \"" + keys.nodes[static_cast<std::size_t>(i)].name + "\"\n", data_dir);
}

client client_of(const cluster_keys& keys, const node_process& n, int i) {
  return client(n.endpoint, {}, {}, keys.tester.to(keys.nodes[static_cast<std::size_t>(i)]));
}

json admin_call(const node_process& n, const std::string& method, const json& args) {
  client c(n.admin, {}, {}, n.operator_keys());
  auto bytes = json::to_msgpack(args);
  auto r = c.call("admin", method, std::string(bytes.begin(), bytes.end()));
  REQUIRE(r.ok());
  return json::from_msgpack(r.payload.begin(), r.payload.end());
}

/// Shards per owner, and handoffs in progress, as a node sees them.
std::map<std::string, int> owners(const node_process& n, int* moving = nullptr) {
  auto s = admin_call(n, "cluster", {{"verb", "status"}});
  std::map<std::string, int> out;
  if (!s["services"].contains("counter")) return out;
  for (auto& [owner, count] : s["services"]["counter"]["owners"].items()) out[owner] = count.get<int>();
  if (moving) *moving = static_cast<int>(s["services"]["counter"]["handoffs"].size());
  return out;
}

/// The shop's event counters as a node's admin status has them (for a failure report).
std::string event_counts(const node_process& n) {
  client c(n.admin, {}, {}, n.operator_keys());
  auto r = c.call("admin", "status", *json_to_msgpack("{}"));
  if (!r.ok()) return "status: " + r.error->code + ": " + r.error->message + "\n";
  std::string out;
  const auto status = json::parse(*msgpack_to_json(r.payload));
  for (const auto& s : status["services"]) {
    json row;
    for (const auto* k : {"name", "events_published", "events_delivered", "event_redeliveries", "outbox_oldest_age_s",
                          "in_flight", "restarts", "quarantines"})
      if (s.contains(k)) row[k] = s[k];
    out += row.dump() + "\n";
  }
  return out;
}

/// The last part of what an exited node printed.
std::string log_tail(const child_process& p, std::size_t bytes = 20000) {
  auto text = "stdout " + std::to_string(p.out().size()) + " B, stderr " + std::to_string(p.err().size()) + " B\n" +
              p.out() + p.err();
  return text.substr(text.size() > bytes ? text.size() - bytes : 0);
}

/// One writer per key, in order; transient errors retried with the same idempotency key.
struct writer {
  std::map<std::string, std::int64_t> acked;  ///< key -> value of its last acknowledged add
  std::map<std::string, int> rounds;
  int failed = 0, retried = 0, out_of_order = 0;
  std::vector<std::string> errors;
  std::set<std::pair<std::uint32_t, std::uint64_t>> shard_epochs;
  std::map<std::uint32_t, std::uint64_t> last_epoch;
  int epoch_went_back = 0;
  std::string phase;                      ///< what the test is doing, named in a failure's report
  std::vector<std::string> out_of_order_seen;  ///< the first of them, for the report

  /// While a node is known dead (killed, not yet back): an add whose shard
  /// that node already owned is refused as unavailable, not lost, and waits
  /// here with the idempotency key it was sent with, for the node's return.
  bool defer_while_owner_gone = false;
  std::vector<std::pair<std::string, std::string>> deferred;  ///< key, idempotency key

  template <class Client>
  void add(Client& c, const std::string& key) {
    send_add(c, key, key + "/" + std::to_string(rounds[key]++));
  }

  /// The deferred adds, sent again now that their shard's owner is back; each must be acknowledged.
  template <class Client>
  void send_deferred(Client& c) {
    auto waiting = std::move(deferred);
    deferred.clear();
    const bool was = std::exchange(defer_while_owner_gone, false);
    for (const auto& [key, idem] : waiting) send_add(c, key, idem);
    defer_while_owner_gone = was;
  }

  template <class Client>
  void send_add(Client& c, const std::string& key, const std::string& idem) {
    call_options o;
    o.key = key;
    o.idempotency_key = idem;
    o.timeout = std::chrono::milliseconds(8000);
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto r = c.call("counter", "add", *json_to_msgpack("{\"n\":1}"), o);
      if (r.ok()) {
        auto v = json::parse(*msgpack_to_json(r.payload))["value"].template get<std::int64_t>();
        if (v != acked[key] + 1 && out_of_order++ < 20)
          out_of_order_seen.push_back(key + " (" + phase + "): acknowledged " + std::to_string(acked[key]) +
                                      ", then answered " + std::to_string(v) + " from shard " +
                                      std::to_string(r.header.shard) + " at epoch " + std::to_string(r.header.epoch) +
                                      " after " + std::to_string(attempt) + " retries");
        acked[key] = v;
        shard_epochs.insert({r.header.shard, r.header.epoch});
        auto& last = last_epoch[r.header.shard];
        if (r.header.epoch < last) epoch_went_back++;
        last = std::max(last, r.header.epoch);
        return;
      }
      errors.push_back(key + ": " + r.error->code + ": " + r.error->message);
      // Its shard had already moved to the node that was killed (the kill
      // came after that handoff finished): unavailable until it returns.
      if (defer_while_owner_gone && r.error->is(errc::unavailable) &&
          r.error->message.find("which is gone") != std::string::npos) {
        deferred.emplace_back(key, idem);
        return;
      }
      // wrong_shard (a cluster client already followed one): the map moved again; call again.
      if (!r.error->transient() && !r.error->is(errc::wrong_shard)) break;
      retried++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    failed++;
  }
};

/// Every write acknowledged, each answering one more than the last, epochs only growing.
void check_consistent(const writer& w) {
  // One message, in scope for every check below (an UNSCOPED_INFO would go
  // with the first check, which passes).
  std::string report;
  for (const auto& e : w.errors) report += e + "\n";
  for (const auto& e : w.out_of_order_seen) report += e + "\n";
  INFO(report);
  CHECK(w.failed == 0);
  CHECK(w.out_of_order == 0);
  CHECK(w.epoch_went_back == 0);
}

/// The 16 shards of `counter` placed over n1 and n2 (7 or more each), as `n` sees it, within 20 s.
bool placed_on_two(const node_process& n) {
  return eventually([&] {
    auto o = owners(n);
    return o["n1"] + o["n2"] == 16 && o["n1"] >= 7 && o["n2"] >= 7;
  }, std::chrono::seconds(20));
}

/// Reads every key back through `c`: how many do not hold their last acknowledged add.
int values_not_acked(client& c, writer& w, const std::vector<std::string>& names) {
  int wrong = 0;
  for (const auto& k : names) {
    call_options ro;
    ro.key = k;
    auto r = c.call("counter", "get", *json_to_msgpack("null"), ro);
    REQUIRE(r.ok());
    if (json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) wrong++;
  }
  return wrong;
}

std::vector<std::string> keys_named(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("k" + std::to_string(i));
  return out;
}

}  // namespace

TEST_CASE("a sharded service scales 2 -> 3 -> 2 nodes under writes: every acknowledged write kept, no key forked",
          "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  // Entities hibernate between rounds (20 ms idle): a shard that leaves a
  // node must take the states its root keeps with it, or the node would
  // answer from a stale one when the shard comes back.
  const std::string hibernating = "entity_hibernate_after_ms = 20\n";
  auto n1 = start_member(keys, 0, etcd, "", hibernating);
  auto n2 = start_member(keys, 1, etcd, "", hibernating);
  REQUIRE(placed_on_two(*n1));
  auto c = client_of(keys, *n1, 0);
  writer w;
  const auto names = keys_named(120);
  auto round = [&] {
    for (const auto& k : names) w.add(c, k);
  };
  round();
  CHECK(w.failed == 0);

  // Scale out: n3 joins; writes go on while shards move to it.
  auto n3 = start_member(keys, 2, etcd, "", hibernating);
  int rounds_during = 0;
  int moving = -1;
  auto settled = [&] {
    auto o = owners(*n1, &moving);
    return o["n3"] >= 5 && moving == 0;
  };
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
       std::chrono::steady_clock::now() < until && !(rounds_during >= 2 && settled());)
    round(), rounds_during++;
  REQUIRE(settled());
  // The old owners delete their copies of what left, once the rebalance is quiet.
  CHECK(eventually([&] {
    for (auto* n : {n1.get(), n2.get()}) {
      const auto status = admin_call(*n, "cluster", {{"verb", "status"}});
      for (const auto& entry : status["handoffs"])
        if (entry.get<std::string>().find("whose shards left this node") != std::string::npos) return true;
    }
    return false;
  }, std::chrono::seconds(10), std::chrono::milliseconds(100)));
  auto o = owners(*n1);
  CHECK(o["n1"] + o["n2"] + o["n3"] == 16);
  CHECK(std::max({o["n1"], o["n2"], o["n3"]}) - std::min({o["n1"], o["n2"], o["n3"]}) <= 1);
  round();

  // Scale in: n3 drains (its shards go back with their data), then stops.
  admin_call(*n1, "cluster_control", {{"verb", "drain"}, {"node", "n3"}});
  rounds_during = 0;
  auto drained = [&] {
    auto oo = owners(*n1, &moving);
    return oo["n3"] == 0 && moving == 0;
  };
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
       std::chrono::steady_clock::now() < until && !(rounds_during >= 1 && drained());)
    round(), rounds_during++;
  REQUIRE(drained());
  // The shards' snapshots came back in several 1 KiB answers each (the
  // chunked path), while n3 served on; then the new owners took only the
  // records written meanwhile (docs/cluster.md, Handoff).
  int pieces = 0, precopied = 0, over_base = 0;
  for (auto* n : {n1.get(), n2.get(), n3.get()}) {
    const auto status = admin_call(*n, "cluster", {{"verb", "status"}});
    for (const auto& entry : status["handoffs"]) {
      const auto line = entry.get<std::string>();
      UNSCOPED_INFO(line);
      if (line.rfind("exported ", 0) == 0) precopied += line.find("after a pre-copy served for") != std::string::npos;
      if (line.rfind("took ", 0) == 0) over_base += line.find("changed since the pre-copy") != std::string::npos;
      const auto at = line.find(" answer(s)");
      if (line.find("from 'n3'") == std::string::npos || at == std::string::npos) continue;
      const auto from = line.rfind(' ', at - 1);
      pieces = std::max(pieces, std::stoi(line.substr(from + 1, at - from - 1)));
    }
  }
  CHECK(pieces >= 3);
  CHECK(precopied >= 2);  // out to n3, back from it
  CHECK(over_base >= 2);
  // n3 owns nothing now: every entity it had activated was let go, hibernated ones too.
  CHECK(eventually([&] { return n3->service_status("counter")["live_entities"] == 0; }, std::chrono::seconds(5)));
  CHECK(n3->service_status("counter")["hibernated_entities"] == 0);
  CHECK(n1->service_status("counter")["hibernations"].get<std::uint64_t>() > 0);
  n3.reset();
  round();

  check_consistent(w);
  // Every shard was served under more than one epoch (it moved at least once) by someone.
  CHECK(w.shard_epochs.size() > 16);
  // Read everything back through the other node: each counter holds every acknowledged add.
  auto c2 = client_of(keys, *n2, 1);
  CHECK(values_not_acked(c2, w, names) == 0);
  INFO("retried " << w.retried);
  // The map as etcd itself holds it (read with etcdctl, not through a node):
  // n3 owns nothing, nothing is moving, and every shard's epoch is at least
  // the highest any reply carried for it (no reply came from a newer owner than the map knows).
  auto stored = json::parse(etcd.get("/cohort/t/shards/counter"), nullptr, false);
  REQUIRE(stored.is_object());
  REQUIRE(stored["shards"].size() == 16);
  for (std::size_t i = 0; i < 16; ++i) {
    const auto& e = stored["shards"][i];
    CHECK(e.value("owner", "") != "n3");
    CHECK(e.value("phase", "") == "");
    std::uint64_t highest = 0;
    for (const auto& [shard, epoch] : w.shard_epochs)
      if (shard == i) highest = std::max(highest, epoch);
    CHECK(e.value("epoch", std::uint64_t{0}) >= highest);
  }
}

TEST_CASE("a write the shard's old owner turns away is routed again at once by a node whose view has moved on, "
          "not a poll later", "[cluster][etcd]") {
  // The forwarding node (n1) learns a shard's new owner from etcd's watch,
  // usually before the old owner (n2) answers the requests it held during
  // the handoff with wrong_shard; and the new owner may turn a request away
  // for a moment because its own view has not caught up with the take. Such
  // a request must not wait for n1's next poll: with polls 2 s apart here,
  // no write may take anywhere near that (a handoff holds its shard's
  // writes for tens of milliseconds).
  etcd_server etcd;
  cluster_keys keys;
  auto member = [&](int i) {
    auto sections = member_sections(keys, i, etcd.url(), "t", 16, "[services.counter]\n");
    sections.replace(sections.find("lease_ttl_ms = 3000"), 19, "lease_ttl_ms = 8000");
    sections.replace(sections.find("poll_ms = 100"), 13, "poll_ms = 2000");
    return std::make_unique<node_process>(sections, "name = \"" + keys.nodes[static_cast<std::size_t>(i)].name + "\"\n");
  };
  auto n1 = member(0);
  auto n2 = member(1);
  REQUIRE(placed_on_two(*n1));
  auto c = client_of(keys, *n1, 0);
  const auto names = keys_named(200);
  const auto payload = *json_to_msgpack("{\"n\":1}");
  // 16 writes in flight through n1 (half of them forwarded to n2) until `done`.
  auto drive = [&](const std::function<bool()>& done) {
    double slowest_ms = 0;
    std::size_t failed = 0, sent = 0, answered = 0;
    std::vector<std::string> errors;
    std::function<void()> send_one = [&] {
      call_options o;
      o.key = names[sent++ % names.size()];
      o.timeout = std::chrono::seconds(20);
      const auto at = std::chrono::steady_clock::now();
      c.call_async("counter", "add", payload, o, [&, at](reply&& r) {
        answered++;
        slowest_ms = std::max(slowest_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - at).count());
        if (!r.ok() && failed++ < 5) errors.push_back(r.error->code + ": " + r.error->message);
        if (!done()) send_one();
      });
    };
    for (int i = 0; i < 16; ++i) send_one();
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
         c.in_flight() > 0 && std::chrono::steady_clock::now() < until;)
      c.poll(std::chrono::milliseconds(50));
    INFO("errors: " << json(errors).dump());
    CHECK(c.in_flight() == 0);
    CHECK(failed == 0);
    CHECK(answered > 100);
    return slowest_ms;
  };
  // Asked from a thread of its own while the main thread drives the writes:
  // no Catch assertion there (they are not thread-safe).
  auto placement = [&](int* moving) {
    std::map<std::string, int> out;
    client admin(n1->admin, {}, {}, n1->operator_keys());
    auto bytes = json::to_msgpack(json{{"verb", "status"}});
    auto r = admin.call("admin", "cluster", std::string(bytes.begin(), bytes.end()));
    if (!r.ok()) return out;
    auto st = json::from_msgpack(r.payload.begin(), r.payload.end());
    if (!st["services"].contains("counter")) return out;
    for (auto& [owner, count] : st["services"]["counter"]["owners"].items()) out[owner] = count.get<int>();
    *moving = static_cast<int>(st["services"]["counter"]["handoffs"].size());
    return out;
  };
  // Out: n3 joins and takes shards from both; back: n3 drains (a drained
  // name stays drained: one round).
  {
    std::atomic<bool> settled{false};
    std::thread watch([&] {
      for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40); std::chrono::steady_clock::now() < until;) {
        int moving = -1;
        auto o = placement(&moving);
        if (o["n3"] >= 5 && moving == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // writes after the last handoff, too
      settled = true;
    });
    auto n3 = member(2);
    const auto out = drive([&] { return settled.load(); });
    watch.join();
    INFO("owners " << json(owners(*n1)).dump());
    REQUIRE(owners(*n1)["n3"] >= 5);
    CHECK(out < 1200);
    settled = false;
    admin_call(*n1, "cluster_control", {{"verb", "drain"}, {"node", "n3"}});
    std::thread back([&] {
      for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40); std::chrono::steady_clock::now() < until;) {
        int moving = -1;
        auto o = placement(&moving);
        if (o["n3"] == 0 && moving == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      settled = true;
    });
    const auto in = drive([&] { return settled.load(); });
    back.join();
    REQUIRE(owners(*n1)["n3"] == 0);
    CHECK(in < 1200);
  }
}

TEST_CASE("a cluster client sends each call straight to its key's owner, and follows wrong_shard once while shards "
          "move", "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  auto n1 = start_member(keys, 0, etcd);
  auto n2 = start_member(keys, 1, etcd);
  REQUIRE(placed_on_two(*n1));
  zmq::context_t ctx;
  cluster_client cc(ctx, n1->endpoint, {}, {}, keys.tester.to(keys.nodes[0]));
  writer w;
  const auto names = keys_named(120);
  auto round = [&] {
    for (const auto& k : names) w.add(cc, k);
  };
  // Every key's owner as etcd's map says, by endpoint.
  auto endpoint_of = [&](const std::string& node) {
    for (const auto* n : {n1.get(), n2.get()})
      if (n && node == (n == n1.get() ? "n1" : "n2")) return n->endpoint;
    return std::string();
  };
  auto map_owner = [&](const std::string& key) {
    auto stored = json::parse(etcd.get("/cohort/t/shards/counter"), nullptr, false);
    return stored["shards"][shard_of_key(key, 16)].value("owner", "");
  };

  round();
  CHECK(w.failed == 0);
  const auto first = cc.stats();
  CHECK(first.redirects > 0);   // keys n2 owns were sent on by n1's wrong_shard, not forwarded
  CHECK(first.redirects <= 16); // at most once per shard: then the client remembers
  // Second round: every call straight to its owner, no redirect, and the
  // owner it went to is the one in etcd.
  round();
  CHECK(w.failed == 0);
  CHECK(cc.stats().redirects == first.redirects);
  CHECK(cc.stats().direct - first.direct == names.size());
  int misrouted = 0;
  for (const auto& k : names)
    if (cc.owner_endpoint("counter", k) != endpoint_of(map_owner(k))) misrouted++;
  CHECK(misrouted == 0);

  // n3 joins under writes: remembered owners go stale, wrong_shard leads the client on.
  auto n3 = start_member(keys, 2, etcd);
  int moving = -1;
  auto settled = [&] {
    auto o = owners(*n1, &moving);
    return o["n3"] >= 5 && moving == 0;
  };
  const auto before_join = cc.stats();
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
       std::chrono::steady_clock::now() < until && !settled();)
    round();
  REQUIRE(settled());
  round();  // learns the new owners
  CHECK(cc.stats().redirects > before_join.redirects);
  const auto learned = cc.stats();
  round();
  CHECK(cc.stats().redirects == learned.redirects);
  int at_n3 = 0;
  for (const auto& k : names) at_n3 += cc.owner_endpoint("counter", k) == n3->endpoint;
  CHECK(at_n3 > 0);
  check_consistent(w);
  // Read back through n2 with a plain client: every acknowledged add is there.
  auto c2 = client_of(keys, *n2, 1);
  CHECK(values_not_acked(c2, w, names) == 0);
}

TEST_CASE("host loss: a killed owner's shards are unavailable at once, the others keep serving, it takes them back",
          "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  temp_dir n2_data;
  auto n1 = start_member(keys, 0, etcd);
  auto n2 = start_member(keys, 1, etcd, n2_data.path());
  REQUIRE(eventually([&] {
    auto o = owners(*n1);
    return o["n1"] >= 7 && o["n2"] >= 7;
  }, std::chrono::seconds(20)));
  auto c = client_of(keys, *n1, 0);
  writer w;
  const auto names = keys_named(60);
  for (const auto& k : names) w.add(c, k), w.add(c, k);
  REQUIRE(w.failed == 0);

  // SIGKILL: its lease lapses within the TTL; its shards are not given to n1.
  ::kill(n2->proc->pid(), SIGKILL);
  (void)n2->proc->wait(std::chrono::seconds(10));
  std::string why;
  REQUIRE(eventually([&] {
    call_options o;
    int unavailable = 0, served = 0;
    for (const auto& k : names) {
      o.key = k;
      auto r = c.call("counter", "get", *json_to_msgpack("null"), o);
      if (r.ok()) {
        served++;
        CHECK(json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() == w.acked[k]);
      } else if (r.error->is(errc::unavailable)) {
        unavailable++;
        why = r.error->message;
      }
    }
    return unavailable > 0 && served > 0 && unavailable + served == static_cast<int>(names.size());
  }, std::chrono::seconds(15)));
  CHECK_THAT(why, Catch::Contains("n2") && Catch::Contains("gone"));
  auto o = owners(*n1);
  CHECK(o["n2"] >= 7);  // still n2's: unavailable, never silently empty elsewhere

  // The operator's view (cohortctl, tables and JSON) and the explicit escape:
  // one of n2's shards given to n1 accepting the loss of its data.
  auto ctl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{COHORTCTL_BINARY, "--endpoint", n1->admin, "--keys", n1->keys};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  };
  auto [st_rc, st_out, st_err] = ctl({"cluster", "status"});
  CHECK(st_rc == 0);
  CHECK_THAT(st_out, Catch::Contains("COORDINATOR") && Catch::Contains("n1") && Catch::Contains("UNAVAILABLE"));
  auto [sh_rc, sh_out, sh_err] = ctl({"--json", "cluster", "shards"});
  REQUIRE(sh_rc == 0);
  auto shards = json::parse(sh_out)["services"]["counter"];
  int lost = -1;
  for (const auto& s : shards)
    if (s["owner"] == "n2" && s["available"] == false) lost = s["shard"].get<int>();
  REQUIRE(lost >= 0);
  auto [no_rc, no_out, no_err] = ctl({"cluster", "reassign", "counter", std::to_string(lost), "--to", "n1"});
  CHECK(no_rc != 0);  // without --accept-data-loss: refused
  CHECK_THAT(no_err, Catch::Contains("accept-data-loss"));
  auto [re_rc, re_out, re_err] =
      ctl({"cluster", "reassign", "counter", std::to_string(lost), "--to", "n1", "--accept-data-loss"});
  CHECK(re_rc == 0);
  std::string lost_key;
  for (const auto& k : names)
    if (static_cast<int>(cluster::shard_of(k, 16)) == lost) lost_key = k;
  REQUIRE(!lost_key.empty());
  REQUIRE(eventually([&] {
    call_options lo;
    lo.key = lost_key;
    auto r = c.call("counter", "get", *json_to_msgpack("null"), lo);
    return r.ok() && json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() == 0;  // its data is lost
  }, std::chrono::seconds(10)));
  for (const auto& k : names)
    if (static_cast<int>(cluster::shard_of(k, 16)) == lost) w.acked[k] = 0;  // what the operator accepted to lose

  // It returns with its data: everything is served again, in a new term (epochs bumped).
  n2 = start_member(keys, 1, etcd, n2_data.path());
  REQUIRE(eventually([&] {
    call_options co;
    for (const auto& k : names) {
      co.key = k;
      auto r = c.call("counter", "get", *json_to_msgpack("null"), co);
      if (!r.ok() || json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) return false;
    }
    return true;
  }, std::chrono::seconds(20)));
  // n2 did not take back the reassigned shard: n1's fresh counter stays the truth.
  for (const auto& k : names) w.add(c, k);
  CHECK(w.failed == 0);
  CHECK(w.out_of_order == 0);
}

TEST_CASE("fencing: an owner paused past its lease serves nothing when it wakes until it has joined again",
          "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  auto n1 = start_member(keys, 0, etcd);
  auto n2 = start_member(keys, 1, etcd);
  REQUIRE(eventually([&] {
    auto o = owners(*n1);
    return o["n1"] >= 7 && o["n2"] >= 7;
  }, std::chrono::seconds(20)));
  auto direct = client_of(keys, *n2, 1);
  writer w;
  const auto names = keys_named(40);
  for (const auto& k : names) w.add(direct, k);
  REQUIRE(w.failed == 0);
  std::uint64_t epoch_before = 0;
  std::string owned_by_n2;
  for (const auto& k : names) {
    call_options o;
    o.key = k;
    auto r = direct.call("counter", "get", *json_to_msgpack("null"), o);
    REQUIRE(r.ok());
    // Served by n2 itself (not forwarded): a key of one of its shards.
    auto s = admin_call(*n1, "cluster", {{"verb", "shards"}});
    if (s["services"]["counter"][r.header.shard]["owner"] == "n2") {
      owned_by_n2 = k, epoch_before = r.header.epoch;
      break;
    }
  }
  REQUIRE(!owned_by_n2.empty());

  ::kill(n2->proc->pid(), SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));  // past the 3 s lease
  ::kill(n2->proc->pid(), SIGCONT);
  // The first requests after waking: refused (fenced), never served from the lapsed term.
  call_options o;
  o.key = owned_by_n2;
  o.timeout = std::chrono::milliseconds(3000);
  auto first = direct.call("counter", "get", *json_to_msgpack("null"), o);
  if (first.ok()) CHECK(first.header.epoch > epoch_before);  // only if it had already joined again
  else CHECK(first.error->is(errc::unavailable));
  // Then it joins again and serves its shards in a new term.
  std::uint64_t epoch_after = 0;
  REQUIRE(eventually([&] {
    auto r = direct.call("counter", "get", *json_to_msgpack("null"), o);
    if (!r.ok()) return false;
    epoch_after = r.header.epoch;
    return json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() == w.acked[owned_by_n2];
  }, std::chrono::seconds(20)));
  CHECK(epoch_after > epoch_before);
}

TEST_CASE("kill -9 during a handoff, on either side: no acknowledged write lost, no key forked, retries answered "
          "from their idempotency records", "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  temp_dir d1, d3;
  auto n1 = start_member(keys, 0, etcd, d1.path());
  REQUIRE(eventually([&] { return owners(*n1)["n1"] == 16; }, std::chrono::seconds(20)));
  auto n2 = start_member(keys, 1, etcd);
  REQUIRE(eventually([&] {
    int moving = -1;
    auto o = owners(*n1, &moving);
    return o["n2"] == 8 && moving == 0;
  }, std::chrono::seconds(30)));
  auto c = client_of(keys, *n2, 1);  // n2 stays up throughout: the client's way in
  writer w;
  const auto names = keys_named(150);
  w.phase = "before the handoffs";
  for (const auto& k : names) w.add(c, k), w.add(c, k);
  REQUIRE(w.failed == 0);

  // The new owner dies while shards move to it: the handoffs are called off (owners keep them).
  auto n3 = start_member(keys, 2, etcd, d3.path());
  REQUIRE(eventually([&] {
    int moving = 0;
    owners(*n2, &moving);
    return moving > 0;
  }, std::chrono::seconds(20), std::chrono::milliseconds(10)));
  ::kill(n3->proc->pid(), SIGKILL);
  (void)n3->proc->wait(std::chrono::seconds(10));
  n3.reset();
  w.phase = "after n3 was killed while taking shards";
  w.defer_while_owner_gone = true;  // a shard whose handoff to n3 finished before the kill waits for n3
  for (const auto& k : names) w.add(c, k);
  w.defer_while_owner_gone = false;
  // It comes back: the handoffs run again and finish.
  n3 = start_member(keys, 2, etcd, d3.path());
  REQUIRE(eventually([&] {
    int moving = -1;
    auto o = owners(*n2, &moving);
    return o["n3"] >= 5 && moving == 0;
  }, std::chrono::seconds(40)));
  w.phase = "the adds n3's death held back, sent again";
  w.send_deferred(c);
  w.phase = "after n3 came back and the handoffs finished";
  for (const auto& k : names) w.add(c, k);

  // The old owner dies while it hands shards over (n1 drained).
  admin_call(*n2, "cluster_control", {{"verb", "drain"}, {"node", "n1"}});
  REQUIRE(eventually([&] {
    int moving = 0;
    owners(*n2, &moving);
    return moving > 0;
  }, std::chrono::seconds(20), std::chrono::milliseconds(10)));
  ::kill(n1->proc->pid(), SIGKILL);
  (void)n1->proc->wait(std::chrono::seconds(10));
  n1.reset();
  // Its shards are unavailable, not empty: it returns with its data and finishes the drain.
  n1 = start_member(keys, 0, etcd, d1.path());
  REQUIRE(eventually([&] {
    int moving = -1;
    auto o = owners(*n2, &moving);
    return o["n1"] == 0 && moving == 0;
  }, std::chrono::seconds(40)));
  w.phase = "after n1 was killed while handing off and came back";
  for (const auto& k : names) w.add(c, k);
  std::string logs;  // what each node did with the shards, for the report
  if (w.out_of_order)
    for (const auto* n : {n1.get(), n2.get(), n3.get()}) {
      (void)n->proc->wait(std::chrono::milliseconds(300));  // reads what it printed so far
      logs += log_tail(*n->proc, 12000) + "\n";
    }
  INFO(logs);
  check_consistent(w);
  int wrong = 0, not_deduplicated = 0;
  for (const auto& k : names) {
    call_options o;
    o.key = k;
    auto r = c.call("counter", "get", *json_to_msgpack("null"), o);
    REQUIRE(r.ok());
    if (json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) wrong++;
    // A retry of the first write, after every move: answered from its record (1), never applied again.
    o.idempotency_key = k + "/0";
    auto again = c.call("counter", "add", *json_to_msgpack("{\"n\":1}"), o);
    REQUIRE(again.ok());
    if (json::parse(*msgpack_to_json(again.payload))["value"].get<std::int64_t>() != 1) not_deduplicated++;
  }
  CHECK(wrong == 0);
  CHECK(not_deduplicated == 0);
}

TEST_CASE("a handoff called off because its target died: the writes its owner takes after that go with the shard "
          "when it moves again", "[cluster][etcd]") {
  // The owner's export for the dead target stays on its disk until its sweep
  // (a second after the last handoff). Before the fix, the shard kept its
  // epoch when the handoff was called off, so the next handoff at once took
  // that export as ready: the writes between the two were lost.
  etcd_server etcd;
  cluster_keys keys;
  temp_dir d1, d2;
  // A quarter of hold_timeout_ms: the owner seals and exports after 250 ms
  // though the target never took its base.
  auto member = [&](int i, const std::string& dir) {
    return start_member(keys, i, etcd, dir, "", "hold_timeout_ms = 1000\n");
  };
  auto n1 = member(0, d1.path());
  REQUIRE(eventually([&] { return owners(*n1)["n1"] == 16; }, std::chrono::seconds(20)));
  auto c = client_of(keys, *n1, 0);
  writer w;
  const auto names = keys_named(80);
  w.phase = "before the handoff";
  for (const auto& k : names) w.add(c, k), w.add(c, k);
  REQUIRE(w.failed == 0);

  auto n2 = member(1, d2.path());
  // Stopped as soon as n1 sees it join: shards are planned to move to it,
  // and it can take none of them.
  REQUIRE(eventually([&] {
    auto st = admin_call(*n1, "cluster", {{"verb", "status"}});  // bound: a loop over a temporary's member dangles
    for (const auto& m : st["nodes"])
      if (m["name"] == "n2") return true;
    return false;
  }, std::chrono::seconds(20), std::chrono::milliseconds(2)));
  ::kill(n2->proc->pid(), SIGSTOP);
  std::map<std::size_t, std::uint64_t> moving_to_n2;  ///< shard -> its epoch while it moved
  REQUIRE(eventually([&] {
    auto s = admin_call(*n1, "cluster", {{"verb", "shards"}})["services"]["counter"];
    for (std::size_t i = 0; i < s.size(); ++i)
      if (s[i]["phase"] != "" && s[i]["to"] == "n2") moving_to_n2[i] = s[i]["epoch"].get<std::uint64_t>();
    return !moving_to_n2.empty();
  }, std::chrono::seconds(20), std::chrono::milliseconds(5)));
  // n1 exports for the silent target (its export on disk), then n2's lease
  // lapses and the handoffs are called off. n2 never wakes: killed.
  json shards;
  REQUIRE(eventually([&] {
    shards = admin_call(*n1, "cluster", {{"verb", "shards"}})["services"]["counter"];
    for (const auto& [i, epoch] : moving_to_n2)
      if (shards[i]["phase"] != "") return false;
    return true;
  }, std::chrono::seconds(20), std::chrono::milliseconds(10)));
  int called_off = 0;
  for (const auto& [i, epoch] : moving_to_n2) {
    if (shards[i]["owner"] != "n1") continue;  // taken by n2 before it died: its own, in its own epoch
    called_off++;
    INFO("shard " << i);
    CHECK(shards[i]["epoch"].get<std::uint64_t>() > epoch);  // the export on n1's disk names the old one
  }
  REQUIRE(called_off > 0);
  ::kill(n2->proc->pid(), SIGKILL);
  (void)n2->proc->wait(std::chrono::seconds(10));
  n2.reset();
  // The keys n1 serves (a shard n2 took before it died waits for n2).
  std::vector<std::string> on_n1;
  for (const auto& k : names)
    if (shards[shard_of_key(k, 16)]["owner"] == "n1") on_n1.push_back(k);
  // Written at once, and n2 back at once: within the second n1 keeps its
  // finished exports, so only the epoch tells the old export from a new one.
  w.phase = "after the handoff was called off";
  for (const auto& k : on_n1) w.add(c, k);
  n2 = member(1, d2.path());
  REQUIRE(eventually([&] {
    int moving = -1;
    auto o = owners(*n1, &moving);
    return o["n2"] >= 7 && moving == 0;
  }, std::chrono::seconds(40)));
  w.phase = "after the shards moved again";
  for (const auto& k : names) w.add(c, k);
  check_consistent(w);
  CHECK(values_not_acked(c, w, names) == 0);
}

TEST_CASE("etcd stopped: the shards keep being served by their owners, changes wait, status says so, all resumes "
          "when it is back", "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  auto n1 = start_member(keys, 0, etcd);
  auto n2 = start_member(keys, 1, etcd);
  REQUIRE(eventually([&] {
    int moving = -1;
    auto o = owners(*n1, &moving);
    return o["n1"] == 8 && o["n2"] == 8 && moving == 0;
  }, std::chrono::seconds(30)));
  auto c = client_of(keys, *n1, 0);
  writer w;
  const auto names = keys_named(60);
  for (const auto& k : names) w.add(c, k);
  REQUIRE(w.failed == 0);

  etcd.stop();
  // Well past the 3 s lease: both nodes still serve (through n1, forwarding to n2 for its shards).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  int rounds = 0;
  while (std::chrono::steady_clock::now() < until) {
    for (const auto& k : names) w.add(c, k);
    rounds++;
  }
  CHECK(rounds >= 2);
  auto s = admin_call(*n1, "cluster", {{"verb", "status"}});
  CHECK(s["etcd_reachable"] == false);
  CHECK(s["etcd_outage"] == true);
  CHECK(s["serving"] == true);
  CHECK_FALSE(s["etcd_error"].get<std::string>().empty());
  // A node that starts now cannot join: nothing moves to it.
  auto n3 = start_member(keys, 2, etcd);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(owners(*n1)["n3"] == 0);
  for (const auto& k : names) w.add(c, k);

  etcd.start();
  // Back: n3 joins and takes its share while writes go on.
  int moving = -1;
  REQUIRE(eventually([&] {
    for (const auto& k : names) w.add(c, k);
    auto o = owners(*n1, &moving);
    return o["n3"] >= 5 && moving == 0;
  }, std::chrono::seconds(40), std::chrono::milliseconds(100)));
  check_consistent(w);
}

TEST_CASE("the shop runs sharded across three nodes: checkouts through every node, a node joining midway, "
          "invariants hold", "[cluster][etcd][shop]") {
  etcd_server etcd;
  cluster_keys keys;
  std::string shop_services;
  for (const char* s : {"catalog", "cart", "orders", "inventory", "payments", "notifications"})
    shop_services += std::string("[services.") + s + "]\nresume_every_ms = 200\n";
  auto member = [&](int i) {
    return std::make_unique<node_process>(member_sections(keys, i, etcd.url(), "shop", 16, shop_services),
                                          "name = \"" + keys.nodes[static_cast<std::size_t>(i)].name + "\"\n");
  };
  auto n1 = member(0);
  auto n2 = member(1);
  REQUIRE(eventually([&] {
    auto s = admin_call(*n1, "cluster", {{"verb", "status"}});
    if (s["services"].size() != 6) return false;
    for (auto& [svc, v] : s["services"].items())
      if (v["handoffs"].size() != 0 || v["owners"].value("n2", 0) < 7) return false;
    return true;
  }, std::chrono::seconds(30), std::chrono::milliseconds(100)));
  auto c1 = client_of(keys, *n1, 0);
  REQUIRE(shop::seed_shop(c1));
  std::map<std::string, std::int64_t> initial;
  for (const auto& p : shop::sample_products()) initial[p.sku] = shop::sample_initial_stock(p.sku);

  std::unique_ptr<node_process> n3;
  shop::workload_options w;
  w.prefix = "s";
  w.orders = 90;
  w.concurrency = 6;
  w.customers = 6;
  w.seed = 7;
  w.products = shop::sample_products();
  w.time_limit = std::chrono::seconds(120);
  std::set<std::string> seen;
  bool drained = false;
  w.on_tick = [&](const std::vector<std::string>& in_flight) {
    for (const auto& o : in_flight) seen.insert(o);
    if (!n3 && seen.size() >= 30) n3 = member(2);  // a third node joins midway: shards of every service move
    if (n3 && !drained && seen.size() >= 60) {
      // Then n2 drains under load: its shards go with their state and the
      // orders' undelivered events (their outbox records move with them).
      drained = true;
      admin_call(*n1, "cluster_control", {{"verb", "drain"}, {"node", "n2"}});
    }
  };
  auto result = shop::run_checkouts(c1, w);
  INFO(result.completed << " completed, " << result.failed << " failed, " << result.unfinished << " unfinished; "
                        << result.retried_calls << " calls retried");
  REQUIRE(n3);
  CHECK(result.unfinished == 0);
  CHECK(result.completed > 0);
  REQUIRE(drained);
  REQUIRE(eventually([&] {
    auto s = admin_call(*n1, "cluster", {{"verb", "status"}});
    for (auto& [svc, v] : s["services"].items())
      if (v["handoffs"].size() != 0 || v["owners"].value("n2", 0) != 0 || v["owners"].value("n3", 0) < 7) return false;
    return true;
  }, std::chrono::seconds(40), std::chrono::milliseconds(100)));
  // n2 leaves for good: whatever it had not delivered yet must have moved.
  std::string n2_said = event_counts(*n2);
  n2->proc->signal(SIGKILL);
  (void)n2->proc->wait();
  n2_said += log_tail(*n2->proc);
  n2.reset();
  // Audited through another node: every order's saga ended, stock and
  // payments agree, every order announced exactly once.
  auto c3 = client_of(keys, *n3, 2);
  auto report = shop::audit_shop(c3, result.order_ids, initial, std::chrono::seconds(30));
  for (const auto& v : report.violations) UNSCOPED_INFO(v);
  if (!report.ok()) {
    // What each node published, delivered and still holds, then what it logged.
    UNSCOPED_INFO("n2 (gone): " << n2_said);
    for (auto* n : {n1.get(), n3.get()}) {
      auto said = event_counts(*n);
      n->proc->signal(SIGKILL);
      (void)n->proc->wait();
      UNSCOPED_INFO(said << log_tail(*n->proc));
    }
  }
  CHECK(report.ok());
  CHECK(report.unfinished == 0);
}

/// Three hosts in network namespaces around a hub (netns_star: bridge + a
/// veth per host, made and removed here), etcd on the hub at the bridge's
/// address, a member per host started on demand; clients live on the hub.
struct namespace_cluster {
  netns_star net;
  cluster_keys keys;
  temp_dir dir;
  std::string etcd_url;
  std::vector<std::string> in_hub;
  std::unique_ptr<child_process> etcd;
  std::vector<std::unique_ptr<child_process>> hosts{3};

  explicit namespace_cluster(const std::string& tag) : net(tag, 3) {
    etcd_url = "http://" + net.ip(100) + ":2379";
    in_hub = {"/usr/sbin/ip", "netns", "exec", net.hub};
    start_etcd();
  }
  /// Starts etcd on the hub (again: with the data it had) and waits until it is healthy.
  void start_etcd() {
    auto argv = in_hub;
    for (auto& a : etcd_command(dir / "etcd", etcd_url, "http://127.0.0.1:2380", dir / "etcd.log")) argv.push_back(a);
    etcd = std::make_unique<child_process>(argv);
    REQUIRE(etcd_healthy(etcd_url, std::chrono::seconds(20), in_hub));
  }
  /// Kills etcd (an outage of the whole etcd cluster).
  void stop_etcd() { etcd.reset(); }
  [[nodiscard]] std::string endpoint(int k) const { return "tcp://" + net.ip(k) + ":7400"; }
  [[nodiscard]] std::string admin_endpoint(int k) const { return "tcp://" + net.ip(k) + ":7401"; }
  [[nodiscard]] const test_key& node_key(int k) const { return keys.nodes[static_cast<std::size_t>(k - 1)]; }
  /// Starts the member of host k (1..3) and waits until it is ready.
  void start(int k) {
    const auto& key = node_key(k);
    const auto file = dir / (key.name + ".toml");
    std::ofstream(file) << "[node]\nname = \"" << key.name << "\"\nlisten = [\"" << endpoint(k) << "\"]\nadmin = \""
                        << admin_endpoint(k) << "\"\ndata_dir = \"" << (dir / key.name) << "\"\n[security]\nkey_file = \""
                        << key.file << "\"\ntrust_file = \"" << keys.trust << "\"\n[cluster]\netcd = [\"" << etcd_url
                        << "\"]\nname = \"ns\"\nlease_ttl_ms = 3000\nshards = 12\npoll_ms = 100\n[services.counter]\n";
    auto& h = hosts[static_cast<std::size_t>(k - 1)];
    h = std::make_unique<child_process>(std::vector<std::string>{
        "/usr/sbin/ip", "netns", "exec", net.hosts[static_cast<std::size_t>(k - 1)], COHORT_BINARY, "run", "--config",
        file});
    REQUIRE(h->wait_for_line("cohort: ready", std::chrono::seconds(20)));
  }
  /// Stops host k's member (SIGKILL, waited for; its data stays for a restart).
  void stop(int k) { hosts[static_cast<std::size_t>(k - 1)].reset(); }
  [[nodiscard]] child_process& host(int k) { return *hosts[static_cast<std::size_t>(k - 1)]; }
  /// A client of host k's member (call on the hub: inside_namespace).
  [[nodiscard]] std::unique_ptr<client> client_to(int k) const {
    return std::make_unique<client>(endpoint(k), wire_limits{}, liveness{}, keys.tester.to(node_key(k)));
  }
  /// An admin call to host k as the cluster's operator (on the hub).
  [[nodiscard]] json admin(int k, const std::string& method, const json& args) const {
    client c(admin_endpoint(k), {}, {}, keys.op.to(node_key(k)));
    auto bytes = json::to_msgpack(args);
    auto r = c.call("admin", method, std::string(bytes.begin(), bytes.end()));
    if (!r.ok()) return json{{"error", r.error->code + ": " + r.error->message}};
    return json::from_msgpack(r.payload.begin(), r.payload.end());
  }
  /// Shards per owner of `counter` and handoffs in progress, as host k sees them.
  std::map<std::string, int> owners(int k, int* moving) const {
    auto st = admin(k, "cluster", {{"verb", "status"}});
    std::map<std::string, int> out;
    *moving = -1;
    if (!st.contains("services") || !st["services"].contains("counter")) return out;
    for (auto& [o, c] : st["services"]["counter"]["owners"].items()) out[o] = c.get<int>();
    *moving = static_cast<int>(st["services"]["counter"]["handoffs"].size());
    return out;
  }
  /// What every started host said (for a failure report).
  void report() {
    for (auto& h : hosts) {
      if (!h) continue;
      h->signal(SIGKILL);
      (void)h->wait();
      auto text = h->out() + h->err();
      UNSCOPED_INFO(text.substr(text.size() > 6000 ? text.size() - 6000 : 0));
    }
  }
};

TEST_CASE("three hosts in network namespaces: scale 2 -> 3 -> 2 under writes, then an owner paused past its lease: "
          "nothing lost, nothing forked, nothing stale", "[cluster][etcd][netns]") {
  if (!namespaces_available()) return;
  namespace_cluster nc("cs");
  nc.start(1);
  nc.start(2);
  inside_namespace on_hub(nc.net.hub);
  auto c1 = nc.client_to(1);
  int moving = -1;
  auto placed = [&](int host_count, const char* must_own_none) {
    auto o = nc.owners(1, &moving);
    int total = 0, low = 12, high = 0;
    for (const auto& [n, c] : o) {
      if (c == 0) continue;
      total += c, low = std::min(low, c), high = std::max(high, c);
    }
    return total == 12 && moving == 0 && static_cast<int>(std::count_if(o.begin(), o.end(), [](auto& e) {
             return e.second > 0;
           })) == host_count && high - low <= 1 && (!must_own_none || o[must_own_none] == 0);
  };
  if (!eventually([&] { return placed(2, nullptr); }, std::chrono::seconds(30), std::chrono::milliseconds(100))) {
    nc.report();
    FAIL("placement over two hosts did not settle");
  }
  writer w;
  const auto names = keys_named(60);
  auto round = [&](client& c) {
    for (const auto& k : names) w.add(c, k);
  };
  round(*c1);
  REQUIRE(w.failed == 0);

  // Scale out under writes: host 3 joins, 4 shards move to it.
  nc.start(3);
  int rounds = 0;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
       std::chrono::steady_clock::now() < until && !(rounds >= 2 && placed(3, nullptr));)
    round(*c1), rounds++;
  REQUIRE(placed(3, nullptr));
  // Small snapshots come whole with their manifest (one answer per
  // pre-copy), and the changes since come with the news of the export
  // itself (no answer to wait for).
  int whole = 0, pushed = 0;
  const auto joined = nc.admin(3, "cluster", {{"verb", "status"}});
  for (const auto& entry : joined["handoffs"]) {
    const auto line = entry.get<std::string>();
    UNSCOPED_INFO(line);
    if (line.rfind("pre-copied ", 0) == 0 && line.find(" in 1 answer(s)") != std::string::npos) whole++;
    if (line.rfind("took ", 0) == 0 && line.find("changed since the pre-copy") != std::string::npos &&
        line.find(" in 0 answer(s)") != std::string::npos)
      pushed++;
  }
  CHECK(whole > 0);
  CHECK(pushed > 0);
  // Scale in under writes: host 3 drained (its shards go back with their data), then stopped.
  auto drained = nc.admin(1, "cluster_control", {{"verb", "drain"}, {"node", "n3"}});
  INFO(drained.dump());
  REQUIRE_FALSE(drained.contains("error"));
  rounds = 0;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(40);
       std::chrono::steady_clock::now() < until && !(rounds >= 1 && placed(2, "n3"));)
    round(*c1), rounds++;
  REQUIRE(placed(2, "n3"));
  nc.stop(3);
  round(*c1);
  check_consistent(w);
  CHECK(w.shard_epochs.size() > 12);  // shards were served under more than one epoch

  // Pause host 2 (SIGSTOP) past its lease: host 1 answers `unavailable` for
  // its shards meanwhile; woken, it serves nothing stale: its first answers
  // are `unavailable` or come under a higher epoch, with every acknowledged write.
  std::map<std::uint32_t, std::uint64_t> epoch_before = w.last_epoch;
  nc.host(2).signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  int unavailable_while_paused = 0;
  for (const auto& k : names) {
    call_options o;
    o.key = k;
    o.timeout = std::chrono::milliseconds(1500);
    auto r = c1->call("counter", "get", *json_to_msgpack("null"), o);
    if (!r.ok() && r.error->is(errc::unavailable)) unavailable_while_paused++;
    else if (r.ok()) CHECK(json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() == w.acked[k]);
  }
  CHECK(unavailable_while_paused > 0);
  nc.host(2).signal(SIGCONT);
  auto c2 = nc.client_to(2);
  int stale = 0;
  for (const auto& k : names) {
    call_options o;
    o.key = k;
    o.timeout = std::chrono::milliseconds(2000);
    auto r = c2->call("counter", "get", *json_to_msgpack("null"), o);
    if (!r.ok()) continue;  // unavailable until it has joined again: fine
    if (json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) stale++;
    if (r.header.epoch < epoch_before[r.header.shard]) stale++;
  }
  CHECK(stale == 0);
  // Rejoined: everything served again, through either host, with its data.
  REQUIRE(eventually([&] {
    for (const auto& k : names) {
      call_options o;
      o.key = k;
      o.timeout = std::chrono::milliseconds(2000);
      auto r = c2->call("counter", "get", *json_to_msgpack("null"), o);
      if (!r.ok() || json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) return false;
    }
    return true;
  }, std::chrono::seconds(30), std::chrono::milliseconds(200)));
  round(*c2);
  check_consistent(w);
}

TEST_CASE("three hosts in network namespaces: kill -9 during a handoff on either side, then etcd stopped: nothing "
          "lost, nothing forked, owners serve on through the outage", "[cluster][etcd][netns]") {
  if (!namespaces_available()) return;
  namespace_cluster nc("ck");
  nc.start(1);
  nc.start(2);
  inside_namespace on_hub(nc.net.hub);
  int moving = -1;
  auto settled = [&](const char* owner, int at_least, int at_most) {
    auto o = nc.owners(2, &moving);
    return moving == 0 && o[owner] >= at_least && o[owner] <= at_most;
  };
  auto handing_over = [&] {
    nc.owners(2, &moving);
    return moving > 0;
  };
  if (!eventually([&] { return settled("n2", 6, 6); }, std::chrono::seconds(30), std::chrono::milliseconds(100))) {
    nc.report();
    FAIL("placement over two hosts did not settle");
  }
  auto c2 = nc.client_to(2);  // host 2 stays up throughout: the client's way in
  writer w;
  const auto names = keys_named(90);
  auto round = [&] {
    for (const auto& k : names) w.add(*c2, k);
  };
  round();
  round();
  REQUIRE(w.failed == 0);

  // The new owner dies while shards move to it: the handoffs are called off
  // (the old owners keep them); it returns and they run again.
  nc.start(3);
  REQUIRE(eventually(handing_over, std::chrono::seconds(20), std::chrono::milliseconds(5)));
  nc.host(3).signal(SIGKILL);
  (void)nc.host(3).wait();
  nc.stop(3);
  round();
  nc.start(3);
  if (!eventually([&] { return settled("n3", 4, 4); }, std::chrono::seconds(40), std::chrono::milliseconds(100))) {
    nc.report();
    FAIL("the handoffs to host 3 did not finish after its restart");
  }
  round();

  // The old owner dies while it hands its shards over (host 1 drained): they
  // are unavailable, not empty; it returns with its data and finishes the drain.
  auto drained = nc.admin(2, "cluster_control", {{"verb", "drain"}, {"node", "n1"}});
  INFO(drained.dump());
  REQUIRE_FALSE(drained.contains("error"));
  REQUIRE(eventually(handing_over, std::chrono::seconds(20), std::chrono::milliseconds(5)));
  nc.host(1).signal(SIGKILL);
  (void)nc.host(1).wait();
  nc.stop(1);
  nc.start(1);
  if (!eventually([&] { return settled("n1", 0, 0); }, std::chrono::seconds(40), std::chrono::milliseconds(100))) {
    nc.report();
    FAIL("the drain of host 1 did not finish after its restart");
  }
  round();
  check_consistent(w);
  int wrong = 0, not_deduplicated = 0;
  for (const auto& k : names) {
    call_options o;
    o.key = k;
    auto r = c2->call("counter", "get", *json_to_msgpack("null"), o);
    REQUIRE(r.ok());
    if (json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) wrong++;
    // A retry of the first write, after every move: answered from its record (1), never applied again.
    o.idempotency_key = k + "/0";
    auto again = c2->call("counter", "add", *json_to_msgpack("{\"n\":1}"), o);
    REQUIRE(again.ok());
    if (json::parse(*msgpack_to_json(again.payload))["value"].get<std::int64_t>() != 1) not_deduplicated++;
  }
  CHECK(wrong == 0);
  CHECK(not_deduplicated == 0);

  // etcd stops for well past the 3 s lease: hosts 2 and 3 ask each other,
  // find etcd unreachable from both (an outage, not one host cut off) and
  // serve on; host 2 forwards to host 3 for its shards over the link.
  nc.stop_etcd();
  int rounds = 0;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(8); std::chrono::steady_clock::now() < until;)
    round(), rounds++;
  CHECK(rounds >= 2);
  auto during = nc.admin(3, "cluster", {{"verb", "status"}});
  INFO(during.dump());
  CHECK(during["etcd_reachable"] == false);
  CHECK(during["etcd_outage"] == true);
  CHECK(during["serving"] == true);
  nc.start_etcd();
  REQUIRE(eventually([&] {
    round();
    auto st = nc.admin(2, "cluster", {{"verb", "status"}});
    return st.value("etcd_reachable", false) && !st.value("etcd_outage", true);
  }, std::chrono::seconds(30), std::chrono::milliseconds(100)));
  round();
  check_consistent(w);
  CHECK(values_not_acked(*c2, w, names) == 0);
}

TEST_CASE("three hosts in network namespaces: a host cut off loses its shards (unavailable, never served elsewhere), "
          "the others keep serving, all returns after healing", "[cluster][etcd][netns]") {
  if (!namespaces_available()) return;
  namespace_cluster nc("cl");
  for (int k = 1; k <= 3; ++k) nc.start(k);
  // The test's own client lives on the hub, like any host of the network.
  inside_namespace on_hub(nc.net.hub);
  std::vector<std::unique_ptr<client>> clients;
  for (int k = 1; k <= 3; ++k) clients.push_back(nc.client_to(k));
  auto& c = *clients[0];
  // Placed over the three (every key served), then written.
  const auto names = keys_named(60);
  writer w;
  std::string last_error;
  const bool placed = eventually([&] {
    call_options o;
    o.timeout = std::chrono::milliseconds(2000);
    for (const auto& k : names) {
      o.key = k;
      auto r = c.call("counter", "get", *json_to_msgpack("null"), o);
      if (!r.ok()) return last_error = k + ": " + r.error->code + ": " + r.error->message, false;
    }
    return true;
  }, std::chrono::seconds(30), std::chrono::milliseconds(200));
  INFO("last error: " << last_error);
  if (!placed) nc.report();  // what the hosts said, for the failure report
  REQUIRE(placed);
  // Let placement settle (12 shards over 3 hosts): no handoff for a while.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  for (const auto& k : names) w.add(c, k);
  REQUIRE(w.failed == 0);

  // Cut host 2: after its lease runs out its shards answer unavailable through host 1; the rest is served.
  nc.net.link(2, false);
  std::string why;
  REQUIRE(eventually([&] {
    call_options o;
    o.timeout = std::chrono::milliseconds(2000);
    int unavailable = 0, served = 0;
    for (const auto& k : names) {
      o.key = k;
      auto r = c.call("counter", "get", *json_to_msgpack("null"), o);
      if (r.ok()) {
        served++;
        if (json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) return false;
      } else if (r.error->is(errc::unavailable)) {
        unavailable++;
        why = r.error->message;
      }
    }
    return unavailable > 0 && served > 0 && unavailable + served == static_cast<int>(names.size());
  }, std::chrono::seconds(20), std::chrono::milliseconds(200)));
  CHECK_THAT(why, Catch::Contains("n2"));
  // Writes to the rest go on.
  int writes_on_the_rest = 0;
  for (const auto& k : names) {
    call_options o;
    o.key = k;
    o.timeout = std::chrono::milliseconds(2000);
    if (c.call("counter", "get", *json_to_msgpack("null"), o).ok()) w.add(c, k), writes_on_the_rest++;
  }
  CHECK(writes_on_the_rest > 0);
  CHECK(w.failed == 0);

  // Healed: host 2 joins again (new lease, new term) and serves its shards with their data.
  nc.net.link(2, true);
  REQUIRE(eventually([&] {
    call_options o;
    o.timeout = std::chrono::milliseconds(2000);
    for (const auto& k : names) {
      o.key = k;
      auto r = c.call("counter", "get", *json_to_msgpack("null"), o);
      if (!r.ok() || json::parse(*msgpack_to_json(r.payload))["value"].get<std::int64_t>() != w.acked[k]) return false;
    }
    return true;
  }, std::chrono::seconds(30), std::chrono::milliseconds(200)));
  for (const auto& k : names) w.add(*clients[1], k);  // through host 2 itself
  check_consistent(w);
}

TEST_CASE("discovery through etcd: a gateway node with no services routes sharded and worker services, a worker "
          "service of one member is found by the others, with no static endpoints", "[cluster][etcd]") {
  etcd_server etcd;
  cluster_keys keys;
  auto section = [&](int i, const std::string& services) {
    return member_sections(keys, i, etcd.url(), "d", 8, services);
  };
  node_process n1(section(0, "[services.counter]\n"), "name = \"n1\"\n");
  node_process n2(section(1, "[services.counter]\n[services.greeter]\n"), "name = \"n2\"\n");
  node_process gateway(section(2, ""), "name = \"n3\"\n");
  auto via_gateway = client_of(keys, gateway, 2);
  auto via_n1 = client_of(keys, n1, 0);
  REQUIRE(eventually([&] {
    call_options o;
    o.key = "g";
    return via_gateway.call("counter", "add", *json_to_msgpack("{\"n\":1}"), o).ok();
  }, std::chrono::seconds(20), std::chrono::milliseconds(100)));
  REQUIRE(eventually([&] {
    return via_gateway.call("greeter", "hello", *json_to_msgpack("{\"name\":\"etcd\"}")).ok() &&
           via_n1.call("greeter", "hello", *json_to_msgpack("{\"name\":\"etcd\"}")).ok();
  }, std::chrono::seconds(20), std::chrono::milliseconds(100)));
  auto r = via_gateway.call("greeter", "hello", *json_to_msgpack("{\"name\":\"etcd\"}"));
  REQUIRE(r.ok());
  CHECK_THAT(*msgpack_to_json(r.payload), Catch::Contains("etcd"));
  // Every key of the sharded counter through the gateway: served by n1 or n2, none by the gateway.
  auto s = admin_call(gateway, "cluster", {{"verb", "status"}});
  CHECK(s["services"]["counter"]["owners"].value("n3", 0) == 0);
  writer w;
  for (const auto& k : keys_named(40)) w.add(via_gateway, k);
  CHECK(w.failed == 0);
  CHECK(w.out_of_order == 0);
}
