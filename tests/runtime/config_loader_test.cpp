#include <catch2/catch.hpp>

#include "cohort/examples/example_services.hpp"
#include "cohort/runtime/node_config.hpp"

using namespace cohort;

namespace {
const std::vector<std::string> known{"greeter", "counter", "visits", "ledger"};
}

TEST_CASE("a full config maps onto node_config", "[runtime][config]") {
  auto cfg = parse_node_config(R"(
[node]
name = "a"
listen = ["tcp://127.0.0.1:7500", "inproc://a"]
data_dir = "/tmp/x"
drain_timeout_ms = 100
default_deadline_ms = 2000
scheduler_threads = 2

[limits]
max_payload_bytes = 1024
max_depth = 8

[services.greeter]
workers = 3
max_in_flight = 50

[services.counter]
durability = "async"
entity_idle_ms = 10

[remote.visits]
endpoint = "tcp://127.0.0.1:7600"
)",
                               "test.toml", known);
  REQUIRE(cfg.ok());
  CHECK(cfg->name == "a");
  CHECK(cfg->listen.size() == 2);
  CHECK(cfg->drain_timeout == std::chrono::milliseconds(100));
  CHECK(cfg->limits.max_payload_bytes == 1024);
  CHECK(cfg->limits.max_depth == 8);
  REQUIRE(cfg->services.size() == 2);
  CHECK(cfg->remotes.at(0).endpoints == std::vector<std::string>{"tcp://127.0.0.1:7600"});
  for (const auto& s : cfg->services) {
    if (s.name == "greeter") CHECK(s.workers == 3);
    if (s.name == "counter") {
      CHECK(s.store_durability == durability::async);
      CHECK(s.entity_idle == std::chrono::milliseconds(10));
    }
  }
}

TEST_CASE("a remote service lists its instances and resilience policy", "[runtime][config]") {
  auto cfg = parse_node_config(R"([remote.counter]
endpoints = ["tcp://127.0.0.1:7601", "tcp://127.0.0.1:7602"]
balance = "consistent_hash"
attempt_timeout_ms = 250
max_retries = 1
retry_budget = 0.2
breaker_failures = 3
breaker_cooldown_ms = 500
)",
                               "t.toml", known);
  REQUIRE(cfg.ok());
  const auto& r = cfg->remotes.at(0);
  CHECK(r.endpoints.size() == 2);
  CHECK(r.balance == balance_policy::consistent_hash);
  CHECK(r.attempt_timeout == std::chrono::milliseconds(250));
  CHECK(r.max_retries == 1);
  CHECK(r.retry_budget == Approx(0.2));
  CHECK(r.breaker_failures == 3);
  CHECK(r.breaker_cooldown == std::chrono::milliseconds(500));
  auto bad = parse_node_config("[remote.counter]\nendpoint = \"tcp://127.0.0.1:1\"\nbalance = \"random\"\n", "t.toml", known);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("remote.counter.balance"));
}

TEST_CASE("an unknown key is an error naming the key and its line", "[runtime][config]") {
  auto cfg = parse_node_config("[node]\nname = \"a\"\nlisen = [\"tcp://127.0.0.1:1\"]\n", "n.toml", known);
  REQUIRE_FALSE(cfg.ok());
  CHECK_THAT(cfg.error().message, Catch::Contains("n.toml:3") && Catch::Contains("unknown key 'node.lisen'"));
}

TEST_CASE("a wrong type is an error naming the key", "[runtime][config]") {
  auto cfg = parse_node_config("[services.greeter]\nworkers = \"four\"\n", "t.toml", known);
  REQUIRE_FALSE(cfg.ok());
  CHECK_THAT(cfg.error().message, Catch::Contains("'services.greeter.workers' must be an integer"));
}

TEST_CASE("an unknown service is an error listing the known ones", "[runtime][config]") {
  auto cfg = parse_node_config("[services.billing]\n", "t.toml", known);
  REQUIRE_FALSE(cfg.ok());
  CHECK_THAT(cfg.error().message, Catch::Contains("unknown service 'services.billing'") && Catch::Contains("greeter"));
}

TEST_CASE("a bad durability value is rejected", "[runtime][config]") {
  auto cfg = parse_node_config("[services.counter]\ndurability = \"maybe\"\n", "t.toml", known);
  REQUIRE_FALSE(cfg.ok());
  CHECK_THAT(cfg.error().message, Catch::Contains("durability"));
}

