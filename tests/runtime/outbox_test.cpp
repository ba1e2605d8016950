// The outbox between services: a record belongs to the entity that published
// it (so it moves with that entity's shard), and events published by many
// entities at once, written in another order than they were numbered, are
// each delivered promptly, not only by the relay's full rescan (every 10 s).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "cohort/actors/service_definition.hpp"
#include "cohort/storage/entity_owner.hpp"
#include "cohort/storage/store.hpp"
#include "test_node.hpp"

using namespace cohort;
using namespace cohort::test;
using namespace std::chrono_literals;

namespace {

struct post_args {
  std::uint64_t n = 0;
  MSGPACK_DEFINE_MAP(n);
};
struct posted {
  std::string key;
  std::uint64_t n = 0;
  MSGPACK_DEFINE_MAP(key, n);
};
struct tally_state {
  std::uint64_t received = 0;
  MSGPACK_DEFINE_MAP(received);
};
struct tally_view {
  std::uint64_t received = 0;
  MSGPACK_DEFINE_MAP(received);
};

struct poster_state {
  std::uint64_t posts = 0;
  MSGPACK_DEFINE_MAP(posts);
};

service_definition poster() {
  using st = poster_state;
  return entity_service<st>("poster")
      .method("post",
              [](entity_context<st>& ctx, const post_args& a) {
                ctx.publish("posted", posted{ctx.key(), a.n}, "tally/" + std::to_string(a.n % 4));
                ctx.state().posts++;
                return no_args{};
              })
      .build();
}

service_definition tally() {
  return entity_service<tally_state>("tally")
      .on_event("poster", "posted", "on_posted",
                [](entity_context<tally_state>& ctx, const posted&) {
                  ctx.state().received++;
                  return no_args{};
                })
      .query("count", [](query_context<tally_state>& ctx, const no_args&) { return tally_view{ctx.state().received}; })
      .build();
}

std::vector<service_definition> catalog() {
  auto c = example_services();
  c.push_back(poster());
  c.push_back(tally());
  return c;
}

std::uint64_t delivered(client& c) {
  std::uint64_t sum = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = c.call_as<tally_view>("tally", "count", no_args{}, keyed("tally/" + std::to_string(i)));
    if (!r) return 0;
    sum += r->received;
  }
  return sum;
}

}  // namespace

TEST_CASE("events published by many entities at once all arrive promptly, though written out of their order",
          "[runtime][events][outbox]") {
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  auto n = node::start(cfg, catalog());
  REQUIRE(n);
  const auto endpoint = (*n)->endpoints().front();

  // Rounds of posts from 8 callers on 64 entities: their records are
  // numbered as the handlers run and written as their batches land, so
  // later numbers often land first, while the relay is scanning.
  constexpr int callers = 8, per_caller = 60, rounds = 3;
  std::uint64_t expected = 0;
  client reader(endpoint);
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < callers; ++t)
      threads.emplace_back([&, t] {
        client c(endpoint);
        for (int i = 0; i < per_caller; ++i) {
          auto key = "p" + std::to_string((t * per_caller + i) % 64);
          if (!c.call_as<no_args>("poster", "post", post_args{static_cast<std::uint64_t>(i)}, keyed(key)))
            failed++;
        }
      });
    for (auto& th : threads) th.join();
    REQUIRE(failed == 0);
    expected += callers * per_caller;
    // Well under the relay's full rescan (10 s): a record left behind a
    // scan's cursor would only be found by that.
    const auto posted_at = std::chrono::steady_clock::now();
    std::uint64_t got = 0;
    while (std::chrono::steady_clock::now() - posted_at < 4s && (got = delivered(reader)) < expected)
      std::this_thread::sleep_for(20ms);
    INFO("round " << round << ": " << got << " of " << expected << " events delivered 4 s after the last post");
    CHECK(got == expected);
  }
  // The relay counts a delivery when the subscriber's answer comes back, just
  // after the subscriber counted it: wait for that answer (bounded).
  std::uint64_t counted = 0;
  for (auto until = std::chrono::steady_clock::now() + 2s;
       (counted = status_of(**n, "poster").events_delivered) < expected && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(10ms);
  CHECK(counted == expected);
}

TEST_CASE("an outbox record belongs to the entity that published it, not to the subscriber key it names",
          "[runtime][events][outbox]") {
  // Clusters move a record with the shard of the entity its key ends with. An
  // event published to an explicit subscriber key (the shop's orders publish
  // to the customer's key) must still move with its publisher, whose write
  // stored it: the subscriber key's shard may be another node's.
  temp_dir dir;
  auto cfg = loopback_config(dir.path(), catalog());
  {
    auto n = node::start(cfg, catalog());
    REQUIRE(n);
    REQUIRE((*n)->stop_service("tally"));  // nothing is acknowledged: the records stay
    client c((*n)->endpoints().front());
    for (int i = 0; i < 5; ++i)
      REQUIRE(c.call_as<no_args>("poster", "post", post_args{static_cast<std::uint64_t>(i)}, keyed("p" + std::to_string(i))));
  }
  auto db = store::open(store_dir(cfg, "poster"));
  REQUIRE(db);
  std::vector<std::string> owners;
  REQUIRE((*db)->scan(keyspace::outbox, "", "", [&](std::string_view k, std::string_view) {
    auto owner = owning_entity(keyspace::outbox, k);
    owners.emplace_back(owner ? std::string(*owner) : std::string("(none)"));
    return true;
  }));
  std::sort(owners.begin(), owners.end());
  CHECK(owners == std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"});
}