TEST_CASE("the scheduler policy: affinity by default, the three names accepted, anything else refused",
          "[runtime][config]") {
  auto none = parse_node_config("[node]\nname = \"a\"\n", "t.toml", known);
  REQUIRE(none.ok());
  CHECK(none->scheduler_policy == "affinity");
  for (const char* p : {"affinity", "sharing", "stealing"}) {
    auto cfg = parse_node_config(std::string("[node]\nscheduler_policy = \"") + p + "\"\n", "t.toml", known);
    REQUIRE(cfg.ok());
    CHECK(cfg->scheduler_policy == p);
  }
  auto bad = parse_node_config("[node]\nscheduler_policy = \"fifo\"\n", "t.toml", known);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("scheduler_policy") && Catch::Contains("affinity"));
}

TEST_CASE("the stores' memory budget: 256 MiB by default, 0 for RocksDB's own bound, out of range refused",
          "[runtime][config]") {
  auto none = parse_node_config("[node]\nname = \"a\"\n", "t.toml", known);
  REQUIRE(none.ok());
  CHECK(none->store_memory_mb == 256);
  auto set = parse_node_config("[node]\nstore_memory_mb = 64\n", "t.toml", known);
  REQUIRE(set.ok());
  CHECK(set->store_memory_mb == 64);
  auto off = parse_node_config("[node]\nstore_memory_mb = 0\n", "t.toml", known);
  REQUIRE(off.ok());
  CHECK(off->store_memory_mb == 0);
  for (const char* bad : {"-1", "1048577", "\"big\""}) {
    auto cfg = parse_node_config(std::string("[node]\nstore_memory_mb = ") + bad + "\n", "t.toml", known);
    REQUIRE_FALSE(cfg.ok());
    CHECK_THAT(cfg.error().message, Catch::Contains("store_memory_mb"));
  }
}

TEST_CASE("the I/O thread's spin is a time: 200 us by default, 0 turns it off, out of range refused",
          "[runtime][config]") {
  auto none = parse_node_config("[node]\nname = \"a\"\n", "t.toml", known);
  REQUIRE(none.ok());
  CHECK(none->io_spin_us == 200);
  auto off = parse_node_config("[node]\nio_spin_us = 0\n", "t.toml", known);
  REQUIRE(off.ok());
  CHECK(off->io_spin_us == 0);
  for (const char* bad : {"-1", "100001"}) {
    auto cfg = parse_node_config(std::string("[node]\nio_spin_us = ") + bad + "\n", "t.toml", known);
    REQUIRE_FALSE(cfg.ok());
    CHECK_THAT(cfg.error().message, Catch::Contains("io_spin_us"));
  }
  // The old count of polls is gone, not silently ignored.
  auto old = parse_node_config("[node]\nio_spin_polls = 50\n", "t.toml", known);
  REQUIRE_FALSE(old.ok());
  CHECK_THAT(old.error().message, Catch::Contains("io_spin_polls"));
}

TEST_CASE("invalid TOML is an error with its line", "[runtime][config]") {
  auto cfg = parse_node_config("[node]\nname = \n", "t.toml", known);
  REQUIRE_FALSE(cfg.ok());
  CHECK_THAT(cfg.error().message, Catch::Contains("t.toml:2") && Catch::Contains("invalid TOML"));
}

TEST_CASE("a missing config file is an error naming the file", "[runtime][config]") {
  auto cfg = load_node_config("/nonexistent/cohort.toml", known);
  REQUIRE_FALSE(cfg.ok());
  CHECK_THAT(cfg.error().message, Catch::Contains("/nonexistent/cohort.toml"));
}

TEST_CASE("a remote without endpoint, or also hosted locally, is rejected", "[runtime][config]") {
  CHECK_FALSE(parse_node_config("[remote.counter]\n", "t.toml", known).ok());
  auto both = parse_node_config("[services.counter]\n[remote.counter]\nendpoint = \"tcp://127.0.0.1:1\"\n", "t.toml", known);
  REQUIRE_FALSE(both.ok());
  CHECK_THAT(both.error().message, Catch::Contains("both hosted here and remote"));
}

TEST_CASE("the embedded default binds only to loopback and hosts every example", "[runtime][config]") {
  auto cfg = example_node_config();
  REQUIRE(cfg.listen.size() == 1);
  CHECK_THAT(cfg.listen[0], Catch::StartsWith("tcp://127.0.0.1:"));
  CHECK(cfg.services.size() == known.size());
}

TEST_CASE("a service's event log is configured under [services.NAME.events], checked", "[runtime][config]") {
  auto cfg = parse_node_config(R"(
[services.counter.events]
log = true
retain_events = 500
retain_ms = 60000
max_subscribers = 8
idle_timeout_ms = 5000
)",
                               "t.toml", known);
  REQUIRE(cfg.ok());
  const auto& e = cfg->services.at(0).events;
  CHECK(e.enabled);
  CHECK(e.retain_events == 500);
  CHECK(e.retain == std::chrono::milliseconds(60000));
  CHECK(e.max_subscribers == 8);
  CHECK(e.idle_timeout == std::chrono::milliseconds(5000));
  CHECK_FALSE(parse_node_config("[services.counter]\n", "t.toml", known).value().services.at(0).events.enabled);  // off by default
  for (const auto& [text, key] : std::vector<std::pair<std::string, std::string>>{
           {"[services.counter.events]\nlog = \"yes\"\n", "services.counter.events.log"},
           {"[services.counter.events]\nretain_events = 0\n", "retain_events"},
           {"[services.counter.events]\nidle_timeout_ms = 10\n", "idle_timeout_ms"},
           {"[services.counter.events]\nkeep = 1\n", "services.counter.events.keep"}}) {
    auto bad = parse_node_config(text, "t.toml", known);
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().message, Catch::Contains(key));
  }
}

TEST_CASE("[cluster]: etcd endpoints, lease, shards; each wrong value named", "[runtime][config][cluster]") {
  auto cfg = parse_node_config("[cluster]\netcd = [\"http://10.0.0.10:2379\", \"http://10.0.0.11:2379\"]\nname = \"shop\"\n"
                               "lease_ttl_ms = 4000\nshards = 128\nservices = [\"counter\"]\npoll_ms = 250\n"
                               "hold_timeout_ms = 2000\nadvertise = \"tcp://10.0.0.1:7400\"\ntransfer_chunk_bytes = 65536\n",
                               "c.toml", known);
  REQUIRE(cfg.ok());
  CHECK(cfg->cluster.enabled());
  CHECK(cfg->cluster.etcd.size() == 2);
  CHECK(cfg->cluster.name == "shop");
  CHECK(cfg->cluster.lease_ttl == std::chrono::milliseconds(4000));
  CHECK(cfg->cluster.shards == 128);
  CHECK(cfg->cluster.services == std::vector<std::string>{"counter"});
  CHECK(cfg->cluster.poll == std::chrono::milliseconds(250));
  CHECK(cfg->cluster.hold_timeout == std::chrono::milliseconds(2000));
  CHECK(cfg->cluster.advertise == "tcp://10.0.0.1:7400");
  CHECK(cfg->cluster.transfer_chunk_bytes == 65536);
  CHECK_FALSE(parse_node_config("", "c.toml", known)->cluster.enabled());  // no [cluster]: no etcd
  auto error_of = [](const std::string& text) {
    auto c = parse_node_config(text, "c.toml", known);
    REQUIRE_FALSE(c.ok());
    return c.error().message;
  };
  CHECK_THAT(error_of("[cluster]\nname = \"x\"\n"), Catch::Contains("needs etcd"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"10.0.0.1:2379\"]\n"), Catch::Contains("'cluster.etcd'"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"http://e:2379\"]\nlease_ttl_ms = 500\n"), Catch::Contains("lease_ttl_ms"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"http://e:2379\"]\nshards = 0\n"), Catch::Contains("shards"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"http://e:2379\"]\npoll_ms = 3000\n"), Catch::Contains("poll_ms"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"http://e:2379\"]\ntransfer_chunk_bytes = 100\n"),
             Catch::Contains("transfer_chunk_bytes"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"http://e:2379\"]\nname = \"a/b\"\n"), Catch::Contains("'cluster.name'"));
  CHECK_THAT(error_of("[cluster]\netcd = [\"http://e:2379\"]\nleader = true\n"), Catch::Contains("cluster.leader"));
}
